/**
 * Options of the RabbitMQ transport (`amqp://`, `amqps://`), in a module of their own that loads no
 * AMQP client, so that `Agent.start` can check them against the URL's scheme.
 *
 * @module
 */
import { optionKeys } from "../option_keys.ts";

/** TLS settings for `amqps://`. */
export interface AmqpTlsOptions {
  /** PEM CA certificate(s) to trust. */
  ca?: string | string[];
  /** PEM client certificate, for mutual TLS. */
  cert?: string;
  /** PEM client key, for mutual TLS. */
  key?: string;
  /** Server name to verify. */
  servername?: string;
}

/** Options of the AMQP transport. */
export interface AmqpTransportOptions {
  /** Exchange name (and prefix of every queue). Default `"spores"`. */
  exchange?: string;
  /** Queue type of agent queues: `"classic"` (with priorities) or `"quorum"`. Default `"classic"`. */
  queueType?: "classic" | "quorum";
  /** TLS for `amqps://`. */
  tls?: AmqpTlsOptions;
  /** Heartbeat interval, s. Default 15. */
  heartbeatSeconds?: number;
  /** Socket connect timeout, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /**
   * How long a publish waits for a connection during an outage, ms, and how long it goes on re-publishing
   * a message whose confirm was lost with its connection. Default 30,000.
   */
  publishTimeoutMs?: number;
  /**
   * Attempts of one publish whose confirm is lost because its channel or connection closed before the
   * broker answered (the message may or may not be in the queue): it is published again, the same bytes
   * with the same message id, on the next channel. A receiving agent drops the copy it has already handled
   * (replay defence and receipts), so a duplicate is harmless. Default 5; 1 publishes once.
   */
  publishAttempts?: number;
  /** Longest pause between reconnection attempts, ms. Default 5,000. */
  maxBackoffMs?: number;
  /** Largest message, bytes. Default 16 MiB. */
  maxMessageBytes?: number;
  /**
   * Publisher confirms. Default `true`: `publish` resolves once RabbitMQ has
   * taken the message (the broker acknowledges many at once when many are in
   * flight), and a direct message no queue takes is a `TransportError`.
   * `false` publishes on a plain channel: `publish` resolves once the message
   * is written to the socket, and an unroutable message is dropped by the
   * broker unnoticed.
   */
  confirms?: boolean;
}

/** Every option of the RabbitMQ transport (checked against {@linkcode AmqpTransportOptions} when type-checked). */
export const AMQP_OPTION_KEYS = optionKeys<AmqpTransportOptions>()([
  "exchange",
  "queueType",
  "tls",
  "heartbeatSeconds",
  "connectTimeoutMs",
  "publishTimeoutMs",
  "publishAttempts",
  "maxBackoffMs",
  "maxMessageBytes",
  "confirms",
]);
