/**
 * Agent cards in Redis: a hash `{prefix}:cards` (agent id → card bytes) and a
 * pub/sub channel of the same name announcing each publication. Cards are
 * verified when read, never trusted because Redis served them.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { TransportError } from "../../crypto/errors.ts";
import { type AgentCard, verifyCard } from "../../spore/card.ts";
import type { CardListener, Directory } from "../../spore/directory.ts";
import { checkId } from "../../spore/limits.ts";
import type { RedisClient } from "./connection.ts";

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

  /** Verifies and stores `card`, then announces it. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    try {
      await this.#client.hset(
        this.#key,
        verified.id,
        Buffer.from(card.buffer, card.byteOffset, card.byteLength),
      );
      await this.#client.publish(this.#key, verified.id);
    } catch (cause) {
      throw new TransportError("Redis refused the card", { cause });
    }
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
    if (!bytes) return undefined;
    return await verifyCard(new Uint8Array(bytes));
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
