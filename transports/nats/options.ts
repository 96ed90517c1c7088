/**
 * Options of the NATS transport (`nats://`, `tls://`), in a module of their own that loads no NATS
 * client, so that `Agent.start` can check them against the URL's scheme.
 *
 * @module
 */
import { optionKeys } from "../option_keys.ts";

/** TLS settings (implied by a `tls://` URL; a `nats://` URL uses TLS when the server requires it). */
export interface NatsTlsOptions {
  /** PEM CA certificate(s) to trust instead of the system store. */
  ca?: string;
  /** PEM client certificate, for mutual TLS. */
  cert?: string;
  /** PEM client private key, for mutual TLS. */
  key?: string;
}

/** Connection options of the NATS transport. */
export interface NatsConnectionOptions {
  /** TLS settings. */
  tls?: NatsTlsOptions;
  /** Time to establish a connection, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** Pause between reconnection attempts to one server, ms. Default 250. */
  reconnectWaitMs?: number;
  /** Random extra pause added to each reconnection attempt, ms. Default 250 (1,000 with TLS). */
  reconnectJitterMs?: number;
  /** Client name the server shows (`/connz`). Default `"spores"`. */
  name?: string;
  /**
   * Core NATS without JetStream. It cannot keep the transport contract (no
   * redelivery, nothing kept for an absent agent), so `false` is refused.
   */
  jetstream?: boolean;
}

/** Options of the NATS transport. */
export interface NatsTransportOptions extends NatsConnectionOptions {
  /** Subject prefix: 1..4 dot-separated tokens of `[A-Za-z0-9_-]`. Default `"spores"`. */
  prefix?: string;
  /** Stream name. Default: the prefix with `.` replaced by `_`. */
  stream?: string;
  /** Stream (and card bucket) replicas, 1..5; 3 on a 3-node cluster. Default 1. */
  replicas?: number;
  /** Stream `max_age`: how long a message is kept at most, ms. Default 7 days. */
  maxAgeMs?: number;
  /** Stream `max_bytes` (oldest messages are discarded past it); -1 for no limit. Default -1. */
  maxBytes?: number;
  /** Stream `duplicate_window`: how long a spore id is remembered, ms. Default 120,000. */
  duplicateWindowMs?: number;
  /** Consumer `ack_wait`: how long a delivery may stay unacknowledged before it is redelivered, ms. Default 30,000. */
  ackWaitMs?: number;
  /** Redeliveries before the transport itself dead-letters a message (consumer `max_deliver` is this + 2). Default 16. */
  maxRedeliveries?: number;
  /** Consumer `max_ack_pending`, shared by every process reading one consumer. Default 1,000. */
  maxAckPending?: number;
  /** How long in-progress acks keep a running handler's message, ms. Default 600,000. */
  maxHandlerMs?: number;
  /** How long a publish may retry while the cluster elects a leader or the client reconnects, ms. Default 30,000. */
  publishTimeoutMs?: number;
  /**
   * How long one attempt waits for its PubAck before it is retried (with the same id), ms. Default 2,000. A
   * spore held back longer than the receiver's replay window (4,096 later spores of its session) is refused
   * there as stale: keep this times the send rate below it.
   */
  pubAckTimeoutMs?: number;
  /** How long one pull request waits for messages, ms (at least 1,000). Default 5,000. */
  fetchExpiresMs?: number;
  /** Largest message, bytes. Default: the server's `max_payload` less 1 KiB for headers. */
  maxMessageBytes?: number;
}

/** Every option of the NATS transport (checked against {@linkcode NatsTransportOptions} when type-checked). */
export const NATS_OPTION_KEYS = optionKeys<NatsTransportOptions>()([
  "tls",
  "connectTimeoutMs",
  "reconnectWaitMs",
  "reconnectJitterMs",
  "name",
  "jetstream",
  "prefix",
  "stream",
  "replicas",
  "maxAgeMs",
  "maxBytes",
  "duplicateWindowMs",
  "ackWaitMs",
  "maxRedeliveries",
  "maxAckPending",
  "maxHandlerMs",
  "publishTimeoutMs",
  "pubAckTimeoutMs",
  "fetchExpiresMs",
  "maxMessageBytes",
]);
