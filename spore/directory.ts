/**
 * Directories publish and look up agent cards. A directory is a store, not an
 * authority: every card it returns has been verified (`verifyCard`), and
 * whether it is trusted is the trust policy's decision.
 *
 * @module
 */
import { base64 } from "../crypto/bytes.ts";
import { ConfigError, ProtocolError } from "../crypto/errors.ts";
import { type AgentCard, checkSuccession, verifyCard } from "./card.ts";
import { readFileIfExists, writeFileAtomic } from "./file_io.ts";
import { checkId } from "./limits.ts";

/**
 * The card accepted for each agent, and the continuity rule between one and
 * the next ({@linkcode checkSuccession}): a newer version, and for new
 * identity keys a signature by the previous identity. Bounded: at most
 * `limit` agents are remembered (the least recently used go first).
 *
 * @example
 * ```ts
 * import { CardLedger, createCard, Identity, verifyCard } from "@spores/spores";
 * const ledger = new CardLedger();
 * const card = await verifyCard(await createCard("alice", await Identity.generate()));
 * ledger.admit(card);
 * const impostor = await verifyCard(await createCard("alice", await Identity.generate()));
 * console.assert(ledger.prefer(impostor) === card);
 * ```
 */
export class CardLedger {
  readonly #cards = new Map<string, AgentCard>();
  readonly #limit: number;

  /**
   * An empty ledger.
   *
   * @param limit Most agents remembered. Default 100,000.
   */
  constructor(limit = 100_000) {
    this.#limit = limit;
  }

  /** The card accepted for `id`. */
  get(id: string): AgentCard | undefined {
    return this.#cards.get(id);
  }

  /** Forgets the card of `id`; whether there was one. */
  forget(id: string): boolean {
    return this.#cards.delete(id);
  }

  #remember(card: AgentCard): void {
    this.#cards.delete(card.id);
    this.#cards.set(card.id, card);
    if (this.#cards.size > this.#limit) this.#cards.delete(this.#cards.keys().next().value!);
  }

  /** Accepts `card` as its agent's card, or throws (`RollbackError`, `KeyChangedError`) if it may not replace the known one. */
  admit(card: AgentCard, now: number = Date.now()): void {
    const known = this.#cards.get(card.id);
    if (known) checkSuccession(known, card, now);
    this.#remember(card);
  }

  /** `card` if it may replace the known card of its agent (and then it does), otherwise the known card. */
  prefer(card: AgentCard | undefined, now: number = Date.now()): AgentCard | undefined {
    if (!card) return undefined;
    const known = this.#cards.get(card.id);
    if (known) {
      try {
        checkSuccession(known, card, now);
      } catch {
        return known;
      }
    }
    this.#remember(card);
    return card;
  }
}

/** Called with each newly published, verified card. */
export type CardListener = (card: AgentCard) => void;

/**
 * Where agent cards are published and found.
 *
 * @example
 * ```ts
 * import { createCard, Identity, MemoryDirectory } from "@spores/spores";
 * const directory = new MemoryDirectory();
 * await directory.publish(await createCard("alice", await Identity.generate()));
 * console.assert((await directory.lookup("alice"))?.id === "alice");
 * ```
 */
export interface Directory {
  /**
   * Publishes a card (verified first). It replaces the agent's previous card
   * only if it is newer and, for new identity keys, signed by the previous
   * identity; otherwise a `RollbackError` or `KeyChangedError`.
   */
  publish(card: Uint8Array): Promise<void>;
  /** The verified card of `id`, or `undefined`. */
  lookup(id: string): Promise<AgentCard | undefined>;
  /** Calls `listener` for every card published after this call; returns a function that stops it. */
  watch(listener: CardListener): () => void;
}

/**
 * An in-process directory, shared by the agents of one process.
 *
 * @example
 * ```ts
 * import { createCard, Identity, MemoryDirectory } from "@spores/spores";
 * const directory = new MemoryDirectory();
 * const stop = directory.watch((card) => console.log("published", card.id));
 * await directory.publish(await createCard("bob", await Identity.generate()));
 * stop();
 * ```
 */
