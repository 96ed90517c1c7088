/**
 * A TCP or TLS connection on Node's `node:net` / `node:tls`, in the shape of
 * the byte stream the STOMP socket reads and writes on Deno (`read` into a
 * buffer, `write` that resolves once the bytes are handed to the system,
 * `close`). Node has no `Deno.connect`; this is what `stomp://` and
 * `stomp+ssl://` use there.
 *
 * @module
 */
import { connect as connectTcp, isIP, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import type { ByteConn, StompTlsOptions } from "./socket.ts";

/** A connected `node:net` socket read and written as a `ByteConn`. */
class NodeConn implements ByteConn {
  readonly #socket: Socket;
  readonly #chunks: AsyncIterator<Uint8Array>;
  #rest: Uint8Array = new Uint8Array(0);

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#chunks = socket[Symbol.asyncIterator]();
  }

  get localPort(): number {
    return this.#socket.localPort ?? 0;
  }

  async read(into: Uint8Array): Promise<number | null> {
    if (this.#rest.length === 0) {
      const next = await this.#chunks.next();
      if (next.done) return null;
      this.#rest = next.value;
    }
    const n = Math.min(into.length, this.#rest.length);
    into.set(this.#rest.subarray(0, n));
    this.#rest = this.#rest.subarray(n);
    return n;
  }

  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length));
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** Connects to `hostname:port`, over TLS when `tls` is given; resolves once the connection (and handshake) is up. */
export function connectNode(
  hostname: string,
  port: number,
  tls: StompTlsOptions | undefined,
): Promise<ByteConn & { localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? connectTls({
        host: hostname,
        port,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        servername: tls.servername ?? (isIP(hostname) ? undefined : hostname),
      })
      : connectTcp({ host: hostname, port });
    const failed = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once("error", failed);
    socket.once(tls ? "secureConnect" : "connect", () => {
      socket.off("error", failed);
      socket.setNoDelay(true);
      resolve(new NodeConn(socket));
    });
  });
}
