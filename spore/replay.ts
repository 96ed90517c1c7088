/**
 * Replay defence. A sliding window per (session, epoch) accepts each counter
 * once, in any order, within the window; sealed spores are remembered by
 * (sender, id) until they expire.
 *
 * @module
 */

/** What a replay check concluded. */
export type ReplayVerdict = "fresh" | "duplicate" | "stale";

/**
 * A sliding window over message counters: a bitmap of the last `size`
 * counters below the highest seen.
 *
 * @example
 * ```ts
 * import { ReplayWindow } from "@spores/spores";
 * const w = new ReplayWindow(64);
 * console.assert(w.accept(5) === "fresh" && w.accept(3) === "fresh");
 * console.assert(w.accept(5) === "duplicate" && w.accept(100) === "fresh" && w.accept(3) === "stale");
 * ```
 */
export class ReplayWindow {
  /** Counters the window spans. */
  readonly size: number;
  #bits: Uint32Array;
  #highest = -1;

  /**
   * An empty window.
   *
   * @param size A multiple of 32 (default 4,096).
   */
  constructor(size = 4096) {
    if (!Number.isInteger(size) || size < 32 || size % 32 !== 0) {
      throw new RangeError("replay window size must be a positive multiple of 32");
    }
    this.size = size;
    this.#bits = new Uint32Array(size / 32);
  }

  /** The highest counter accepted so far (-1 before any). */
  get highest(): number {
    return this.#highest;
  }

  #flip(counter: number, set: boolean): boolean {
    const slot = counter % this.size;
    const word = slot >>> 5;
    const mask = 1 << (slot & 31);
    const was = (this.#bits[word]! & mask) !== 0;
    if (set) this.#bits[word]! |= mask;
    return was;
  }

  /** Whether `counter` would be accepted, without recording it. */
  check(counter: number): ReplayVerdict {
    if (counter > this.#highest) return "fresh";
    if (counter <= this.#highest - this.size) return "stale";
    const slot = counter % this.size;
    return (this.#bits[slot >>> 5]! & (1 << (slot & 31))) !== 0 ? "duplicate" : "fresh";
  }

  /** Records `counter` if fresh; says what it was. Call only after the spore authenticated. */
  accept(counter: number): ReplayVerdict {
    if (counter > this.#highest) {
      const gap = counter - this.#highest;
      if (gap >= this.size) {
        this.#bits.fill(0);
      } else {
        for (let c = this.#highest + 1; c < counter; c++) {
          const slot = c % this.size;
          this.#bits[slot >>> 5]! &= ~(1 << (slot & 31));
        }
      }
      const slot = counter % this.size;
      this.#bits[slot >>> 5]! &= ~(1 << (slot & 31));
      this.#flip(counter, true);
      this.#highest = counter;
      return "fresh";
    }
    if (counter <= this.#highest - this.size) return "stale";
    return this.#flip(counter, true) ? "duplicate" : "fresh";
  }
}

/**
 * Remembers sealed spores by key until a deadline, so that a redelivery is a
 * duplicate. Memory holds only what has not yet expired; a hard cap makes it
 * fail closed (`accept` returns `"stale"`, which the caller refuses) rather
 * than forget an entry early.
 *
 * @example
 * ```ts
 * import { SeenCache } from "@spores/spores";
 * const seen = new SeenCache();
 * console.assert(seen.accept("alice:1", Date.now() + 1000) === "fresh");
 * console.assert(seen.accept("alice:1", Date.now() + 1000) === "duplicate");
 * ```
 */
export class SeenCache {
  readonly #until = new Map<string, number>();
  readonly #limit: number;
  #lastPrune = 0;

  /**
   * An empty cache.
   *
   * @param limit Most entries held (default 1,000,000).
   */
  constructor(limit = 1_000_000) {
    this.#limit = limit;
  }

  /** Entries held. */
  get size(): number {
    return this.#until.size;
  }

  #prune(now: number): void {
    if (now - this.#lastPrune < 1000 && this.#until.size < this.#limit) return;
    this.#lastPrune = now;
    for (const [key, until] of this.#until) if (until < now) this.#until.delete(key);
  }

  /** Records `key` until `until` (Unix ms) if unseen. */
  accept(key: string, until: number, now: number = Date.now()): ReplayVerdict {
    this.#prune(now);
    const seen = this.#until.get(key);
    if (seen !== undefined && seen >= now) return "duplicate";
    if (this.#until.size >= this.#limit) return "stale";
    this.#until.set(key, until);
    return "fresh";
  }
}
