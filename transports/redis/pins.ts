/**
 * Durable trust on first use in Redis: each agent's pins in a hash of its
 * own, `{prefix}:pins:{<agent>}:<owner fingerprint>`, each pin signed by the
 * agent's identity (`SignedPins`), so Redis cannot change one undetected.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { TransportError } from "../../crypto/errors.ts";
import type { Identity } from "../../crypto/identity.ts";
import { checkId } from "../../spore/limits.ts";
import { type PinStore, SignedPins } from "../../spore/signed_pins.ts";
import { TofuTrust } from "../../spore/trust.ts";
import type { RedisClient } from "./connection.ts";
import type { RedisTransport } from "./transport.ts";

/**
 * The pins of one agent (one identity) in Redis.
 *
 * @example
 * ```ts ignore
 * import { Identity, SignedPins, TofuTrust } from "@spores/spores";
 * import { RedisPinStore, RedisTransport } from "@spores/spores/redis";
 * const transport = await RedisTransport.connect("redis://127.0.0.1:6379");
 * const identity = await Identity.generate();
 * const pins = new RedisPinStore(transport.client, "alice", identity.fingerprint);
 * const trust = new TofuTrust(new SignedPins(pins, identity));
 * ```
 */
export class RedisPinStore implements PinStore {
  readonly #client: RedisClient;
  readonly #key: string;

  /**
   * The pins `agent`, under the identity whose fingerprint is `owner`, keeps in the Redis `client` reaches.
   *
   * @param options `prefix`, as the transport's (default `"spores"`).
   */
  constructor(client: RedisClient, agent: string, owner: string, options: { prefix?: string } = {}) {
    this.#client = client;
    this.#key = `${options.prefix ?? "spores"}:pins:{${checkId(agent, "agent id")}}:${owner}`;
  }

  /** The record kept for `id`. */
  async get(id: string): Promise<Uint8Array | undefined> {
    try {
      const raw = await this.#client.hgetBuffer(this.#key, id);
      return raw ? new Uint8Array(raw) : undefined;
    } catch (cause) {
      throw new TransportError("Redis trust store: read failed", { cause });
    }
  }

  /** Keeps `record` for `id` unless one is kept (HSETNX); returns the one kept. */
  async setIfAbsent(id: string, record: Uint8Array): Promise<Uint8Array> {
    try {
      const set = await this.#client.hsetnx(this.#key, id, Buffer.from(record));
      if (set === 1) return record;
      const raw = await this.#client.hgetBuffer(this.#key, id);
      if (!raw) throw new Error("pin vanished between HSETNX and HGET");
      return new Uint8Array(raw);
    } catch (cause) {
      throw new TransportError("Redis trust store: write failed", { cause });
    }
  }
}

/**
 * Trust on first use whose pins survive restarts, kept in the Redis of
 * `transport` and signed by `identity` (see `SignedPins` for what that does
 * and does not protect).
 *
 * @example
 * ```ts ignore
 * import { Agent, Identity } from "@spores/spores";
 * import { RedisTransport, redisTrust } from "@spores/spores/redis";
 * const identity = await Identity.open(await Deno.readFile("alice.key"), passphrase);
 * const transport = await RedisTransport.connect("redis://127.0.0.1:6379");
 * const alice = await Agent.start({ id: "alice", transport, identity, trust: redisTrust(transport, "alice", identity) });
 * ```
 */
export function redisTrust(transport: RedisTransport, agent: string, identity: Identity): TofuTrust {
  const pins = new RedisPinStore(transport.client, agent, identity.fingerprint, { prefix: transport.prefix });
  return new TofuTrust(new SignedPins(pins, identity));
}
