/**
 * The MQTT transport (`mqtt://`, `mqtts://`, `mqtt+ws://`, `mqtt+wss://`),
 * on mqtt.js: persistent sessions with fixed client ids, QoS 1 or 2 with the
 * acknowledgement after the handler, shared subscriptions for several
 * processes of one agent, MQTT v5 message expiry, and agent cards as retained
 * messages.
 *
 * Deno permissions: `--allow-net=<host>:<port>` (plus `--allow-read` for
 * certificate files, and for this module itself when it is loaded from local
 * files by URL scheme), and `--allow-env` (mqtt.js reads `DEBUG`).
 *
 * @example
 * ```ts ignore
 * import { Agent } from "@spores/spores";
 * const alice = await Agent.start({ id: "alice", transport: "mqtt://127.0.0.1:1883" });
 * ```
 *
 * @module
 */
import type { Transport } from "./transport.ts";
import { MqttTransport, type MqttTransportOptions } from "./mqtt/transport.ts";
import { checkOptions } from "./option_keys.ts";
import { MQTT_OPTION_KEYS } from "./mqtt/options.ts";

export {
  type BrokerUrl,
  describeUrl,
  type MqttConnectionOptions,
  type MqttTlsOptions,
  parseBrokerUrl,
} from "./mqtt/connection.ts";
export * from "./mqtt/directory.ts";
export * from "./mqtt/topics.ts";
export {
  type MqttDropped,
  MqttTransport,
  type MqttTransportOptions,
  type MqttTransportStats,
} from "./mqtt/transport.ts";

/**
 * Connects to an MQTT broker at `url` (`mqtt://[user:password@]host:port`, `mqtts://...`, or
 * `mqtt+ws(s)://host:port/path` for MQTT over WebSocket).
 * Options are {@linkcode MqttTransportOptions}; a key it does not know is a `ConfigError`.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/mqtt";
 * const transport = await createTransport("mqtt://127.0.0.1:1883", { qos: 1 });
 * await transport.close();
 * ```
 */
export async function createTransport(url: string, options: MqttTransportOptions = {}): Promise<Transport> {
  checkOptions("mqtt", options, MQTT_OPTION_KEYS);
  return await MqttTransport.connect(url, options);
}
