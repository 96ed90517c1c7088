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

/** Where a one-shot spore came from: its authenticated sender and stated creation time. */
export interface SporeOrigin {
  /** The sender. */
  sender: string;
  /** Creation time (Unix ms). */
  createdAt: number;
}

interface SenderMemory {
  /** Spores created at or before this time are refused: entries that old were given up. */
  floor: number;
  entries: Map<string, { until: number; createdAt: number }>;
}

/**
 * Remembers one-shot spores by key until a deadline, so that a redelivery is
 * a duplicate. Memory is bounded per sender (`perSender`) and in total
 * (`limit`); when a sender's share is full its oldest entry is given up and
 * its low-water mark rises to that entry's creation time, so that anything
 * created at or before it is refused (`"stale"`) rather than accepted twice.
 * One sender's flood therefore ages out only its own memory, and never
 * locks another sender out. An entry without an origin is refused when its
 * share is full (fail closed).
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
  readonly #senders = new Map<string, SenderMemory>();
  readonly #limit: number;
  readonly #perSender: number;
  #size = 0;
  #lastPrune = 0;

  /**
   * An empty cache.
   *
   * @param limit Most entries held in total (default 1,000,000).
   * @param perSender Most entries held for one sender (default 10,000).
   */
  constructor(limit = 1_000_000, perSender = 10_000) {
    this.#limit = limit;
    this.#perSender = Math.min(perSender, limit);
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  #prune(now: number): void {
    if (now - this.#lastPrune < 1000 && this.#size < this.#limit) return;
    this.#lastPrune = now;
    for (const [sender, m] of this.#senders) {
      for (const [key, e] of m.entries) {
        if (e.until < now) {
          m.entries.delete(key);
          this.#size--;
        }
      }
      if (m.entries.size === 0 && m.floor === -Infinity) this.#senders.delete(sender);
    }
  }

  #evictOldest(m: SenderMemory): void {
    const [key, e] = m.entries.entries().next().value!;
    m.entries.delete(key);
    this.#size--;
    m.floor = Math.max(m.floor, e.createdAt);
  }

  /** Records `key` until `until` (Unix ms) if unseen. */
  accept(key: string, until: number, now: number = Date.now(), origin?: SporeOrigin): ReplayVerdict {
    this.#prune(now);
    const sender = origin?.sender ?? "";
    let m = this.#senders.get(sender);
    const seen = m?.entries.get(key);
    if (seen !== undefined && seen.until >= now) return "duplicate";
    if (m && origin && origin.createdAt <= m.floor) return "stale";
    if (!m) {
      m = { floor: -Infinity, entries: new Map() };
    }
    // Most recently active senders last: the least recently active give up memory first.
    this.#senders.delete(sender);
    this.#senders.set(sender, m);
    const full = m.entries.size >= this.#perSender || this.#size >= this.#limit;
    if (full && !origin) return "stale";
    if (m.entries.size >= this.#perSender) this.#evictOldest(m);
    while (this.#size >= this.#limit) {
      const [, victim] = this.#senders.entries().next().value!;
      if (victim.entries.size === 0) break;
      this.#evictOldest(victim);
    }
    m.entries.set(key, { until, createdAt: origin?.createdAt ?? now });
    this.#size++;
    return "fresh";
  }
}
