/**
 * Agent cards in a JetStream key-value bucket (`{stream}_cards`, one key per
 * agent: its escaped id, history 1). `watch` follows the bucket with the KV
 * watcher (an ordered consumer that resumes after a reconnection). Every card
 * is verified when it is read, and one filed under another agent's key is
 * refused.
 *
 * @module
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { type KV, Kvm, KvWatchInclude } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ProtocolError, TransportError } from "../../crypto/errors.ts";
import { type AgentCard, verifyCard } from "../../spore/card.ts";
import type { CardListener, Directory } from "../../spore/directory.ts";
import { checkId } from "../../spore/limits.ts";
import { token, untoken } from "./subjects.ts";

/** Options of the card bucket. */
export interface NatsDirectoryOptions {
  /** Bucket replicas. Default 1. */
  replicas?: number;
}

/**
 * A card directory in a JetStream KV bucket.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/nats";
 * const transport = await createTransport("nats://127.0.0.1:4222");
 * const card = await transport.directory?.lookup("bob");
 * ```
 */
export class NatsDirectory implements Directory {
  readonly #nc: NatsConnection;
  readonly #bucket: string;
  readonly #replicas: number;
  readonly #listeners = new Set<CardListener>();
  #kv: Promise<KV> | undefined;
  #watch: Promise<{ stop(): void }> | undefined;

  /**
   * Cards in `bucket` (made on first use).
   *
   * @param nc The connection.
   * @param bucket Bucket name.
   * @param options Bucket settings.
   */
  constructor(nc: NatsConnection, bucket: string, options: NatsDirectoryOptions = {}) {
    this.#nc = nc;
    this.#bucket = bucket;
    this.#replicas = options.replicas ?? 1;
  }

  /** Bucket name. */
  get bucket(): string {
    return this.#bucket;
  }

  #open(): Promise<KV> {
    this.#kv ??= new Kvm(this.#nc).create(this.#bucket, { history: 1, replicas: this.#replicas })
      .catch((cause) => {
        this.#kv = undefined;
        throw new TransportError(`cannot open the JetStream card bucket ${this.#bucket}`, { cause });
      });
    return this.#kv;
  }

  /** Verifies `card` and makes it the agent's current card. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    const kv = await this.#open();
    try {
      await kv.put(token(verified.id), card);
    } catch (cause) {
      throw new TransportError("JetStream refused the card", { cause });
    }
  }

  /**
   * Removes every revision of the card of `id` from the bucket's stream (an
   * agent retired for good, see `Transport.purge`); how many it removed.
   */
  async remove(id: string): Promise<number> {
    checkId(id, "agent id");
    await this.#open();
    try {
      const jsm = await jetstreamManager(this.#nc);
      const r = await jsm.streams.purge(`KV_${this.#bucket}`, { filter: `$KV.${this.#bucket}.${token(id)}` });
      return r.purged;
    } catch (cause) {
      throw new TransportError("JetStream refused to remove the card", { cause });
    }
  }

  /** The verified card of `id`. */
  async lookup(id: string): Promise<AgentCard | undefined> {
    checkId(id, "agent id");
    const kv = await this.#open();
    let entry;
    try {
      entry = await kv.get(token(id));
    } catch (cause) {
      throw new TransportError("cannot read cards from JetStream", { cause });
    }
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    const verified = await verifyCard(new Uint8Array(entry.value));
    if (verified.id !== id) throw new ProtocolError(`card filed under ${id} is for ${verified.id}`);
    return verified;
  }

  /** Calls `listener` with each card published from now on (verified; bad ones are skipped). */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    this.#watch ??= this.#startWatching();
    this.#watch.catch(() => this.#watch = undefined);
    return () => this.#listeners.delete(listener);
  }

  async #startWatching(): Promise<{ stop(): void }> {
    const kv = await this.#open();
    const iter = await kv.watch({ key: ">", include: KvWatchInclude.UpdatesOnly });
    (async () => {
      for await (const e of iter) {
        if (e.operation !== "PUT") continue;
        try {
          const card = await verifyCard(new Uint8Array(e.value));
          if (card.id !== untoken(e.key)) continue;
          for (const l of this.#listeners) l(card);
        } catch {
          // a card that does not verify is nobody's
        }
      }
    })().catch(() => {});
    return iter;
  }

  /** Stops watching. */
  async close(): Promise<void> {
    const w = this.#watch;
    this.#watch = undefined;
    if (w) (await w.catch(() => ({ stop() {} }))).stop();
  }
}
