/**
 * Making ioredis clients from a `redis://` / `rediss://` URL and options:
 * TLS (CA, client certificate and key), ACL user and password and database
 * number from the URL, reconnection with backoff, and Cluster or Sentinel
 * through ioredis's own options.
 *
 * @module
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { ConfigError } from "../../crypto/errors.ts";
import { describeUrl } from "../connect_error.ts";
import type { RedisConnectionOptions } from "./options.ts";
export type { RedisConnectionOptions, RedisTlsOptions } from "./options.ts";

export { describeUrl };

/** A client of either kind. */
export type RedisClient = Redis | Cluster;

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith("[") || host.includes(":");
}

/**
 * The extra seed nodes of a cluster URL: `redis://host:port?cluster` names one node of a Redis Cluster,
 * `redis://host:port?cluster=host2:port2,host3:port3` names more, so that any of them can answer first.
 * Undefined for a URL without the `cluster` parameter.
 */
function clusterSeeds(u: URL): { host: string; port: number }[] | undefined {
  const list = u.searchParams.get("cluster");
  if (list === null) return undefined;
  return list.split(",").filter((s) => s.length > 0).map((seed) => {
    const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(seed.trim());
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) {
      throw new ConfigError(
        `cluster seeds must be host:port pairs separated by commas (got ${JSON.stringify(seed)})`,
      );
    }
    return { host: m[1]!, port };
  });
}

/** Makes a client (not yet connected). */
export function createClient(url: string, options: RedisConnectionOptions = {}): RedisClient {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ConfigError("not a valid redis:// URL", { cause });
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    throw new ConfigError(`not a redis:// or rediss:// URL: ${describeUrl(url)}`);
  }
  const tls = u.protocol === "rediss:"
    ? {
      ca: options.tls?.ca,
      cert: options.tls?.cert,
      key: options.tls?.key,
      // SNI takes a host name only; an IP address is verified against the certificate's IP SAN.
      servername: options.tls?.servername ?? (isIp(u.hostname) ? undefined : u.hostname),
      rejectUnauthorized: true,
    }
    : undefined;
  const seeds = clusterSeeds(u);
  const maxBackoff = options.maxBackoffMs ?? 2000;
  const base: RedisOptions = {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    commandTimeout: options.commandTimeoutMs ?? 30_000,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), maxBackoff),
    enableAutoPipelining: true,
    tls,
    ...options.ioredis,
  };
  if (options.cluster || seeds) {
    if (u.pathname.length > 1 && u.pathname !== "/0") {
      throw new ConfigError("a Redis Cluster has only database 0: drop the database number from the URL");
    }
    const nodes = [
      { host: u.hostname, port: Number(u.port || 6379) },
      ...(seeds ?? []),
      ...(options.cluster ?? []),
    ];
    return defineCommands(
      new Cluster(nodes, {
        redisOptions: {
          ...base,
          username: decodeURIComponent(u.username) || undefined,
          password: decodeURIComponent(u.password) || undefined,
        },
        clusterRetryStrategy: base.retryStrategy,
        lazyConnect: true,
      }),
    );
  }
  const client = new Redis(url, base);
  defineCommands(client);
  // ioredis listens for one error per socket; a second (EPIPE after a reset, as when a server refuses a
  // client certificate after the TLS handshake) would be uncaught. Keep a listener for the socket's life.
  client.on("connect", () => {
    (client as unknown as { stream?: { on(e: string, f: () => void): void } }).stream?.on("error", () => {});
  });
  return client;
}

/**
 * Appends to a stream unless it holds `ARGV[1]` entries already (then a `SPORESFULL` error): a stream is
 * never trimmed below what its consumers have not read, so a full one refuses instead.
 */
const ADD_UNLESS_FULL = `
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return redis.error_reply('SPORESFULL stream holds ' .. ARGV[1] .. ' entries')
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))`;

function defineCommands(client: RedisClient): RedisClient {
  client.defineCommand("sporesAdd", { numberOfKeys: 1, lua: ADD_UNLESS_FULL });
  return client;
}

/** ioredis commands whose typings are missing or too narrow for the arguments Spores passes. */
export interface LooseCommands {
  /** XADD (stream, max length, fields...) unless the stream is full; see `ADD_UNLESS_FULL`. */
  sporesAdd(...args: (string | number | Uint8Array)[]): Promise<unknown>;
  /** XAUTOCLAIM with binary replies. */
  xautoclaimBuffer(...args: (string | number)[]): Promise<unknown>;
  /** XCLAIM with binary replies. */
  xclaimBuffer(...args: (string | number)[]): Promise<unknown>;
  /** XCLAIM with any option combination. */
  xclaim(...args: (string | number)[]): Promise<unknown>;
  /** EVAL with binary replies. */
  evalBuffer(...args: (string | number | Uint8Array)[]): Promise<unknown>;
}

/** The same client, typed for {@linkcode LooseCommands}. */
export function loose(client: RedisClient): LooseCommands {
  return client as unknown as LooseCommands;
}
