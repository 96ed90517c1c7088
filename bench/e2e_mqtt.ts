// The MQTT target of bench/e2e.ts: Mosquitto on 127.0.0.1:1883 through mqtt.js, QoS 1, persistent sessions.
import type { Transport } from "../transports/transport.ts";

/** The broker the MQTT rounds use. */
export const MQTT_URL = "mqtt://127.0.0.1:1883";

/**
 * Opens the MQTT transport of one round. A round in which the broker dropped messages (a sender that outran
 * its receiver by more than Mosquitto's `max_queued_messages`) is no measurement: it stops the run.
 */
export async function openMqtt(prefix: string): Promise<Transport> {
  const t = await (await import("../transports/mqtt.ts")).MqttTransport.connect(MQTT_URL, { prefix });
  t.addEventListener("dropped", () => {
    console.error("the broker dropped messages (max_queued_messages): this round is no measurement");
    Deno.exit(2);
  });
  return t;
}

/** Ends the persistent sessions and removes the retained cards a round left in the broker. */
export async function cleanupMqtt(prefix: string): Promise<void> {
  const { MqttTransport, sessionOf } = await import("../transports/mqtt.ts");
  const t = await MqttTransport.connect(MQTT_URL, { prefix, watchDrops: false });
  try {
    for (const id of ["alice", "bob"]) {
      await t.removeSession(sessionOf(prefix, { agent: id }).clientId);
      await t.directory.remove(id);
    }
  } finally {
    await t.close();
  }
}

/**
 * mqtt.js used directly, as well as it can be: QoS 1, a persistent session for the receiver that acknowledges
 * each message as it arrives (mqtt.js's default: before any handling), and pipelined publishes.
 */
export const rawMqtt = {
  receive: async (prefix: string, arrived: () => void): Promise<{ close(): Promise<void> }> => {
    const mqtt = (await import("mqtt")).default;
    const c = await mqtt.connectAsync(MQTT_URL, {
      protocolVersion: 5,
      clientId: `${prefix}/raw/bob`,
      clean: false,
      properties: { sessionExpiryInterval: 60, receiveMaximum: 128 },
      reconnectPeriod: 0,
    });
    c.on("message", () => arrived());
    await c.subscribeAsync(`${prefix}/agent/bob/+`, { qos: 1 });
    return {
      close: async () => {
        await c.endAsync();
        const end = await mqtt.connectAsync(MQTT_URL, { clientId: `${prefix}/raw/bob`, clean: true });
        await end.endAsync();
      },
    };
  },
  sender: async (prefix: string, payload: Uint8Array) => {
    const mqtt = (await import("mqtt")).default;
    const { Buffer } = await import("node:buffer");
    const c = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, reconnectPeriod: 0 });
    const body = Buffer.from(payload);
    const properties = {
      messageExpiryInterval: 300,
      userProperties: { e: String(Date.now() + 300_000), i: "x" },
    };
    return {
      send: () => c.publishAsync(`${prefix}/agent/bob/blob`, body, { qos: 1, properties }),
      close: async () => void await c.endAsync(),
    };
  },
};

/** The MQTT target of bench/e2e.ts. */
export const mqttTarget = {
  name: "Mosquitto (mqtt.js, QoS 1)",
  url: MQTT_URL,
  open: openMqtt,
  options: (prefix: string): Record<string, unknown> => ({ prefix }),
  cleanup: cleanupMqtt,
  raw: rawMqtt,
};
