/**
 * Connecting to NATS from a `nats://` or `tls://` URL: a comma-separated list
 * of servers, user and password or a token from the URL, TLS and mutual TLS,
 * and reconnection with jitter that never gives up while the transport is open.
 *
 * @module
 */
import type { ConnectionOptions, NatsConnection } from "@nats-io/transport-node";
import { ConfigError, TransportError } from "../../crypto/errors.ts";
import { explainConnectError } from "../connect_error.ts";
import { connectGuarded } from "./socket.ts";
import type { NatsConnectionOptions } from "./options.ts";
export type { NatsConnectionOptions, NatsTlsOptions } from "./options.ts";

/** The servers, credentials and TLS demand a URL names. */
export interface ParsedNatsUrl {
  /** `host:port` of each server. */
  servers: string[];
  /** Whether TLS is required (`tls://`). */
  tls: boolean;
  /** User name, if given with a password. */
  user?: string;
  /** Password. */
  pass?: string;
  /** Token (a user part with no password). */
  token?: string;
}

/**
 * Parses `nats://[user:pass@|token@]host[:port][,host[:port]...]` (or `tls://`).
 *
 * @example
 * ```ts
 * import { parseNatsUrl } from "@spores/spores/nats";
 * const u = parseNatsUrl("nats://app:secret@10.0.0.1:4222,10.0.0.2");
 * console.assert(u.servers.length === 2 && u.user === "app");
 * ```
 */
export function parseNatsUrl(url: string): ParsedNatsUrl {
  const m = /^(nats|tls):\/\/([^/?#]*)\/?$/.exec(url);
  if (!m) throw new ConfigError("not a nats:// or tls:// URL (no path or query is used)");
  const [, scheme, rest] = m;
  const at = rest!.lastIndexOf("@");
  const auth = at >= 0 ? rest!.slice(0, at) : "";
  const hosts = (at >= 0 ? rest!.slice(at + 1) : rest!).split(",");
  const servers: string[] = [];
  for (const h of hosts) {
    let u: URL;
    try {
      u = new URL(`nats://${h}`);
    } catch (cause) {
      throw new ConfigError("a server in the NATS URL is not host[:port]", { cause });
    }
    if (!u.hostname || u.username || u.password || u.pathname !== "") {
      throw new ConfigError("a server in the NATS URL is not host[:port]");
    }
    servers.push(`${u.hostname}:${u.port || "4222"}`);
  }
  const out: ParsedNatsUrl = { servers, tls: scheme === "tls" };
  if (auth) {
    const colon = auth.indexOf(":");
    try {
      if (colon < 0) out.token = decodeURIComponent(auth);
      else {
        out.user = decodeURIComponent(auth.slice(0, colon));
        out.pass = decodeURIComponent(auth.slice(colon + 1));
      }
    } catch (cause) {
      throw new ConfigError("credentials in the NATS URL are not valid percent-encoding", { cause });
    }
  }
  return out;
}

/**
 * Where a URL points, without credentials (safe for messages and logs).
 *
 * @example
 * ```ts
 * import { describeNatsUrl } from "@spores/spores/nats";
 * console.assert(describeNatsUrl("nats://app:secret@h1,h2:4223") === "nats://h1:4222,h2:4223");
 * ```
 */
export function describeNatsUrl(url: string): string {
  try {
    const p = parseNatsUrl(url);
    return `${p.tls ? "tls" : "nats"}://${p.servers.join(",")}`;
  } catch {
    return "an invalid URL";
  }
}

/** Why connecting failed, in plain words, never with the credentials. */
function explain(cause: unknown, servers: string[]): string {
  for (let e: unknown = cause, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const text = `${(e as Error).name} ${(e as Error).message}`;
    if (/AuthorizationError|Authorization Violation|authentication/i.test(text)) {
      return "the server refused the user name and password or the token (check the credentials in the URL)";
    }
  }
  return explainConnectError(cause, servers.join(","));
}

/**
 * Connects (a `TransportError` if no server answers; a `ConfigError` for a bad URL, an option, or a server
 * without JetStream).
 *
 * @example
 * ```ts ignore
 * import { connectNats } from "@spores/spores/nats";
 * const nc = await connectNats("nats://127.0.0.1:4222");
 * await nc.drain();
 * ```
 */
export async function connectNats(url: string, options: NatsConnectionOptions = {}): Promise<NatsConnection> {
  if (options.jetstream === false) {
    throw new ConfigError(
      "core NATS without JetStream cannot redeliver or keep spores for an absent agent; enable JetStream",
    );
  }
  const p = parseNatsUrl(url);
  const tls = p.tls || options.tls
    ? { ca: options.tls?.ca, cert: options.tls?.cert, key: options.tls?.key }
    : undefined;
  const opts: ConnectionOptions = {
    servers: p.servers,
    name: options.name ?? "spores",
    user: p.user,
    pass: p.pass,
    token: p.token,
    tls,
    timeout: options.connectTimeoutMs ?? 10_000,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectWaitMs ?? 250,
    reconnectJitter: options.reconnectJitterMs ?? 250,
    reconnectJitterTLS: options.reconnectJitterMs ?? 1000,
    pingInterval: 10_000,
    maxPingOut: 2,
  };
  let nc: NatsConnection;
  try {
    nc = await connectGuarded(opts);
  } catch (cause) {
    throw new TransportError(`cannot reach NATS at ${describeNatsUrl(url)}: ${explain(cause, p.servers)}`, {
      cause,
    });
  }
  if (nc.info && nc.info.jetstream !== true) {
    await nc.close();
    throw new ConfigError(
      `NATS at ${describeNatsUrl(url)} has JetStream off; core NATS cannot redeliver, so it is refused`,
    );
  }
  return nc;
}
