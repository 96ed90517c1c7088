/**
 * Agent cards in RabbitMQ. RabbitMQ has no retained messages, so each agent's
 * card lives in a durable **last-value queue** of its own
 * (`{exchange}.card.<id>`, `x-max-length: 1`, `x-overflow: drop-head`): a
 * publication replaces the previous card, and a lookup reads it with
 * `basic.get` and returns it to the queue. Each publication is also sent to the
 * fanout exchange `{exchange}.cards`, which `watch` consumes through an
 * exclusive queue. Cards are verified on every read; a publication must
 * succeed the card in the queue (`checkSuccession`), and a reader keeps the
 * card it has seen when the queue holds an older or discontinuous one.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Channel } from "amqplib";
import { TransportError } from "../../crypto/errors.ts";
import { type AgentCard, checkSuccession, verifyCard } from "../../spore/card.ts";
import { CardLedger, type CardListener, type Directory } from "../../spore/directory.ts";
import { checkId } from "../../spore/limits.ts";

/** What the directory needs from its transport. */
export interface AmqpChannelSource {
  /** A new channel on the current connection (a confirm channel if asked). */
  openChannel(confirm?: boolean): Promise<Channel>;
  /** Queue type of the deployment: card queues are replicated (quorum) where agent queues are. */
  readonly queueType?: "classic" | "quorum";
}

async function using<T>(
  source: AmqpChannelSource,
  confirm: boolean,
  f: (ch: Channel) => Promise<T>,
): Promise<T> {
  const ch = await source.openChannel(confirm);
  try {
    return await f(ch);
  } finally {
    try {
      await ch.close();
    } catch {
      // closed by an error already
    }
  }
}

/**
 * A card directory kept in RabbitMQ.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/amqp";
 * const transport = await createTransport("amqp://guest:guest@127.0.0.1:5672");
 * const card = await transport.directory?.lookup("bob");
 * ```
 */
export class AmqpDirectory implements Directory {
  readonly #source: AmqpChannelSource;
  readonly #exchange: string;
  readonly #listeners = new Set<CardListener>();
  readonly #lookups = new Map<string, Promise<AgentCard | undefined>>();
  readonly #seen = new CardLedger(10_000);
  #watcher: Promise<{ close(): Promise<void> }> | undefined;

  /**
   * Cards of the agents on `exchange`.
   *
   * @param source The transport.
   * @param exchange Exchange name.
   */
  constructor(source: AmqpChannelSource, exchange: string) {
    this.#source = source;
    this.#exchange = exchange;
  }

  #queue(id: string): string {
    return `${this.#exchange}.card.${checkId(id, "agent id")}`;
  }

  async #assert(ch: Channel, id: string): Promise<string> {
    const q = this.#queue(id);
    const args: Record<string, unknown> = { "x-max-length": 1, "x-overflow": "drop-head" };
    if (this.#source.queueType === "quorum") args["x-queue-type"] = "quorum";
    await ch.assertQueue(q, { durable: true, arguments: args });
    return q;
  }

  /** Verifies `card` and makes it the agent's current card. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    // Key continuity: a newer card, and new identity keys only with the previous identity's signature.
    const known = await this.lookup(verified.id);
    if (known) checkSuccession(known, verified);
    const body = Buffer.from(card.buffer, card.byteOffset, card.byteLength);
    try {
      await using(this.#source, true, async (ch) => {
        const q = await this.#assert(ch, verified.id);
        ch.sendToQueue(q, body, { persistent: true });
        ch.publish(`${this.#exchange}.cards`, "", body, { persistent: false });
        await (ch as Channel & { waitForConfirms(): Promise<void> }).waitForConfirms();
      });
    } catch (cause) {
      throw new TransportError("RabbitMQ refused the card", { cause });
    }
    this.#seen.prefer(verified);
  }

  /** The verified card of `id`. */
  lookup(id: string): Promise<AgentCard | undefined> {
    let pending = this.#lookups.get(id);
    if (!pending) {
      pending = this.#lookup(id).finally(() => this.#lookups.delete(id));
      this.#lookups.set(id, pending);
    }
    return pending;
  }

  async #lookup(id: string): Promise<AgentCard | undefined> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await using(this.#source, false, async (ch) => {
        const q = this.#queue(id);
        // Looked up passively: a lookup (of any id a spore claims) never creates broker state.
        try {
          await ch.checkQueue(q);
        } catch (e) {
          if ((e as { code?: unknown }).code !== 404) throw e;
          return undefined;
        }
        // Another process may hold the card unacknowledged for a moment: an empty read is retried, and only
        // a queue that stays empty means "no card".
        for (let i = 0; i < 20; i++) {
          const msg = await ch.get(q, { noAck: false });
          if (msg) {
            const content = new Uint8Array(msg.content);
            ch.nack(msg, false, true);
            return content;
          }
          await new Promise((r) => setTimeout(r, 25));
        }
        return undefined;
      });
    } catch (cause) {
      throw new TransportError("cannot read cards from RabbitMQ", { cause });
    }
    // A reader keeps the card it has seen when the queue holds an older or discontinuous one.
    return bytes ? this.#seen.prefer(await verifyCard(bytes)) : this.#seen.get(id);
  }

  /**
   * Deletes the card queue of `id` and forgets its card here (an agent
   * retired for good, see `Transport.purge`); whether the queue existed.
   */
  async remove(id: string): Promise<boolean> {
    const q = this.#queue(id);
    this.#seen.forget(id);
    try {
      return await using(this.#source, false, async (ch) => {
        try {
          await ch.checkQueue(q);
        } catch (e) {
          if ((e as { code?: unknown }).code !== 404) throw e;
          return false;
        }
        await ch.deleteQueue(q);
        return true;
      });
    } catch (cause) {
      throw new TransportError("cannot remove a card from RabbitMQ", { cause });
    }
  }

  /** Calls `listener` with each card published from now on (verified; bad ones are skipped). */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    this.#watcher ??= this.#startWatching();
    return () => this.#listeners.delete(listener);
  }

  async #startWatching(): Promise<{ close(): Promise<void> }> {
    const channel = await this.#source.openChannel();
    const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, `${this.#exchange}.cards`, "");
    await channel.consume(queue, (msg) => {
      if (!msg) return;
      verifyCard(new Uint8Array(msg.content)).then((card) => {
        for (const l of this.#listeners) l(card);
      }).catch(() => {});
    }, { noAck: true });
    return {
      close: async () => {
        try {
          await channel.close();
        } catch {
          // gone with its connection
        }
      },
    };
  }

  /** @internal After a reconnection: the watching channel died with the old connection, so watch again. */
  reconnected(): void {
    if (this.#listeners.size === 0 || !this.#watcher) return;
    this.#watcher = this.#startWatching();
    this.#watcher.catch(() => {});
  }

  /** Stops watching. */
  async close(): Promise<void> {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w) await (await w.catch(() => ({ close: async () => {} }))).close();
  }
}
