/**
 * The NATS transport (`nats://`, `tls://`), on nats.js v3 with JetStream:
 * durable pull consumers per agent and per channel member, PubAck-confirmed
 * publication deduplicated by spore id, a dead-letter subject, and agent
 * cards in a key-value bucket. Core NATS without JetStream is refused (it
 * cannot redeliver).
 *
 * Deno permissions: `--allow-net=<host>:<port>` for each server (plus
 * `--allow-read` for this module itself when it is loaded from local files by
 * URL scheme).
 *
 * @example
 * ```ts ignore
 * import { Agent } from "@spores/spores";
 * const alice = await Agent.start({ id: "alice", transport: "nats://127.0.0.1:4222" });
 * ```
 *
 * @module
 */
import type { Transport } from "./transport.ts";
import { NatsTransport, type NatsTransportOptions } from "./nats/transport.ts";
import { checkOptions } from "./option_keys.ts";
import { NATS_OPTION_KEYS } from "./nats/options.ts";

export * from "./nats/connection.ts";
export * from "./nats/directory.ts";
export * from "./nats/pins.ts";
export * from "./nats/subjects.ts";
export {
  EXPIRES_HEADER,
  type NatsDelivery,
  NatsTransport,
  type NatsTransportOptions,
  PRIORITY_HEADER,
} from "./nats/transport.ts";

/**
 * Connects to NATS at `url` (`nats://[user:pass@|token@]host:port[,host:port...]` or `tls://...`).
 * Options are {@linkcode NatsTransportOptions}; a key it does not know is a `ConfigError`.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/nats";
 * const transport = await createTransport("nats://127.0.0.1:4222", { prefix: "acme" });
 * await transport.close();
 * ```
 */
export async function createTransport(url: string, options: NatsTransportOptions = {}): Promise<Transport> {
  checkOptions("nats", options, NATS_OPTION_KEYS);
  return await NatsTransport.connect(url, options);
}
