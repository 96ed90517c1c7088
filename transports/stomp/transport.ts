/**
 * The STOMP transport (`@stomp/stompjs`) for RabbitMQ's STOMP adapter, over
 * TCP (`stomp://`), TLS (`stomp+ssl://`) or WebSocket (`stomp+ws://`,
 * `stomp+wss://`): durable queues with priorities and dead letters, persistent
 * messages with per-message TTL, a RECEIPT for every SEND, `client-individual`
 * acknowledgements after the handler, and reconnection with backoff that
 * subscribes again. See `./destinations.ts` for the mapping.
 *
 * @module
 */
import {
  Client,
  type IFrame,
  type IMessage,
  ReconnectionTimeMode,
  type StompSubscription,
} from "@stomp/stompjs";
import { ConfigError, TransportError } from "../../crypto/errors.ts";
import { checkId } from "../../spore/limits.ts";
import {
  type Address,
  checkMessageSize,
  type Delivery,
  type DeliveryHandler,
  type PublishOptions,
  type SubscribeOptions,
  type Subscription,
  type Transport,
  type TransportCapabilities,
} from "../transport.ts";
import { type Headers, StompDestinations } from "./destinations.ts";
import { StompDirectory } from "./directory.ts";
import { type StompTlsOptions, TcpStompSocket, WsStompSocket } from "./socket.ts";

/** Options of the STOMP transport. */
export interface StompTransportOptions {
  /** Prefix of every queue and routing key. Default `"spores"`. */
  prefix?: string;
  /** TLS for `stomp+ssl://` (CA, client certificate and key for mutual TLS). */
  tls?: StompTlsOptions;
  /** Heartbeat interval both ways, ms (0: none). Default 10,000. */
  heartbeatMs?: number;
  /** How long a connection attempt may take, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** How long a publish waits for a connection and for its RECEIPT, ms. Default 30,000. */
  publishTimeoutMs?: number;
  /** Longest pause between reconnection attempts, ms. Default 5,000. */
  maxBackoffMs?: number;
  /**
   * Largest message, bytes. Default 4 MiB; RabbitMQ's STOMP adapter takes frames
   * up to `stomp.max_frame_size` (and Web-STOMP up to `web_stomp.ws_opts.max_frame_size`).
   */
  maxMessageBytes?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SCHEMES = new Set(["stomp:", "stomp+ssl:", "stomp+ws:", "stomp+wss:"]);

function describe(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.hostname}${u.port ? `:${u.port}` : ""}${
      u.pathname && u.pathname !== "/" ? u.pathname : ""
    }`;
  } catch {
    return "an invalid URL";
  }
}

/** What a URL says: how to reach the broker and as whom. */
interface Endpoint {
  kind: "tcp" | "ws";
  tls: boolean;
  hostname: string;
  port: number;
  wsUrl?: string;
  login?: string;
  passcode?: string;
  vhost?: string;
}

function parseUrl(url: string): Endpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ConfigError("not a valid stomp:// URL", { cause });
  }
  if (!SCHEMES.has(u.protocol)) throw new ConfigError(`not a stomp:// URL: ${describe(url)}`);
  const ws = u.protocol === "stomp+ws:" || u.protocol === "stomp+wss:";
  const tls = u.protocol === "stomp+ssl:" || u.protocol === "stomp+wss:";
  const hostname = u.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!hostname) throw new ConfigError("a stomp:// URL needs a host");
  const port = u.port ? Number(u.port) : ws ? (tls ? 15673 : 15674) : (tls ? 61614 : 61613);
  const login = u.username ? decodeURIComponent(u.username) : undefined;
  const passcode = u.password ? decodeURIComponent(u.password) : undefined;
  let vhost: string | undefined;
  let wsUrl: string | undefined;
  if (ws) {
    vhost = u.searchParams.get("vhost") ?? undefined;
    const path = u.pathname && u.pathname !== "/" ? u.pathname : "/ws";
    wsUrl = `${tls ? "wss" : "ws"}://${u.host}${path}`;
  } else if (u.pathname && u.pathname !== "/") {
    vhost = decodeURIComponent(u.pathname.slice(1));
  }
  return { kind: ws ? "ws" : "tcp", tls, hostname, port, wsUrl, login, passcode, vhost };
}

