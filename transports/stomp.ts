/**
 * The RabbitMQ STOMP transport (`@stomp/stompjs`): `stomp://` (TCP, port
 * 61613), `stomp+ssl://` (TLS, 61614), `stomp+ws://` (Web-STOMP, 15674,
 * path `/ws`) and `stomp+wss://` (15673).
 *
 * Deno permissions: `--allow-net=<host>:<port>`; for `stomp+ws://` and
 * `stomp+wss://` also `--allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE`
 * (read by the `ws` package); plus `--allow-read` for certificate files, and
 * for this module itself when it is loaded from local files by URL scheme.
 *
 * @example
 * ```ts ignore
 * import { Agent } from "@spores/spores";
 * const alice = await Agent.start({ id: "alice", transport: "stomp://guest:guest@127.0.0.1:61613" });
 * ```
 *
 * @module
 */
import type { Transport } from "./transport.ts";
import { StompTransport, type StompTransportOptions } from "./stomp/transport.ts";
import { checkOptions } from "./option_keys.ts";
import { STOMP_OPTION_KEYS } from "./stomp/options.ts";

export {
  type FrameHandler,
  parseStompUrl,
  StompConnection,
  type StompConnectionOptions,
  type StompEndpoint,
  type StompMessage,
} from "./stomp/connection.ts";
export {
  type Destination,
  type Headers,
  StompDestinations,
  type StompQueueType,
  type StompTopology,
} from "./stomp/destinations.ts";
export { StompDirectory, type StompFrameSource } from "./stomp/directory.ts";
export { OVERSIZE_HEADER, StompFrameGate } from "./stomp/frame_gate.ts";
export {
  type StompTlsOptions,
  TcpStompSocket,
  type TcpTarget,
  WsStompSocket,
  type WsTarget,
} from "./stomp/socket.ts";
export { StompTransport, type StompTransportOptions } from "./stomp/transport.ts";

/**
 * Connects to RabbitMQ's STOMP adapter at `url`:
 * `stomp://user:password@host:61613/vhost`, `stomp+ssl://...:61614/vhost`,
 * `stomp+ws://user:password@host:15674/ws?vhost=name` or `stomp+wss://...`.
 * Options are {@linkcode StompTransportOptions}; a key it does not know is a `ConfigError`.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/stomp";
 * const transport = await createTransport("stomp+ws://guest:guest@127.0.0.1:15674/ws");
 * await transport.close();
 * ```
 */
export async function createTransport(url: string, options: StompTransportOptions = {}): Promise<Transport> {
  checkOptions("stomp", options, STOMP_OPTION_KEYS);
  return await StompTransport.connect(url, options);
}
