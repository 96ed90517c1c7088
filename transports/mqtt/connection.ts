/**
 * Making mqtt.js clients from an `mqtt://`, `mqtts://`, `mqtt+ws://` or
 * `mqtt+wss://` URL (or a plain `ws://` / `wss://` URL given to this module
 * directly): TLS and mutual TLS, user name and password from the URL,
 * keepalive, and reconnection with exponential backoff.
 *
 * @module
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { ConfigError, TransportError } from "../../crypto/errors.ts";
import { describeUrl, explainConnectError } from "../connect_error.ts";
import type { MqttConnectionOptions } from "./options.ts";
export type { MqttConnectionOptions, MqttTlsOptions } from "./options.ts";

export { describeUrl };

const SCHEMES: Readonly<Record<string, string>> = {
  "mqtt:": "mqtt:",
  "mqtts:": "mqtts:",
  "mqtt+ws:": "ws:",
  "mqtt+wss:": "wss:",
  "ws:": "ws:",
  "wss:": "wss:",
};

/**
 * What a message hook passes to mqtt.js so that it does not acknowledge the message itself and reads on (the
 * transport acknowledges it after the handler). mqtt.js reports it as an `error` event, which is not one.
 */
export const DEFERRED: Error = Object.freeze(new Error("acknowledgement deferred to the handler"));

/** A parsed broker URL: what mqtt.js connects to, and the credentials it carries. */
export interface BrokerUrl {
  /** The URL mqtt.js connects to (credentials removed). */
  readonly href: string;
  /** Whether the connection is TLS. */
  readonly tls: boolean;
  /** User name from the URL. */
  readonly username?: string;
  /** Password from the URL. */
  readonly password?: string;
}

/**
 * Parses and checks a broker URL.
 *
 * @example
 * ```ts
 * import { parseBrokerUrl } from "@spores/spores/mqtt";
 * const u = parseBrokerUrl("mqtt+wss://app:secret@broker.example:8884/mqtt");
 * console.assert(u.href === "wss://broker.example:8884/mqtt" && u.username === "app" && u.tls);
 * ```
 */
export function parseBrokerUrl(url: string): BrokerUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ConfigError("not a valid mqtt:// URL", { cause });
  }
  const scheme = SCHEMES[u.protocol];
  if (!scheme) {
    throw new ConfigError(`not an mqtt://, mqtts://, mqtt+ws:// or mqtt+wss:// URL: ${describeUrl(url)}`);
  }
  const ws = scheme === "ws:" || scheme === "wss:";
  if (!ws && u.pathname !== "" && u.pathname !== "/") {
    throw new ConfigError("an mqtt:// URL has no path");
  }
  const username = decodeURIComponent(u.username) || undefined;
  const password = decodeURIComponent(u.password) || undefined;
  const port = u.port || (scheme === "mqtt:" ? "1883" : scheme === "mqtts:" ? "8883" : "");
  const host = u.hostname;
  const path = ws ? (u.pathname === "/" || u.pathname === "" ? "/mqtt" : u.pathname) : "";
  return {
    href: `${scheme}//${host}${port ? `:${port}` : ""}${path}`,
    tls: scheme === "mqtts:" || scheme === "wss:",
    username,
    password,
  };
}

/** How long a connection must last before the reconnection pause goes back to its minimum, ms. */
const STABLE_MS = 10_000;

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith("[") || host.includes(":");
}

/** What one session needs to connect. */
export interface SessionSettings {
  /** Fixed client id, or undefined for a random one. */
  clientId?: string;
  /** Keep the session across connections (`clean: false`, with a session expiry in v5). */
  persistent: boolean;
  /** Session expiry interval in v5, s. */
  sessionExpirySeconds?: number;
  /** Receive maximum in v5 (QoS 1/2 messages in flight to this client). */
  receiveMaximum?: number;
  /** mqtt.js hooks (customHandleAcks). */
  extra?: Partial<IClientOptions>;
}

