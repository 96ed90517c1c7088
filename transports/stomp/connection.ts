/**
 * One STOMP connection to RabbitMQ (a `@stomp/stompjs` client on a TCP, TLS
 * or WebSocket socket): it connects with the URL's credentials and virtual
 * host, exchanges heartbeats both ways, reconnects with exponential backoff
 * and subscribes again, and turns every SEND into a promise of the broker's
 * RECEIPT.
 *
 * RabbitMQ answers an ACK or NACK for a subscription it no longer has with an
 * ERROR that closes the connection, and keeps a cancelled subscription's
 * unacknowledged messages until the connection ends. So the transport gives
 * each subscription a connection of its own: closing the subscription closes
 * its connection, and the broker requeues what was not acknowledged.
 *
 * @module
 */
import { Client, type IFrame, type IMessage, ReconnectionTimeMode } from "@stomp/stompjs";
import { ConfigError, TransportError } from "../../crypto/errors.ts";
import { describeUrl } from "../connect_error.ts";
import type { TransportEvents } from "../events.ts";
import type { Headers } from "./destinations.ts";
import { type StompTlsOptions, TcpStompSocket, WsStompSocket } from "./socket.ts";

/** What a URL says: how to reach the broker and as whom. */
export interface StompEndpoint {
  /** TCP (`stomp://`, `stomp+ssl://`) or WebSocket (`stomp+ws://`, `stomp+wss://`). */
  kind: "tcp" | "ws";
  /** Whether TLS is used. */
  tls: boolean;
  /** Host. */
  hostname: string;
  /** Port. */
  port: number;
  /** The WebSocket URL, for `kind: "ws"`. */
  wsUrl?: string;
  /** STOMP `login`. */
  login?: string;
  /** STOMP `passcode`. */
  passcode?: string;
  /** Virtual host (STOMP `host` header). */
  vhost?: string;
}

const SCHEMES = new Set(["stomp:", "stomp+ssl:", "stomp+ws:", "stomp+wss:"]);

/**
 * Reads a `stomp://`, `stomp+ssl://`, `stomp+ws://` or `stomp+wss://` URL.
 *
 * @example
 * ```ts
 * import { parseStompUrl } from "@spores/spores/stomp";
 * const e = parseStompUrl("stomp+ws://guest:guest@127.0.0.1:15674/ws?vhost=prod");
 * console.assert(e.kind === "ws" && e.vhost === "prod" && e.wsUrl === "ws://127.0.0.1:15674/ws");
 * ```
 */
export function parseStompUrl(url: string): StompEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ConfigError("not a valid stomp:// URL", { cause });
  }
  if (!SCHEMES.has(u.protocol)) throw new ConfigError(`not a stomp:// URL: ${describeUrl(url)}`);
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

/** Settings of a connection. */
export interface StompConnectionOptions {
  /** TLS settings for `stomp+ssl://` and `stomp+wss://`. */
  tls?: StompTlsOptions;
  /** Heartbeat interval both ways, ms (0: none). */
  heartbeatMs: number;
  /** How long a connection attempt may take, ms. */
  connectTimeoutMs: number;
  /** How long a SEND waits for a connection and for its RECEIPT, ms. */
  publishTimeoutMs: number;
  /** Longest pause between reconnection attempts, ms. */
  maxBackoffMs: number;
  /** Largest body accepted from the broker, bytes (a larger frame ends the connection). */
  maxMessageBytes: number;
}

/** A MESSAGE frame, as a subscription receives it. */
export interface StompMessage {
  /** The frame's headers. */
  readonly headers: Record<string, string>;
  /** The body, exactly as sent (`content-length` bytes). */
  readonly binaryBody: Uint8Array;
  /** Sends ACK for it (with `ack: client` or `client-individual`). */
  ack(headers?: Record<string, string>): void;
  /** Sends NACK for it (`requeue: "false"` dead-letters it on RabbitMQ). */
  nack(headers?: Record<string, string>): void;
}

/** Receives a MESSAGE frame; `generation` names the connection it came on. */
export type FrameHandler = (message: StompMessage, generation: number) => void;

