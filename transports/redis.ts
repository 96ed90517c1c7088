/**
 * The Redis transport (`redis://`, `rediss://`), on ioredis: Streams with
 * consumer groups for agents and channels, a card directory, and a shared
 * session store so that several processes of one agent can consume together.
 *
 * Deno permissions: `--allow-net=<host>:<port>` (plus `--allow-read` for a CA
 * or client certificate file, and for this module itself when it is loaded
 * from local files by URL scheme).
 *
 * @example
 * ```ts ignore
 * import { Agent } from "@spores/spores";
 * import { RedisSessionStore } from "@spores/spores/redis";
 * const alice = await Agent.start({ id: "alice", transport: "redis://127.0.0.1:6379" });
 * ```
 *
 * @module
 */
import type { Transport } from "./transport.ts";
import { RedisTransport, type RedisTransportOptions } from "./redis/transport.ts";
import { checkOptions } from "./option_keys.ts";
import { REDIS_OPTION_KEYS } from "./redis/options.ts";

export * from "./redis/connection.ts";
export * from "./redis/directory.ts";
export * from "./redis/pins.ts";
export * from "./redis/store.ts";
export {
  keysOf,
  type RedisDurability,
  RedisTransport,
  type RedisTransportOptions,
} from "./redis/transport.ts";

/**
 * Connects to Redis at `url` (`redis://[user:password@]host:port[/db]` or `rediss://...`).
 * Options are {@linkcode RedisTransportOptions}; a key it does not know is a `ConfigError`.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/redis";
 * const transport = await createTransport("redis://127.0.0.1:6379/0");
 * await transport.close();
 * ```
 */
export async function createTransport(url: string, options: RedisTransportOptions = {}): Promise<Transport> {
  checkOptions("redis", options, REDIS_OPTION_KEYS);
  return await RedisTransport.connect(url, options);
}
