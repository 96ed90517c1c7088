/**
 * Agent cards in RabbitMQ, kept and read over STOMP. Each agent's card lives
 * in a durable **last-value queue** of its own (`{prefix}.card.<id>`,
 * `x-max-length: 1`, and RabbitMQ's default overflow drops the head): a SEND replaces the previous
 * card, and a lookup SUBSCRIBEs on a short-lived connection, takes the card
 * without acknowledging it and disconnects, which returns it to the queue.
 * Each publication is also sent to `/topic/{prefix}.cards`, which `watch`
 * subscribes to. Cards are verified on every read.
 *
 * @module
 */
import { TransportError } from "../../crypto/errors.ts";
import { type AgentCard, verifyCard } from "../../spore/card.ts";
import type { CardListener, Directory } from "../../spore/directory.ts";
import { errorChain } from "../connect_error.ts";
import type { DeliveryHandler, Subscription } from "../transport.ts";
import type { StompConnection } from "./connection.ts";
import type { Headers, StompDestinations } from "./destinations.ts";

/** What the directory needs from its transport. */
export interface StompFrameSource {
  /** Sends `body` to `destination`; resolves on the broker's RECEIPT. */
  send(destination: string, body: Uint8Array, headers: Headers): Promise<void>;
  /** Subscribes with explicit headers on a connection of its own (kept across reconnections). */
  subscribeRaw(destination: string, headers: Headers, handler: DeliveryHandler): Promise<Subscription>;
  /** A new connection to the broker. */
  openConnection(): Promise<StompConnection>;
  /** Closes a connection from `openConnection`. */
  closeConnection(c: StompConnection): Promise<void>;
}

/**
 * How long a lookup waits, once subscribed to an existing card queue, for the card before it says there is
 * none, ms. Each reader holds the card until its connection closes, so readers of one card take turns: with 49
 * agents looking one up at once (a load of 50 agents sending to each other), the last waited more than the
 * 500 ms this once was and wrongly found no card. An id with no card queue is answered at once (NOT_FOUND).
 */
const LOOKUP_WAIT_MS = 5_000;

/**
 * A card directory kept in RabbitMQ over STOMP.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/stomp";
 * const transport = await createTransport("stomp://guest:guest@127.0.0.1:61613");
 * const card = await transport.directory?.lookup("bob");
 * ```
 */
export class StompDirectory implements Directory {
  readonly #source: StompFrameSource;
  readonly #names: StompDestinations;
  readonly #listeners = new Set<CardListener>();
  readonly #lookups = new Map<string, Promise<AgentCard | undefined>>();
  #watcher: Promise<Subscription> | undefined;

  /**
   * Cards of the agents under a prefix.
   *
   * @param source The transport.
   * @param names The transport's destinations.
   */
  constructor(source: StompFrameSource, names: StompDestinations) {
    this.#source = source;
    this.#names = names;
  }

  /** Verifies `card` and makes it the agent's current card. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    const d = this.#names.card(verified.id);
    try {
      await this.#source.send(d.destination, card, { ...d.headers, persistent: "true" });
      await this.#source.send(this.#names.cards, card, { persistent: "false" });
    } catch (cause) {
      throw new TransportError("RabbitMQ refused the card", { cause });
    }
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
    const got = Promise.withResolvers<Uint8Array | undefined>();
    let conn: StompConnection | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      conn = await this.#source.openConnection();
      // An existing queue only (/amq/queue/): a lookup never creates broker state for an id it was handed.
      await conn.subscribe(
        this.#names.cardLookup(id),
        { ack: "client-individual", "prefetch-count": "1" },
        (m) => got.resolve(m.binaryBody.slice()), // never acknowledged: the disconnect returns it
      );
      // Another reader may hold the card for a moment: only a queue that stays empty means "no card".
      timer = setTimeout(() => got.resolve(undefined), LOOKUP_WAIT_MS);
      const bytes = await got.promise;
      return bytes ? await verifyCard(bytes) : undefined;
    } catch (cause) {
      if (!(cause instanceof TransportError)) throw cause;
      // No card queue: no card.
      if (errorChain(cause).some((e) => e instanceof Error && /not_found|no queue/i.test(e.message))) {
        return undefined;
      }
      throw new TransportError("cannot read cards from RabbitMQ", { cause });
    } finally {
      clearTimeout(timer);
      if (conn) await this.#source.closeConnection(conn);
    }
  }

  /** Calls `listener` with each card published from now on (verified; bad ones are skipped). */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    if (!this.#watcher) {
      this.#watcher = this.#source.subscribeRaw(this.#names.cards, {}, async (delivery) => {
        try {
          const card = await verifyCard(delivery.bytes);
          for (const l of this.#listeners) l(card);
        } catch {
          // not a valid card: skipped
        }
      });
      this.#watcher.catch(() => {});
    }
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching. */
  async close(): Promise<void> {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w) await (await w.catch(() => ({ close: async () => {} }))).close();
  }
}