/** The mqtt.js options of a session (not yet connected). */
export function clientOptions(
  url: BrokerUrl,
  options: MqttConnectionOptions,
  session: SessionSettings,
): IClientOptions {
  const version = options.protocolVersion ?? 5;
  if (version !== 4 && version !== 5) throw new ConfigError("protocolVersion must be 4 or 5");
  const host = new URL(url.href).hostname;
  const properties: Record<string, number> = {};
  if (version === 5 && session.persistent) {
    properties.sessionExpiryInterval = session.sessionExpirySeconds ?? 7 * 86_400;
  }
  if (version === 5 && session.receiveMaximum !== undefined) {
    properties.receiveMaximum = session.receiveMaximum;
  }
  return {
    protocolVersion: version,
    clientId: session.clientId ?? `spores-${crypto.randomUUID()}`,
    clean: !session.persistent,
    keepalive: options.keepaliveSeconds ?? 60,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    reconnectPeriod: options.minBackoffMs ?? 100,
    resubscribe: false,
    queueQoSZero: false,
    username: url.username,
    password: url.password,
    properties: Object.keys(properties).length > 0 ? properties : undefined,
    ...(url.tls
      ? {
        ca: options.tls?.ca,
        cert: options.tls?.cert,
        key: options.tls?.key,
        // SNI takes a host name only; an IP address is verified against the certificate's IP SAN.
        servername: options.tls?.servername ?? (isIp(host) ? undefined : host),
        rejectUnauthorized: true,
      }
      : {}),
    ...session.extra,
  };
}

/**
 * Connects a client and keeps it reconnecting with exponential backoff
 * (reset after each successful connection). Fails with a `TransportError`
 * when the first connection cannot be made.
 */
export async function connectClient(
  url: BrokerUrl,
  options: MqttConnectionOptions,
  session: SessionSettings,
  setup?: (client: MqttClient) => void,
): Promise<MqttClient> {
  const opts = clientOptions(url, options, session);
  const min = options.minBackoffMs ?? 100;
  const max = options.maxBackoffMs ?? 5000;
  const client = mqtt.connect(url.href, { ...opts, reconnectPeriod: 0, manualConnect: true });
  client.on("error", () => {}); // a failed connection is reported below, later ones lead to a reconnect
  setup?.(client);
  let connected = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (e: unknown) => {
        if (e === DEFERRED) return; // a message of a resumed session, already on its way to the handler
        cleanup();
        reject(e);
      };
      const ok = () => {
        cleanup();
        resolve();
      };
      const closed = () => fail(new Error("connection closed before CONNACK"));
      const cleanup = () => {
        client.off("connect", ok);
        client.off("error", fail);
        client.off("close", closed);
      };
      client.once("connect", ok);
      client.on("error", fail);
      client.once("close", closed);
      client.connect();
    });
    connected = true;
  } catch (cause) {
    client.end(true);
    const u = new URL(url.href);
    const where = `${u.hostname}:${u.port || (url.tls ? 443 : 80)}`;
    throw new TransportError(
      `cannot reach MQTT broker at ${describeUrl(url.href)}: ${explainConnectError(cause, where)}`,
      { cause },
    );
  } finally {
    if (connected) {
      // Reconnect from now on, backing off while the broker stays away. The pause goes back to its minimum
      // only after a connection stayed up for a while, so that connections closed as soon as they are made
      // (two processes with one client id, which Mosquitto 2.0 ends without a reason) do not loop fast.
      let period = min;
      let stable: ReturnType<typeof setTimeout> | undefined;
      client.options.reconnectPeriod = period;
      client.on("connect", () => {
        clearTimeout(stable);
        stable = setTimeout(() => {
          period = min;
          client.options.reconnectPeriod = period;
        }, STABLE_MS);
      });
      client.on("close", () => clearTimeout(stable));
      client.on("end", () => clearTimeout(stable));
      client.on("reconnect", () => {
        period = Math.min(period * 2, max);
        client.options.reconnectPeriod = period;
      });
    }
  }
  return client;
}
