/**
 * A socket for STOMP over plain TCP or TLS (`stomp://`, `stomp+ssl://`), in
 * the shape `@stomp/stompjs` expects of a WebSocket (`IStompSocket`). STOMP
 * frames are self-delimiting, so a byte stream carries them as they are: each
 * chunk read is handed to the client's frame parser as an `ArrayBuffer`, and
 * each frame the client sends is written in order.
 *
 * @module
 */
import type { IStompSocket } from "@stomp/stompjs";
import { StompFrameGate } from "./frame_gate.ts";
import type { StompTlsOptions } from "./options.ts";
export type { StompTlsOptions } from "./options.ts";

/** Where a TCP socket connects. */
export interface TcpTarget {
  /** Host name or address. */
  hostname: string;
  /** Port. */
  port: number;
  /** TLS, for `stomp+ssl://`; absent for plain TCP. */
  tls?: StompTlsOptions;
  /** Most bytes the peer may send without completing a frame (see `progress`). Default 16 MiB. */
  maxPendingBytes?: number;
}

/** The byte stream under a `TcpStompSocket`: a `Deno.Conn` on Deno, `node:net`/`node:tls` on Node. */
export interface ByteConn {
  /** Reads into `p`; the count read, or `null` at the end of the stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Closes the connection (a pending `read` ends). */
  close(): void;
}

