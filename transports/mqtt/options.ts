/**
 * Options of the MQTT transport (`mqtt://`, `mqtts://`, `mqtt+ws://`, `mqtt+wss://`), in a module of
 * their own that loads no MQTT client, so that `Agent.start` can check them against the URL's scheme.
 *
 * @module
 */
import { optionKeys } from "../option_keys.ts";

/** TLS settings for `mqtts://` and `wss://`. */
export interface MqttTlsOptions {
  /** PEM CA certificate(s) to trust instead of the system store. */
  ca?: string | string[];
  /** PEM client certificate, for mutual TLS. */
  cert?: string;
  /** PEM client private key, for mutual TLS. */
  key?: string;
  /** Server name to verify, when it differs from the host. */
  servername?: string;
}

/** Connection options of the MQTT transport. */
export interface MqttConnectionOptions {
  /** MQTT protocol version: 5 (default) or 4 (3.1.1). */
  protocolVersion?: 4 | 5;
  /** TLS for `mqtts://` and `wss://` URLs. */
  tls?: MqttTlsOptions;
  /** Keepalive interval, s. Default 60. */
  keepaliveSeconds?: number;
  /** Time to establish a connection, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** First pause before reconnecting, ms. Default 100; doubles up to `maxBackoffMs`. */
  minBackoffMs?: number;
  /** Longest pause between reconnection attempts, ms. Default 5,000. */
  maxBackoffMs?: number;
}

/** Options of the MQTT transport. */
export interface MqttTransportOptions extends MqttConnectionOptions {
  /** Topic prefix: 1..8 levels of `[A-Za-z0-9._:-]`. Default `"spores"`. */
  prefix?: string;
  /** QoS of publications and subscriptions: 1 (default) or 2 (MQTT v5 only). */
  qos?: 1 | 2;
  /**
   * The name of this process among several processes of one agent. When set,
   * subscriptions are shared (`$share/{agent}/...`): each message reaches one
   * process, and each process keeps its own persistent session (client id
   * `.../{instance}`). Every process of the agent must set a distinct one.
   */
  instance?: string;
  /** How long the broker keeps an away session (MQTT v5), s. Default 7 days. */
  sessionExpirySeconds?: number;
  /** How long a publish waits for the broker's acknowledgement, ms. Default 30,000. */
  publishTimeoutMs?: number;
  /** Deliveries after which the transport itself dead-letters a message. Default 16. */
  maxDeliveries?: number;
  /** Largest message, bytes. Default 16 MiB (Mosquitto's `message_size_limit` may be lower). */
  maxMessageBytes?: number;
  /** Whether the broker keeps sessions and messages across its restarts (`persistence true`). Default false. */
  durable?: boolean;
  /** Watch the broker's count of dropped messages (`$SYS`), see `stats.brokerDropped`. Default true. */
  watchDrops?: boolean;
}

/** Every option of the MQTT transport (checked against {@linkcode MqttTransportOptions} when type-checked). */
export const MQTT_OPTION_KEYS = optionKeys<MqttTransportOptions>()([
  "protocolVersion",
  "tls",
  "keepaliveSeconds",
  "connectTimeoutMs",
  "minBackoffMs",
  "maxBackoffMs",
  "prefix",
  "qos",
  "instance",
  "sessionExpirySeconds",
  "publishTimeoutMs",
  "maxDeliveries",
  "maxMessageBytes",
  "durable",
  "watchDrops",
]);
