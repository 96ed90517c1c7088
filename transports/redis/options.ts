/**
 * Options of the Redis transport (`redis://`, `rediss://`), in a module of their own that loads no
 * Redis client, so that `Agent.start` can check them against the URL's scheme.
 *
 * @module
 */
import { optionKeys } from "../option_keys.ts";

/** TLS settings for `rediss://`. */
export interface RedisTlsOptions {
  /** PEM CA certificate(s) to trust instead of the system store. */
  ca?: string | string[];
  /** PEM client certificate, for mutual TLS. */
  cert?: string;
  /** PEM client private key, for mutual TLS. */
  key?: string;
  /** Server name to verify, when it differs from the host. */
  servername?: string;
}

/** Connection options of the Redis transport. */
export interface RedisConnectionOptions {
  /** TLS for `rediss://` URLs. */
  tls?: RedisTlsOptions;
  /** Time to establish a connection, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /**
   * Longest wait for a command's reply, ms, so that a publish on a link that went silent fails with a
   * `TransportError` instead of waiting for ever. Default 30,000 (always above the blocking read time).
   */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts, ms. Default 2,000. */
  maxBackoffMs?: number;
  /**
   * Redis Cluster start-up nodes; when set (or when the URL has a `cluster` parameter), a cluster client is
   * made (keys are hash-tagged per agent).
   */
  cluster?: { host: string; port: number }[];
  /** Extra ioredis options (Sentinel: `sentinels` and `name`), merged last. */
  ioredis?: { [option: string]: unknown };
}

/** Options of the Redis transport. */
export interface RedisTransportOptions extends RedisConnectionOptions {
  /** Key prefix. Default `"spores"`. */
  prefix?: string;
  /**
   * Most entries a stream holds. Entries are never trimmed before every consumer group has read and
   * acknowledged them; a publish to a stream that holds this many is refused with a `TransportError`
   * (the receiver is away or too slow). Default 100,000.
   */
  maxLen?: number;
  /** Most entries read per `XREADGROUP` (never more than the subscription's prefetch). Default 256. */
  batch?: number;
  /** How long one blocking read waits, ms. Default 1,000. */
  blockMs?: number;
  /** How long an entry may stay unacknowledged with a consumer before another takes it, ms. Default 30,000. */
  visibilityTimeoutMs?: number;
  /** How often a subscriber looks for such entries, ms. Default 5,000. */
  claimIntervalMs?: number;
  /** Deliveries after which the transport itself dead-letters an entry. Default 16. */
  maxDeliveries?: number;
  /** Largest message, bytes. Default 16 MiB. */
  maxMessageBytes?: number;
  /**
   * Replication to wait for before `publish` resolves. Redis replicates asynchronously: without this, a
   * primary that fails right after accepting a spore can lose it. With `{ replicas: n }`, each publish is
   * followed by `WAIT n timeoutMs` on the same connection, and a publish that fewer than `n` replicas
   * confirmed in time fails with a `TransportError` (the spore may still be delivered). Default: none.
   */
  durability?: RedisDurability;
}

/** How many replicas must hold a spore before `publish` resolves (see `RedisTransportOptions.durability`). */
export interface RedisDurability {
  /** Replicas that must acknowledge the write. At least 1. */
  replicas: number;
  /** How long to wait for them, ms. Default 1,000. */
  timeoutMs?: number;
}

/** Every option of the Redis transport (checked against {@linkcode RedisTransportOptions} when type-checked). */
export const REDIS_OPTION_KEYS = optionKeys<RedisTransportOptions>()([
  "tls",
  "connectTimeoutMs",
  "commandTimeoutMs",
  "maxBackoffMs",
  "cluster",
  "ioredis",
  "prefix",
  "maxLen",
  "batch",
  "blockMs",
  "visibilityTimeoutMs",
  "claimIntervalMs",
  "maxDeliveries",
  "maxMessageBytes",
  "durability",
]);