const DEFAULT_MAX_PENDING = 16 << 20;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function overLimit(limit: number): Error {
  return new Error(`the broker sent over ${limit} bytes without completing a frame`);
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
const READ_BUFFER = 64 * 1024;

/**
 * A TCP (or TLS) connection that looks like a WebSocket to `@stomp/stompjs`.
 *
 * @example
 * ```ts ignore
 * import { Client } from "@stomp/stompjs";
 * import { TcpStompSocket } from "@spores/spores/stomp";
 * const client = new Client({
 *   webSocketFactory: () => new TcpStompSocket({ hostname: "127.0.0.1", port: 61613 }),
 * });
 * client.activate();
 * ```
 */
export class TcpStompSocket implements IStompSocket {
  /** A description of the peer (`tcp://host:port` or `tls://host:port`). */
  readonly url: string;
  /** Called once the connection is open. */
  onopen: ((ev?: unknown) => unknown) | null | undefined = null;
  /** Called once when the connection has closed. */
  onclose: ((ev?: unknown) => unknown) | null | undefined = null;
  /** Called when the connection failed. */
  onerror: ((ev: unknown) => unknown) | null | undefined = null;
  /** Called with `{ data: ArrayBuffer }` for each chunk read. */
  onmessage: ((ev: unknown) => unknown) | null | undefined = null;
  /** Only `"arraybuffer"` is supported. */
  binaryType = "arraybuffer";
  #state = CONNECTING;
  #conn: ByteConn | undefined;
  #writing: Promise<void> = Promise.resolve();
  readonly #gate: StompFrameGate;
  #queued: Uint8Array[] = [];
  #queuedBytes = 0;
  #flushing = false;
  #closeReported = false;
  /** The local port of the open connection (to find it in the broker's connection list). */
  localPort: number | undefined;

  /**
   * Connects to `target` (the connection opens asynchronously; see `onopen`).
   *
   * @param target Host, port and TLS settings.
   */
  constructor(target: TcpTarget) {
    this.url = `${target.tls ? "tls" : "tcp"}://${target.hostname}:${target.port}`;
    this.#gate = new StompFrameGate(target.maxPendingBytes ?? DEFAULT_MAX_PENDING);
    void this.#open(target);
  }

  /** `CONNECTING` (0), `OPEN` (1), `CLOSING` (2) or `CLOSED` (3). */
  get readyState(): number {
    return this.#state;
  }

  /** A frame was completed (frames are followed as they are read here: nothing to do). */
  progress(): void {}

  /** MESSAGE frames over `maxPendingBytes` whose body was skipped (handed on empty, to be dead-lettered). */
  get oversized(): number {
    return this.#gate.oversized;
  }

  async #open(target: TcpTarget): Promise<void> {
    let conn: ByteConn;
    try {
      if (!("Deno" in globalThis)) {
        const { connectNode } = await import("./node_tcp.ts");
        const node = await connectNode(target.hostname, target.port, target.tls);
        conn = node;
        this.localPort = node.localPort;
      } else if (target.tls) {
        const ca = target.tls.ca === undefined
          ? undefined
          : Array.isArray(target.tls.ca)
          ? target.tls.ca
          : [target.tls.ca];
        const options: Deno.ConnectTlsOptions & Partial<Deno.TlsCertifiedKeyPem> = {
          hostname: target.hostname,
          port: target.port,
          caCerts: ca,
        };
        if (target.tls.cert !== undefined || target.tls.key !== undefined) {
          options.cert = target.tls.cert;
          options.key = target.tls.key;
        }
        const tls = await Deno.connectTls(options);
        await tls.handshake(); // a wrong CA or a refused client certificate fails here, not on first write
        this.localPort = (tls.localAddr as Deno.NetAddr).port;
        conn = tls;
      } else {
        const tcp = await Deno.connect({ hostname: target.hostname, port: target.port, transport: "tcp" });
        tcp.setNoDelay(true);
        this.localPort = tcp.localAddr.port;
        conn = tcp;
      }
    } catch (error) {
      this.#state = CLOSED;
      this.onerror?.({ type: "error", error });
      this.#reportClose(1006, String((error as Error)?.message ?? error));
      return;
    }
    if (this.#state !== CONNECTING) {
      conn.close(); // closed while connecting
      return;
    }
    this.#conn = conn;
    this.#state = OPEN;
    this.onopen?.({ type: "open" });
    void this.#read(conn);
  }

  async #read(conn: ByteConn): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER);
    let reason = "closed by the peer";
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        // The frame parser keeps what it has not completed: a peer may not make it grow without bound, and a
        // message over the limit is skipped (see ./frame_gate.ts).
        const parts: Uint8Array[] = [];
        let over: unknown;
        try {
          this.#gate.push(buffer.subarray(0, n), parts);
        } catch (error) {
          over = error; // the frames before it are still handed on
        }
        // A copy: the parser may keep a reference while the buffer is reused.
        const data = parts.length === 1 ? parts[0]!.slice() : concat(parts);
        if (data.length > 0) this.onmessage?.({ data: data.buffer });
        if (over) throw over;
      }
    } catch (error) {
      if (this.#state === OPEN) {
        reason = String((error as Error)?.message ?? error);
        this.onerror?.({ type: "error", error });
      }
    }
    this.#shut();
    this.#reportClose(this.#state === CLOSING ? 1000 : 1006, reason);
  }

  /** Queues `data` for writing; writes happen in call order, frames queued meanwhile in one write. */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (this.#state !== OPEN || !this.#conn) return;
    let bytes: Uint8Array;
    if (typeof data === "string") bytes = new TextEncoder().encode(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) bytes = new Uint8Array(data);
    else throw new TypeError("a Blob cannot be sent on a TCP STOMP socket");
    this.#queued.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#flushing) {
      this.#flushing = true;
      this.#writing = this.#flush(this.#conn);
    }
  }

  async #flush(conn: ByteConn): Promise<void> {
    try {
      while (this.#queued.length > 0 && this.#state === OPEN) {
        const chunks = this.#queued;
        const total = this.#queuedBytes;
        this.#queued = [];
        this.#queuedBytes = 0;
        let out: Uint8Array;
        if (chunks.length === 1) out = chunks[0]!;
        else {
          out = new Uint8Array(total);
          let off = 0;
          for (const c of chunks) {
            out.set(c, off);
            off += c.length;
          }
        }
        let off = 0;
        while (off < out.length) off += await conn.write(out.subarray(off));
      }
    } catch (error) {
      if (this.#state === OPEN) this.onerror?.({ type: "error", error });
      this.#shut();
    } finally {
      this.#flushing = false;
    }
  }

  /** Closes after the queued writes are done. */
  close(): void {
    if (this.#state === CLOSED || this.#state === CLOSING) return;
    if (this.#state === CONNECTING) {
      this.#state = CLOSED;
      this.#reportClose(1000, "closed while connecting");
      return;
    }
    this.#state = CLOSING;
    void this.#writing.finally(() => this.#shut());
  }

  /** Closes at once, dropping what is queued. */
  terminate(): void {
    if (this.#state === CONNECTING) return this.close();
    this.#state = CLOSING;
    this.#shut();
  }

  #shut(): void {
    const conn = this.#conn;
    this.#conn = undefined;
    if (this.#state !== CLOSED && this.#state !== CLOSING) this.#state = CLOSING;
    try {
      conn?.close(); // ends the read loop, which reports the close
    } catch {
      // already closed
    }
  }

  #reportClose(code: number, reason: string): void {
    this.#state = CLOSED;
    if (this.#closeReported) return;
    this.#closeReported = true;
    this.onclose?.({ type: "close", code, reason, wasClean: code === 1000 });
  }
}

/** The part of the `ws` package's WebSocket this module uses. */
interface NodeWebSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  on(event: "open", f: () => void): void;
  on(event: "message", f: (data: Uint8Array | Uint8Array[] | ArrayBuffer) => void): void;
  on(event: "close", f: (code: number, reason: Uint8Array) => void): void;
  on(event: "error", f: (error: Error) => void): void;
  send(data: string | Uint8Array | ArrayBufferLike): void;
  close(): void;
  terminate(): void;
}