export class MemoryDirectory implements Directory {
  readonly #cards = new CardLedger(Infinity);
  readonly #listeners = new Set<CardListener>();

  /** Verifies `card` and stores it if it may replace the agent's previous card. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    this.#cards.admit(verified);
    for (const l of this.#listeners) l(verified);
  }

  /** The card of `id`. */
  lookup(id: string): Promise<AgentCard | undefined> {
    return Promise.resolve(this.#cards.get(id));
  }

  /** Watches publications. */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Removes the card of `id` (an agent retired for good: its id may then be
   * started again with new keys); whether there was one.
   *
   * @example
   * ```ts
   * import { MemoryDirectory } from "@spores/spores";
   * const directory = new MemoryDirectory();
   * console.assert(directory.remove("nobody") === false);
   * ```
   */
  remove(id: string): boolean {
    return this.#cards.forget(id);
  }
}

/**
 * A directory kept in a JSON file (`{ "cards": { "<id>": "<base64 card>" } }`)
 * that a deployment distributes. It reads the file on first lookup (and
 * after each publish); it needs `--allow-read` (and `--allow-write` to
 * publish) for that path only.
 *
 * @example
 * ```ts ignore
 * import { FileDirectory } from "@spores/spores";
 * const directory = new FileDirectory("./cards.json");
 * const bob = await directory.lookup("bob");
 * ```
 */
export class FileDirectory implements Directory {
  readonly #path: string | URL;
  #cards: Promise<Map<string, AgentCard>> | undefined;
  readonly #listeners = new Set<CardListener>();

  /**
   * A directory kept in `path`.
   *
   * @param path The JSON file.
   */
  constructor(path: string | URL) {
    this.#path = path;
  }

  async #load(): Promise<Map<string, AgentCard>> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readFileIfExists(this.#path);
    } catch (e) {
      throw new ConfigError(`cannot read directory file ${this.#path}`, { cause: e });
    }
    if (bytes === undefined) return new Map();
    const text = new TextDecoder().decode(bytes);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw new ProtocolError(`directory file ${this.#path} is not JSON`, { cause });
    }
    const cards = (parsed as { cards?: unknown })?.cards;
    if (typeof cards !== "object" || cards === null) {
      throw new ProtocolError(`directory file ${this.#path} has no "cards" object`);
    }
    const out = new Map<string, AgentCard>();
    for (const [id, encoded] of Object.entries(cards)) {
      if (typeof encoded !== "string") throw new ProtocolError(`card of ${id} is not a base64 string`);
      let bytes: Uint8Array;
      try {
        bytes = base64.decode(encoded);
      } catch (cause) {
        throw new ProtocolError(`card of ${id} is not valid base64`, { cause });
      }
      const card = await verifyCard(bytes);
      if (card.id !== id) throw new ProtocolError(`card filed under ${id} is for ${card.id}`);
      out.set(id, card);
    }
    return out;
  }

  /** The card of `id`. */
  async lookup(id: string): Promise<AgentCard | undefined> {
    checkId(id, "agent id");
    this.#cards ??= this.#load();
    return (await this.#cards).get(id);
  }

  /** Verifies `card` and writes it into the file (atomically, by rename). */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    const cards = await this.#load();
    const known = cards.get(verified.id);
    if (known) checkSuccession(known, verified);
    cards.set(verified.id, verified);
    const json = { cards: Object.fromEntries([...cards].map(([id, c]) => [id, base64.encode(c.bytes)])) };
    await writeFileAtomic(this.#path, JSON.stringify(json, null, 1) + "\n", 0o644, true);
    this.#cards = Promise.resolve(cards);
    for (const l of this.#listeners) l(verified);
  }

  /** Watches publications made through this object. */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
