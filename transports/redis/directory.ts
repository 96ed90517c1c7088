/**
 * Agent cards in Redis: a hash `{prefix}:cards` (agent id → card bytes) and a
 * pub/sub channel of the same name announcing each publication. Cards are
 * verified when read, never trusted because Redis served them. A card
 * replaces an agent's card only if it is newer and, for new identity keys,
 * signed by the previous identity (compare-and-set, so two publishers cannot
 * race past the check); a reader that has seen an agent's card keeps it
 * when Redis serves an older or discontinuous one.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { TransportError } from "../../crypto/errors.ts";
import { type AgentCard, checkSuccession, verifyCard } from "../../spore/card.ts";
import { CardLedger, type CardListener, type Directory } from "../../spore/directory.ts";
import { checkId } from "../../spore/limits.ts";
import type { RedisClient } from "./connection.ts";

const CAS = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`;

/**
 * A card directory kept in Redis.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/redis";
 * const transport = await createTransport("redis://127.0.0.1:6379");
 * const card = await transport.directory?.lookup("bob");
 * ```
 */
export class RedisDirectory implements Directory {
  readonly #client: RedisClient;
  readonly #key: string;
  readonly #listeners = new Set<CardListener>();
  readonly #seen = new CardLedger(10_000);
  #subscriber: RedisClient | undefined;

  /**
   * Cards under `prefix` in the Redis that `client` reaches.
   *
   * @param client A connected client.
   * @param prefix Key prefix.
   */
  constructor(client: RedisClient, prefix: string) {
    this.#client = client;
    this.#key = `${prefix}:cards`;
  }

  /** Verifies `card`, stores it if it may replace the agent's card, then announces it. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    for (let attempt = 0; attempt < 5; attempt++) {
      let current: Uint8Array | null;
      try {
        current = await this.#client.hgetBuffer(this.#key, verified.id);
      } catch (cause) {
        throw new TransportError("cannot read cards from Redis", { cause });
      }
      if (current) checkSuccession(await verifyCard(new Uint8Array(current)), verified);
      let stored: unknown;
      try {
        stored = await this.#client.eval(
          CAS,
          1,
          this.#key,
          verified.id,
          current ? Buffer.from(current) : "",
          Buffer.from(card.buffer, card.byteOffset, card.byteLength),
        );
        if (stored === 1) await this.#client.publish(this.#key, verified.id);
      } catch (cause) {
        throw new TransportError("Redis refused the card", { cause });
      }
      if (stored === 1) {
        this.#seen.prefer(verified);
        return;
      }
    }
    throw new TransportError("the card of this agent changed in Redis during each of 5 attempts");
  }

  /** The verified card of `id`. */
  async lookup(id: string): Promise<AgentCard | undefined> {
    checkId(id, "agent id");
    let bytes: Uint8Array | null;
    try {
      bytes = await this.#client.hgetBuffer(this.#key, id);
    } catch (cause) {
      throw new TransportError("cannot read cards from Redis", { cause });
    }
    if (!bytes) return this.#seen.get(id);
    return this.#seen.prefer(await verifyCard(new Uint8Array(bytes)));
  }

  /**
   * Removes the card of `id` from Redis and from what this directory has
   * seen (an agent retired for good, see `Transport.purge`); whether Redis
   * held one.
   */
  async remove(id: string): Promise<boolean> {
    checkId(id, "agent id");
    this.#seen.forget(id);
    try {
      return await this.#client.hdel(this.#key, id) > 0;
    } catch (cause) {
      throw new TransportError("cannot remove a card from Redis", { cause });
    }
  }

  /** Calls `listener` with each card published from now on (verified; bad ones are skipped). */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    if (!this.#subscriber) {
      const sub = (this.#client as { duplicate(): RedisClient }).duplicate();
      sub.on("error", () => {});
      sub.on("message", (_channel: string, id: string) => {
        this.lookup(id).then((card) => {
          if (card) { for (const l of this.#listeners) l(card); }
        }).catch(() => {});
      });
      void sub.subscribe(this.#key).catch(() => {});
      this.#subscriber = sub;
    }
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Stops watching. */
  async close(): Promise<void> {
    const sub = this.#subscriber;
    this.#subscriber = undefined;
    if (sub) {
      try {
        await sub.quit();
      } catch {
        sub.disconnect();
      }
    }
  }
}