/** Where a WebSocket connects. */
export interface WsTarget {
  /** `ws://` or `wss://` URL of the Web-STOMP endpoint. */
  url: string;
  /** TLS, for `wss://`. */
  tls?: StompTlsOptions;
  /** How long the opening handshake may take, ms. */
  handshakeTimeoutMs?: number;
  /** Most bytes the peer may send without completing a frame (see `progress`). Default 16 MiB. */
  maxPendingBytes?: number;
}

function toArrayBuffer(data: Uint8Array | Uint8Array[] | ArrayBuffer): ArrayBuffer {
  if (data instanceof ArrayBuffer) return data;
  if (Array.isArray(data)) {
    const out = new Uint8Array(data.reduce((n, b) => n + b.length, 0));
    let off = 0;
    for (const b of data) out.set(b, (off += b.length) - b.length);
    return out.buffer;
  }
  // A copy: a Node Buffer's `slice` is a view into a shared pool.
  const out = new Uint8Array(data.byteLength);
  out.set(data);
  return out.buffer;
}

/**
 * A WebSocket to RabbitMQ Web-STOMP that hands every frame to the client as
 * bytes. Web-STOMP sends text frames unless the broker is configured with
 * `web_stomp.ws_frame = binary`; a browser-style WebSocket decodes those as
 * UTF-8 and so corrupts (or refuses) a binary body. This socket (on the `ws`
 * package, UTF-8 validation off) passes the frame's bytes through unchanged,
 * so binary spores survive either setting.
 *
 * @example
 * ```ts ignore
 * import { Client } from "@stomp/stompjs";
 * import { WsStompSocket } from "@spores/spores/stomp";
 * const client = new Client({ webSocketFactory: () => new WsStompSocket({ url: "ws://127.0.0.1:15674/ws" }) });
 * client.activate();
 * ```
 */
