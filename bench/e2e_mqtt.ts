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
