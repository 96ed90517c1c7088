/**
 * The Node transport of nats.js with one fix: under Deno, a TLS alert that
 * arrives right after the handshake (a server refusing the client
 * certificate) can be emitted while nats.js has no `error` listener on the
 * socket, which would end the process with an uncaught error. This
 * transport keeps a listener on the socket for its whole life; the failure
 * still reaches nats.js through the socket's `close` event, and so the caller.
 *
 * @module
 */
import * as tls from "node:tls";
import {
  type ConnectionOptions,
  type NatsConnection,
  NatsConnectionImpl,
  setTransportFactory,
} from "@nats-io/transport-node";
import { nodeResolveHost, NodeTransport } from "@nats-io/transport-node/lib/node_transport.js";

const ignore = () => {};

class GuardedNodeTransport extends NodeTransport {
  override async startTLS(): Promise<tls.TLSSocket> {
    // The plain socket, between the server's INFO and the TLS handshake.
    this.socket.on("error", ignore);
    let options: tls.ConnectionOptions = {
      socket: this.socket,
      servername: this.tlsName,
      rejectUnauthorized: true,
    };
    if (typeof this.options.tls === "object" && this.options.tls !== null) {
      const certs = (await this.loadClientCerts()) || {};
      options = { ...options, ...this.options.tls, ...certs } as tls.ConnectionOptions;
    }
    return await new Promise<tls.TLSSocket>((resolve, reject) => {
      let failure: Error | undefined;
      const socket = tls.connect(options, () => {
        socket.removeAllListeners();
        socket.on("error", ignore);
        resolve(socket);
      });
      socket.on("error", (e: Error) => failure = e);
      socket.on("close", () => {
        socket.removeAllListeners();
        socket.on("error", ignore);
        reject(failure ?? new Error("TLS connection closed during the handshake"));
      });
    });
  }
}

/** Connects with nats.js on the guarded Node transport. */
export function connectGuarded(options: ConnectionOptions): Promise<NatsConnection> {
  setTransportFactory({ factory: () => new GuardedNodeTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(options);
}
