/**
 * Options of the STOMP transport (`stomp://`, `stomp+ssl://`, `stomp+ws://`, `stomp+wss://`), in a
 * module of their own that loads no STOMP client, so that `Agent.start` can check them against the URL's
 * scheme.
 *
 * @module
 */
import { optionKeys } from "../option_keys.ts";
import type { StompQueueType, StompTopology } from "./destinations.ts";

/** TLS settings for `stomp+ssl://`. */
export interface StompTlsOptions {
  /** PEM CA certificate(s) to trust instead of the system's roots. */
  ca?: string | string[];
  /** PEM client certificate chain, for mutual TLS. */
  cert?: string;
  /** PEM client private key, for mutual TLS. */
  key?: string;
  /** Server name to verify (default: the URL's host). */
  servername?: string;
}

/** Options of the STOMP transport. */
export interface StompTransportOptions {
  /** Prefix of every queue and routing key (the exchange, in the `"amqp"` topology). Default `"spores"`. */
  prefix?: string;
  /**
   * `"stomp"` (default): queues declared over STOMP on the broker's built-in exchanges. `"amqp"`: the
   * AMQP transport's topology on the exchange `prefix` (declared by it), so that STOMP and AMQP agents
   * talk to each other. See `./destinations.ts`.
   */
  topology?: StompTopology;
  /**
   * Queue type of agent, dead-letter and member queues: `"classic"` (default, with priorities and per-message
   * TTL) or `"quorum"` (replicated; no priorities, and RabbitMQ 3.10 keeps no per-message TTL on them). In the
   * `"amqp"` topology it must match the AMQP transport's `queueType`.
   */
  queueType?: StompQueueType;
  /** TLS for `stomp+ssl://` (CA, client certificate and key for mutual TLS). */
  tls?: StompTlsOptions;
  /** Heartbeat interval both ways, ms (0: none). Default 10,000. */
  heartbeatMs?: number;
  /** How long a connection attempt may take, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** How long a publish waits for a connection and for its RECEIPT, ms. Default 30,000. */
  publishTimeoutMs?: number;
  /**
   * Attempts of one publish whose RECEIPT is lost because the connection closed before it came (the broker
   * may have the message or not): the same SEND, with the same message id, goes again on the next
   * connection. A receiving agent drops the copy it has already handled. Default 5; 1 sends once.
   */
  publishAttempts?: number;
  /** Longest pause between reconnection attempts, ms. Default 5,000. */
  maxBackoffMs?: number;
  /**
   * Largest message, bytes. Default 4 MiB; RabbitMQ's STOMP adapter takes frames
   * up to `stomp.max_frame_size` (and Web-STOMP up to `web_stomp.ws_opts.max_frame_size`).
   */
  maxMessageBytes?: number;
}

/** Every option of the STOMP transport (checked against {@linkcode StompTransportOptions} when type-checked). */
export const STOMP_OPTION_KEYS = optionKeys<StompTransportOptions>()([
  "prefix",
  "topology",
  "queueType",
  "tls",
  "heartbeatMs",
  "connectTimeoutMs",
  "publishTimeoutMs",
  "publishAttempts",
  "maxBackoffMs",
  "maxMessageBytes",
]);