interface PendingReceipt {
  resolve(): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Sub {
  destination: string;
  headers: Headers;
  onMessage: FrameHandler;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A STOMP connection that stays up until closed.
 *
 * @example
 * ```ts ignore
 * import { parseStompUrl, StompConnection } from "@spores/spores/stomp";
 * const c = await StompConnection.open(parseStompUrl("stomp://guest:guest@127.0.0.1:61613"), {
 *   heartbeatMs: 10_000,
 *   connectTimeoutMs: 10_000,
 *   publishTimeoutMs: 30_000,
 *   maxBackoffMs: 5000,
 *   maxMessageBytes: 4 << 20,
 * });
 * await c.send("/queue/demo", new Uint8Array([1]), {});
 * await c.close();
 * ```
 */
export class StompConnection {
  /** Connections made so far (1 + reconnections). */
  connections = 0;
  /** Where this connection reports itself lost and back, if anywhere (set once it is open). */
  events: TransportEvents | undefined;
  readonly #client: Client;
  readonly #o: StompConnectionOptions;
  readonly #receipts = new Map<string, PendingReceipt>();
  readonly #subs = new Map<string, Sub>();
  readonly #tag = crypto.randomUUID().slice(0, 12);
  #socket: TcpStompSocket | WsStompSocket | undefined;
  #generation = 0;
  #connected = false;
  #up = Promise.withResolvers<void>();
  #closed = false;
  #seq = 0;

  private constructor(endpoint: StompEndpoint, options: StompConnectionOptions) {
    this.#o = options;
    const connectHeaders: Headers = {};
    if (endpoint.login !== undefined) connectHeaders.login = endpoint.login;
    if (endpoint.passcode !== undefined) connectHeaders.passcode = endpoint.passcode;
    if (endpoint.vhost !== undefined) connectHeaders.host = endpoint.vhost;
    this.#client = new Client({
      connectHeaders,
      heartbeatIncoming: options.heartbeatMs,
      heartbeatOutgoing: options.heartbeatMs,
      connectionTimeout: options.connectTimeoutMs,
      reconnectDelay: 100,
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      maxReconnectDelay: Math.max(100, options.maxBackoffMs),
      discardWebsocketOnCommFailure: true,
      debug: () => {},
    });
    const tls = endpoint.tls ? (options.tls ?? {}) : undefined;
    if (endpoint.kind === "tcp" && tls?.servername !== undefined) {
      throw new ConfigError(
        "tls.servername is not supported over stomp+ssl://: put the server's name in the URL",
      );
    }
    const maxPendingBytes = options.maxMessageBytes + (64 << 10); // the body, its headers and a read's worth
    if (endpoint.kind === "tcp") {
      const target = { hostname: endpoint.hostname, port: endpoint.port, tls, maxPendingBytes };
      this.#client.webSocketFactory = () => (this.#socket = new TcpStompSocket(target));
    } else {
      const target = {
        url: endpoint.wsUrl!,
        tls,
        handshakeTimeoutMs: options.connectTimeoutMs,
        maxPendingBytes,
      };
      this.#client.webSocketFactory = () => (this.#socket = new WsStompSocket(target));
    }
    this.#client.onHeartbeatReceived = () => this.#socket?.progress();
    this.#client.onUnhandledFrame = () => this.#socket?.progress();
    this.#client.onConnect = () => this.#onConnect();
    this.#client.onWebSocketClose = () =>
      this.#onLost(new TransportError("the connection to RabbitMQ closed"));
    this.#client.onStompError = (frame: IFrame) =>
      this.#onLost(new TransportError(`RabbitMQ: ${frame.headers.message ?? "STOMP error"}`));
    this.#client.onUnhandledReceipt = (frame: IFrame) => {
      this.#socket?.progress();
      const id = frame.headers["receipt-id"];
      const pending = id === undefined ? undefined : this.#receipts.get(id);
      if (!pending) return;
      this.#receipts.delete(id!);
      clearTimeout(pending.timer);
      pending.resolve();
    };
    this.#client.onUnhandledMessage = () => {}; // never acknowledged: the broker redelivers it
  }

  /** Opens a connection; a `TransportError` if the broker cannot be reached or refuses the login. */
  static async open(endpoint: StompEndpoint, options: StompConnectionOptions): Promise<StompConnection> {
    const c = new StompConnection(endpoint, options);
    const first = Promise.withResolvers<void>();
    const { onWebSocketClose, onStompError } = c.#client;
    let refusal: Error | undefined;
    c.#client.onWebSocketClose = (e) => {
      onWebSocketClose(e);
      first.reject(
        refusal ?? new TransportError(String((e as { reason?: string })?.reason || "connection closed")),
      );
    };
    c.#client.onStompError = (f) => {
      onStompError(f);
      refusal = new TransportError(`RabbitMQ refused the connection: ${f.headers.message ?? "STOMP error"}`);
      first.reject(refusal);
    };
    void c.#up.promise.then(() => first.resolve());
    const timer = setTimeout(
      () => first.reject(new TransportError("connection timed out")),
      options.connectTimeoutMs,
    );
    c.#client.activate();
    try {
      await first.promise;
    } catch (error) {
      await c.close();
      throw error;
    } finally {
      clearTimeout(timer);
      c.#client.onWebSocketClose = onWebSocketClose;
      c.#client.onStompError = onStompError;
    }
    return c;
  }

  /** The local TCP port of the current connection (`stomp://` and `stomp+ssl://` only). */
  get localPort(): number | undefined {
    return this.#connected && this.#socket instanceof TcpStompSocket ? this.#socket.localPort : undefined;
  }

  /** Which connection is current: a message of an older one cannot be acknowledged any more. */
  get generation(): number {
    return this.#generation;
  }

  /** Whether the connection is up and not closed. */
  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  #onConnect(): void {
    this.#socket?.progress();
    this.#generation++;
    this.connections++;
    this.#connected = true;
    this.events?.linkUp();
    const generation = this.#generation;
    for (const [id, s] of this.#subs) {
      this.#client.subscribe(s.destination, (m) => this.#received(s.onMessage, m, generation), {
        ...s.headers,
        id,
      });
    }
    this.#up.resolve();
  }

  #onLost(error: Error): void {
    if (!this.#closed) this.events?.linkDown(error);
    if (this.#connected) {
      this.#connected = false;
      this.#up = Promise.withResolvers<void>();
    }
    // A SEND whose RECEIPT did not arrive may or may not have been taken: the caller decides.
    for (const [id, p] of this.#receipts) {
      clearTimeout(p.timer);
      this.#receipts.delete(id);
      p.reject(new TransportError("the connection closed before RabbitMQ confirmed", { cause: error }));
    }
  }

  #received(onMessage: FrameHandler, m: IMessage, generation: number): void {
    this.#socket?.progress();
    onMessage(m, generation);
  }

  /** Waits for the connection, up to the publish timeout. */
  async ready(): Promise<void> {
    const deadline = Date.now() + this.#o.publishTimeoutMs;
    while (!this.#connected || this.#closed) {
      if (this.#closed) throw new TransportError("stomp connection is closed");
      if (Date.now() > deadline) {
        throw new TransportError("RabbitMQ unreachable: timed out waiting for STOMP");
      }
      await Promise.race([this.#up.promise, sleep(100)]);
    }
  }

  #expectReceipt(receipt: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#receipts.delete(receipt);
        reject(new TransportError("RabbitMQ sent no receipt in time"));
      }, this.#o.publishTimeoutMs);
      this.#receipts.set(receipt, { resolve, reject, timer });
    });
  }

  #dropReceipt(receipt: string): void {
    const p = this.#receipts.get(receipt);
    if (!p) return;
    this.#receipts.delete(receipt);
    clearTimeout(p.timer);
  }

  /** Sends `body` to `destination`; resolves when the broker's RECEIPT for it arrived. */
  async send(destination: string, body: Uint8Array, headers: Headers): Promise<void> {
    await this.ready();
    const receipt = `${this.#tag}-${++this.#seq}`;
    const done = this.#expectReceipt(receipt);
    try {
      this.#client.publish({ destination, binaryBody: body, headers: { ...headers, receipt } });
    } catch (cause) {
      this.#dropReceipt(receipt);
      throw new TransportError("cannot send over STOMP", { cause });
    }
    await done;
  }

  /**
   * Subscribes (again after each reconnection); resolves when the broker's
   * RECEIPT for the SUBSCRIBE arrived, so the queue exists.
   */
  async subscribe(destination: string, headers: Headers, onMessage: FrameHandler): Promise<void> {
    await this.ready();
    const id = headers.id ?? `sub-${this.#tag}-${++this.#seq}`;
    const receipt = `${this.#tag}-${++this.#seq}`;
    this.#subs.set(id, { destination, headers, onMessage });
    const done = this.#expectReceipt(receipt);
    const generation = this.#generation;
    try {
      this.#client.subscribe(destination, (m) => this.#received(onMessage, m, generation), {
        ...headers,
        id,
        receipt,
      });
    } catch (cause) {
      this.#subs.delete(id);
      this.#dropReceipt(receipt);
      throw new TransportError(`cannot subscribe to ${destination}`, { cause });
    }
    await done;
  }

  /**
   * Ends the subscription `id` with `headers` on the UNSUBSCRIBE (for a
   * durable subscription, `durable: "true"` and its `x-queue-name` make
   * RabbitMQ delete its queue); resolves on the broker's RECEIPT.
   */
  async unsubscribe(id: string, headers: Headers = {}): Promise<void> {
    await this.ready();
    this.#subs.delete(id);
    const receipt = `${this.#tag}-${++this.#seq}`;
    const done = this.#expectReceipt(receipt);
    try {
      this.#client.unsubscribe(id, { ...headers, receipt });
    } catch (cause) {
      this.#dropReceipt(receipt);
      throw new TransportError(`cannot unsubscribe ${id}`, { cause });
    }
    await done;
  }

  /** Closes: the broker requeues every message not acknowledged. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subs.clear();
    for (const [id, p] of this.#receipts) {
      clearTimeout(p.timer);
      this.#receipts.delete(id);
      p.reject(new TransportError("stomp transport is closed"));
    }
    const graceful = this.#connected;
    this.#connected = false;
    try {
      const deactivated = this.#client.deactivate({ force: !graceful });
      // A broker that does not answer the DISCONNECT: the socket is dropped.
      const timer = setTimeout(() => void this.#client.deactivate({ force: true }).catch(() => {}), 2000);
      await deactivated.finally(() => clearTimeout(timer));
    } catch {
      // already gone
    }
  }
}
