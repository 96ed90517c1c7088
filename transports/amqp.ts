/**
 * The RabbitMQ transport (`amqp://`, `amqps://`), on amqplib.
 *
 * Deno permissions: `--allow-net=<host>:<port>` (plus `--allow-read` for
 * certificate files, and for this module itself when it is loaded from local
 * files by URL scheme).
 *
 * @example
 * ```ts ignore
 * import { Agent } from "@spores/spores";
 * const alice = await Agent.start({ id: "alice", transport: "amqp://guest:guest@127.0.0.1:5672" });
 * ```
 *
 * @module
 */
import type { Transport } from "./transport.ts";
import { AmqpTransport, type AmqpTransportOptions } from "./amqp/transport.ts";
import { checkOptions } from "./option_keys.ts";
import { AMQP_OPTION_KEYS } from "./amqp/options.ts";

export * from "./amqp/directory.ts";
export { type AmqpTlsOptions, AmqpTransport, type AmqpTransportOptions } from "./amqp/transport.ts";

/**
 * Connects to RabbitMQ at `url` (`amqp://user:password@host:port/vhost?heartbeat=15` or `amqps://...`).
 * Options are {@linkcode AmqpTransportOptions}; a key it does not know is a `ConfigError`.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/amqp";
 * const transport = await createTransport("amqp://guest:guest@127.0.0.1:5672");
 * await transport.close();
 * ```
 */
export async function createTransport(url: string, options: AmqpTransportOptions = {}): Promise<Transport> {
  checkOptions("amqp", options, AMQP_OPTION_KEYS);
  return await AmqpTransport.connect(url, options);
}