export class WsStompSocket implements IStompSocket {
  /** The endpoint. */
  readonly url: string;
  /** Called once the connection is open. */
  onopen: ((ev?: unknown) => unknown) | null | undefined = null;
  /** Called once when the connection has closed. */
  onclose: ((ev?: unknown) => unknown) | null | undefined = null;
  /** Called when the connection failed. */
  onerror: ((ev: unknown) => unknown) | null | undefined = null;
  /** Called with `{ data: ArrayBuffer }` for each frame received. */
  onmessage: ((ev: unknown) => unknown) | null | undefined = null;
  /** Only `"arraybuffer"` is supported. */
  binaryType = "arraybuffer";
  #ws: NodeWebSocket | undefined;
  #state = CONNECTING;
  #pending = 0;
  readonly #maxPending: number;
  #closeReported = false;

  /**
   * Opens a WebSocket to `target` (asynchronously; see `onopen`).
   *
   * @param target URL and TLS settings.
   */
  constructor(target: WsTarget) {
    this.url = target.url;
    this.#maxPending = target.maxPendingBytes ?? DEFAULT_MAX_PENDING;
    void this.#open(target);
  }

  /** `CONNECTING` (0), `OPEN` (1), `CLOSING` (2) or `CLOSED` (3). */
  get readyState(): number {
    return this.#ws?.readyState ?? this.#state;
  }

  /** A frame was completed: the bytes received so far no longer count against `maxPendingBytes`. */
  progress(): void {
    this.#pending = 0;
  }

  async #open(target: WsTarget): Promise<void> {
    let ws: NodeWebSocket;
    try {
      const { default: WebSocket } = await import("ws");
      // TLS options (servername included) go to Node's tls.connect; not every @types/ws lists them all.
      const options: Record<string, unknown> = {
        skipUTF8Validation: true,
        perMessageDeflate: false,
        maxPayload: this.#maxPending, // one WebSocket message: ws refuses a larger one
        handshakeTimeout: target.handshakeTimeoutMs ?? 10_000,
        ca: target.tls?.ca,
        cert: target.tls?.cert,
        key: target.tls?.key,
        servername: target.tls?.servername,
      };
      ws = new WebSocket(
        target.url,
        ["v12.stomp", "v11.stomp", "v10.stomp"],
        options as ConstructorParameters<typeof WebSocket>[2],
      ) as NodeWebSocket;
    } catch (error) {
      this.#state = CLOSED;
      this.onerror?.({ type: "error", error });
      this.#reportClose(1006, String((error as Error)?.message ?? error));
      return;
    }
    if (this.#state !== CONNECTING) return ws.terminate();
    this.#ws = ws;
    ws.on("open", () => this.onopen?.({ type: "open" }));
    ws.on("message", (data) => {
      const bytes = toArrayBuffer(data);
      if ((this.#pending += bytes.byteLength) > this.#maxPending) {
        this.onerror?.({ type: "error", error: overLimit(this.#maxPending) });
        return ws.terminate();
      }
      this.onmessage?.({ data: bytes });
    });
    ws.on("error", (error) => this.onerror?.({ type: "error", error }));
    ws.on("close", (code, reason) => this.#reportClose(code, new TextDecoder().decode(reason)));
  }

  /** Sends a frame (binary when `data` is bytes). */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return;
    if (typeof data === "string") ws.send(data);
    else if (ArrayBuffer.isView(data)) ws.send(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) ws.send(new Uint8Array(data));
    else throw new TypeError("a Blob cannot be sent on this socket");
  }

  /** Closes with the WebSocket closing handshake. */
  close(): void {
    if (!this.#ws) {
      this.#state = CLOSED;
      this.#reportClose(1000, "closed while connecting");
      return;
    }
    this.#ws.close();
  }

  /** Closes at once. */
  terminate(): void {
    if (!this.#ws) return this.close();
    this.#ws.terminate();
  }

  #reportClose(code: number, reason: string): void {
    this.#state = CLOSED;
    if (this.#closeReported) return;
    this.#closeReported = true;
    this.onclose?.({ type: "close", code, reason, wasClean: code === 1000 });
  }
}