interface SubState {
  destination: string;
  headers: Headers;
  handler: DeliveryHandler;
  stomp: StompSubscription | undefined;
  closed: boolean;
  counts: Map<string, number>;
}

interface PendingReceipt {
  resolve(): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * A RabbitMQ STOMP connection for agents.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/stomp";
 * const transport = await createTransport("stomp://guest:guest@127.0.0.1:61613");
 * await transport.close();
 * ```
 */
export class StompTransport implements Transport {
  /** `"stomp"`. */
  readonly name = "stomp";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** Agent cards in RabbitMQ, read over STOMP. */
  readonly directory: StompDirectory;
  /** The destinations of this transport's prefix. */
  readonly destinations: StompDestinations;
  /** Connections made so far (1 + reconnections). */
  connections = 0;
  readonly #endpoint: Endpoint;
  readonly #o: Required<Omit<StompTransportOptions, "tls" | "prefix">> & { tls?: StompTlsOptions };
  readonly #client: Client;
  readonly #subs = new Set<SubState>();
  readonly #receipts = new Map<string, PendingReceipt>();
  readonly #declaredDead = new Set<string>();
  readonly #tag = crypto.randomUUID().slice(0, 12);
  #socket: TcpStompSocket | undefined;
  #generation = 0;
  #connected = false;
  #up = Promise.withResolvers<void>();
  #closed = false;
  #seq = 0;
  #pubSeq = 0;
  #subSeq = 0;

  private constructor(endpoint: Endpoint, options: StompTransportOptions) {
    this.#endpoint = endpoint;
    this.#o = {
      heartbeatMs: options.heartbeatMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      publishTimeoutMs: options.publishTimeoutMs ?? 30_000,
      maxBackoffMs: options.maxBackoffMs ?? 5000,
      maxMessageBytes: options.maxMessageBytes ?? 4 << 20,
      tls: options.tls,
    };
    this.destinations = new StompDestinations(options.prefix ?? "spores");
    this.directory = new StompDirectory(this, this.destinations);
    this.capabilities = Object.freeze({
      durable: true,
      ordered: true,
      priority: true,
      ttl: true,
      maxMessageBytes: this.#o.maxMessageBytes,
      broadcast: true,
    });
    const connectHeaders: Headers = {};
    if (endpoint.login !== undefined) connectHeaders.login = endpoint.login;
    if (endpoint.passcode !== undefined) connectHeaders.passcode = endpoint.passcode;
    if (endpoint.vhost !== undefined) connectHeaders.host = endpoint.vhost;
    this.#client = new Client({
      connectHeaders,
      heartbeatIncoming: this.#o.heartbeatMs,
      heartbeatOutgoing: this.#o.heartbeatMs,
      connectionTimeout: this.#o.connectTimeoutMs,
      reconnectDelay: 100,
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      maxReconnectDelay: Math.max(100, this.#o.maxBackoffMs),
      discardWebsocketOnCommFailure: true,
      debug: () => {},
      logRawCommunication: false,
    });
    if (endpoint.kind === "tcp") {
      const target = {
        hostname: endpoint.hostname,
        port: endpoint.port,
        tls: endpoint.tls ? (this.#o.tls ?? {}) : undefined,
      };
      this.#client.webSocketFactory = () => (this.#socket = new TcpStompSocket(target));
    } else {
      const target = {
        url: endpoint.wsUrl!,
        tls: endpoint.tls ? (this.#o.tls ?? {}) : undefined,
        handshakeTimeoutMs: this.#o.connectTimeoutMs,
      };
      this.#client.webSocketFactory = () => new WsStompSocket(target);
    }
    this.#client.onConnect = () => this.#onConnect();
    this.#client.onWebSocketClose = () =>
      this.#onLost(new TransportError("the connection to RabbitMQ closed"));
    this.#client.onStompError = (frame: IFrame) =>
      this.#onLost(new TransportError(`RabbitMQ: ${frame.headers.message ?? "STOMP error"}`));
    this.#client.onUnhandledReceipt = (frame: IFrame) => {
      const id = frame.headers["receipt-id"];
      const pending = id === undefined ? undefined : this.#receipts.get(id);
      if (!pending) return;
      this.#receipts.delete(id!);
      clearTimeout(pending.timer);
      pending.resolve();
    };
    this.#client.onUnhandledMessage = () => {}; // a message for a subscription already closed: never acked, so redelivered
  }

  /** Connects (a `TransportError` if the broker cannot be reached or refuses the login). */
  static async connect(url: string, options: StompTransportOptions = {}): Promise<StompTransport> {
    const endpoint = parseUrl(url);
    const t = new StompTransport(endpoint, options);
    let failure: Error | undefined;
    const first = Promise.withResolvers<void>();
    const { onWebSocketClose, onStompError } = t.#client;
    t.#client.onWebSocketClose = (e) => {
      onWebSocketClose(e);
      failure ??= new TransportError(String((e as { reason?: string })?.reason || "connection closed"));
      first.reject(failure);
    };
    t.#client.onStompError = (f) => {
      onStompError(f);
      failure = new TransportError(`RabbitMQ refused the connection: ${f.headers.message ?? "STOMP error"}`);
      first.reject(failure);
    };
    void t.#up.promise.then(() => first.resolve());
    const timer = setTimeout(
      () => first.reject(new TransportError("connection timed out")),
      t.#o.connectTimeoutMs,
    );
    t.#client.activate();
    try {
      await first.promise;
    } catch (cause) {
      await t.close();
      throw new TransportError(`cannot reach RabbitMQ STOMP at ${describe(url)}`, { cause });
    } finally {
      clearTimeout(timer);
      t.#client.onWebSocketClose = onWebSocketClose;
      t.#client.onStompError = onStompError;
    }
    return t;
  }

  /** The local TCP port of the current connection (`stomp://` and `stomp+ssl://` only). */
  get localPort(): number | undefined {
    return this.#connected ? this.#socket?.localPort : undefined;
  }

