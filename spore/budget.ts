/**
 * A token bucket per key (a peer, a sender): up to `capacity` at once,
 * refilled at `perMinute`, bounded in keys (the least recently used goes
 * first).
 *
 * @module
 */

/** Token buckets per key. */
export class Budget {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #capacity: number;
  readonly #perMinute: number;
  readonly #maxKeys: number;

  /** Buckets holding `capacity` tokens, refilled at `perMinute`, for at most `maxKeys` keys. */
  constructor(capacity: number, perMinute: number, maxKeys = 10_000) {
    this.#capacity = capacity;
    this.#perMinute = perMinute;
    this.#maxKeys = maxKeys;
  }

  #bucket(key: string, now: number): { tokens: number; at: number } {
    const b = this.#buckets.get(key) ?? { tokens: this.#capacity, at: now };
    this.#buckets.delete(key);
    b.tokens = Math.min(this.#capacity, b.tokens + (now - b.at) * this.#perMinute / 60_000);
    b.at = now;
    this.#buckets.set(key, b);
    if (this.#buckets.size > this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
    return b;
  }

  /** Whether `key` holds `n` tokens now (none are spent). */
  allows(key: string, n: number, now: number): boolean {
    return this.#bucket(key, now).tokens >= n;
  }

  /** Spends `n` of `key`'s tokens if it holds them; false (nothing spent) if not. */
  take(key: string, n: number, now: number): boolean {
    const b = this.#bucket(key, now);
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }
}