  #onConnect(): void {
    this.#generation++;
    this.connections++;
    this.#connected = true;
    this.#declaredDead.clear();
    for (const s of this.#subs) if (!s.closed) this.#subscribeNow(s);
    this.#up.resolve();
  }

  #onLost(error: Error): void {
    if (this.#connected) {
      this.#connected = false;
      this.#up = Promise.withResolvers<void>();
      for (const s of this.#subs) s.stomp = undefined;
    }
    // A SEND whose RECEIPT did not arrive may or may not have been taken: the caller decides.
    for (const [id, p] of this.#receipts) {
      clearTimeout(p.timer);
      this.#receipts.delete(id);
      p.reject(
        new TransportError("the connection closed before RabbitMQ confirmed the message", { cause: error }),
      );
    }
  }

  /** @internal Waits for a connection, up to the publish timeout. */
  async ready(): Promise<void> {
    if (this.#closed) throw new TransportError("stomp transport is closed");
    if (this.#connected) return;
    const deadline = Date.now() + this.#o.publishTimeoutMs;
    while (!this.#connected) {
      if (this.#closed) throw new TransportError("stomp transport is closed");
      if (Date.now() > deadline) {
        throw new TransportError("RabbitMQ unreachable: timed out waiting for STOMP");
      }
      await Promise.race([this.#up.promise, sleep(100)]);
    }
  }

  /**
   * @internal Sends a frame and resolves on the broker's RECEIPT for it.
   */
  async send(destination: string, body: Uint8Array, headers: Headers): Promise<void> {
    await this.ready();
    const receipt = `${this.#tag}-${++this.#seq}`;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#receipts.delete(receipt);
        reject(new TransportError("RabbitMQ sent no receipt in time"));
      }, this.#o.publishTimeoutMs);
      this.#receipts.set(receipt, { resolve, reject, timer });
    });
    try {
      this.#client.publish({ destination, binaryBody: body, headers: { ...headers, receipt } });
    } catch (cause) {
      const p = this.#receipts.get(receipt);
      this.#receipts.delete(receipt);
      if (p) clearTimeout(p.timer);
      throw new TransportError("cannot send over STOMP", { cause });
    }
    await done;
  }

  /** Publishes; resolves when RabbitMQ's RECEIPT for the SEND arrived. */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    if (this.#closed) throw new TransportError("stomp transport is closed");
    checkMessageSize(bytes, this.capabilities.maxMessageBytes);
    const priority = options.priority ?? 4;
    if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
      throw new ConfigError("priority must be an integer from 0 to 9");
    }
    let destination: string;
    let declare: Headers = {};
    if ("agent" in to) {
      const d = this.destinations.agent(to.agent);
      destination = d.destination;
      declare = d.headers; // the queue is declared as its subscriber declares it, so SEND never conflicts
      await this.#declareDead(to.agent);
    } else {
      destination = this.destinations.channel(to.channel);
    }
    const headers: Headers = {
      ...declare,
      persistent: "true",
      priority: String(priority),
      "content-type": "application/vnd.spores",
    };
    if (options.ttlMs !== undefined) headers.expiration = String(Math.max(1, Math.floor(options.ttlMs)));
    if (options.dedupId !== undefined) headers["spores-id"] = checkId(options.dedupId, "dedup id");
    if (options.type !== undefined) headers["spores-type"] = checkId(options.type, "type");
    headers["spores-pub"] = `${this.#tag}.${++this.#pubSeq}`;
    try {
      await this.send(destination, bytes, headers);
    } catch (cause) {
      if (cause instanceof TransportError && cause.message.startsWith("stomp transport is closed")) {
        throw cause;
      }
      throw new TransportError(`RabbitMQ did not confirm a STOMP publish`, { cause });
    }
  }

  /** Declares `id`'s dead-letter queue once per connection (a SUBSCRIBE that is at once undone). */
  async #declareDead(id: string): Promise<void> {
    if (this.#declaredDead.has(id)) return;
    await this.ready();
    const d = this.destinations.dead(id);
    const subId = `dead-${this.#tag}-${++this.#subSeq}`;
    const receipt = `${this.#tag}-d${this.#subSeq}`;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#receipts.delete(receipt);
        reject(new TransportError("RabbitMQ sent no receipt for a declaration"));
      }, this.#o.publishTimeoutMs);
      this.#receipts.set(receipt, { resolve, reject, timer });
      try {
        const sub = this.#client.subscribe(d.destination, () => {}, {
          ...d.headers,
          id: subId,
          ack: "client-individual",
          "prefetch-count": "1",
          receipt,
        });
        sub.unsubscribe(); // no message is acked: anything delivered in between goes back to the queue
      } catch (cause) {
        this.#receipts.delete(receipt);
        clearTimeout(timer);
        reject(new TransportError("cannot declare a dead-letter queue", { cause }));
      }
    });
    this.#declaredDead.add(id);
  }

  #subscribeNow(s: SubState): void {
    const generation = this.#generation;
    s.stomp = this.#client.subscribe(s.destination, (m) => this.#deliver(s, m, generation), s.headers);
  }

  #deliver(s: SubState, m: IMessage, generation: number): void {
    const pub = m.headers["spores-pub"] ?? m.headers["message-id"] ?? "";
    const seen = s.counts.get(pub) ?? 0;
    const redeliveries = Math.max(seen, m.headers.redelivered === "true" ? 1 : 0);
    const priority = Number(m.headers.priority ?? 4);
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return Promise.resolve();
      settled = true;
      // A message of a connection that has since closed cannot be settled: the broker redelivers it.
      if (generation === this.#generation && this.#connected && !this.#closed) {
        try {
          f();
        } catch {
          // the connection went away meanwhile: the broker redelivers it
        }
      }
      return Promise.resolve();
    };
    const delivery: Delivery = {
      bytes: m.binaryBody,
      redeliveries,
      dedupId: m.headers["spores-id"] || undefined,
      priority: Number.isInteger(priority) && priority >= 0 && priority <= 9 ? priority : 4,
      ack: () =>
        settle(() => {
          s.counts.delete(pub);
          m.ack();
        }),
      nack: () =>
        settle(() => {
          s.counts.set(pub, redeliveries + 1);
          if (s.counts.size > 10_000) s.counts.delete(s.counts.keys().next().value!);
          m.nack({ requeue: "true" });
        }),
      deadLetter: () =>
        settle(() => {
          s.counts.delete(pub);
          m.nack({ requeue: "false" }); // to the dead-letter queue
        }),
    };
    queueMicrotask(async () => {
      try {
        await s.handler(delivery);
      } catch {
        await delivery.nack();
      }
    });
  }

  /** @internal Subscribes `handler` to `destination` with `headers` (kept across reconnections). */
  async subscribeRaw(
    destination: string,
    headers: Headers,
    handler: DeliveryHandler,
  ): Promise<Subscription> {
    await this.ready();
    const id = headers.id ?? `sub-${this.#tag}-${++this.#subSeq}`;
    const s: SubState = {
      destination,
      headers: { ...headers, id },
      handler,
      stomp: undefined,
      closed: false,
      counts: new Map(),
    };
    this.#subs.add(s);
    try {
      this.#subscribeNow(s);
    } catch (cause) {
      this.#subs.delete(s);
      throw new TransportError(`cannot subscribe to ${destination}`, { cause });
    }
    return {
      close: () => {
        s.closed = true;
        this.#subs.delete(s);
        const sub = s.stomp;
        s.stomp = undefined;
        try {
          if (this.#connected) sub?.unsubscribe();
        } catch {
          // gone with its connection
        }
        return Promise.resolve();
      },
    };
  }

  /** Consumes an agent's queue, or a channel member's durable subscription. */
  async subscribe(
    from: Address,
    handler: DeliveryHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.#closed) throw new TransportError("stomp transport is closed");
    const prefetch = options.prefetch ?? 64;
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) {
      throw new ConfigError("prefetch must be an integer from 1 to 65535");
    }
    const common = { ack: "client-individual", "prefetch-count": String(prefetch) };
    if ("agent" in from) {
      const d = this.destinations.agent(from.agent);
      await this.#declareDead(from.agent);
      return await this.subscribeRaw(d.destination, { ...d.headers, ...common }, handler);
    }
    const member = checkId(options.member, "channel member");
    const d = this.destinations.member(from.channel, member);
    await this.#declareDead(member);
    return await this.subscribeRaw(d.destination, { ...d.headers, ...common }, handler);
  }

  /** Closes: subscriptions stop, unacknowledged messages return to their queues, and the connection ends. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#subs) s.closed = true;
    this.#subs.clear();
    await this.directory.close();
    for (const [id, p] of this.#receipts) {
      clearTimeout(p.timer);
      this.#receipts.delete(id);
      p.reject(new TransportError("stomp transport is closed"));
    }
    const graceful = this.#connected;
    this.#connected = false;
    try {
      await this.#client.deactivate({ force: !graceful });
    } catch {
      // already gone
    }
  }
}
