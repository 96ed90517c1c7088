/**
 * Request batching for the SQS and SNS batch APIs (`SendMessageBatch`,
 * `PublishBatch`, `DeleteMessageBatch`, `ChangeMessageVisibilityBatch`): at
 * most 10 entries per request. A lone item is sent at once (in the same
 * turn of the event loop); items that arrive while the requests allowed in
 * flight are busy wait for the next one and travel together.
 *
 * @module
 */

/** The outcome of one entry of a batch request: nothing (done) or the error of that entry. */
export type EntryResult = undefined | Error;

/** Sends one batch; returns one result per item, in order (or throws if the whole request failed). */
export type SendBatch<T> = (items: T[]) => Promise<EntryResult[]>;

/** Limits of a batcher. */
export interface BatcherOptions {
  /** Most entries per request. Default 10 (the SQS and SNS limit). */
  maxEntries?: number;
  /** Most bytes per request (sum of entry sizes). Default unlimited. */
  maxBytes?: number;
  /** Most requests in flight at once. Default 4 (1 keeps order, as FIFO queues need). */
  maxInFlight?: number;
}

interface Pending<T> {
  item: T;
  size: number;
  resolve(): void;
  reject(e: unknown): void;
}

/**
 * Groups items into batch requests without delaying a lone item.
 *
 * @example
 * ```ts
 * import { Batcher } from "@spores/spores/sqs";
 * const sent: number[][] = [];
 * const b = new Batcher<number>(async (items) => {
 *   sent.push(items);
 *   return items.map(() => undefined);
 * }, { maxInFlight: 1 });
 * await Promise.all([1, 2, 3].map((i) => b.add(i, 1)));
 * console.assert(sent.flat().length === 3);
 * ```
 */
export class Batcher<T> {
  readonly #send: SendBatch<T>;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #maxInFlight: number;
  readonly #queue: Pending<T>[] = [];
  #inFlight = 0;
  #scheduled = false;
  #idle: (() => void)[] = [];

  /**
   * A batcher that sends through `send`.
   *
   * @param send Sends one batch.
   * @param options Limits.
   */
  constructor(send: SendBatch<T>, options: BatcherOptions = {}) {
    this.#send = send;
    this.#maxEntries = options.maxEntries ?? 10;
    this.#maxBytes = options.maxBytes ?? Infinity;
    this.#maxInFlight = options.maxInFlight ?? 4;
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Queues `item` (of `size` bytes); resolves when its batch succeeded for it. */
  add(item: T, size = 0): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ item, size, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  /** Resolves when nothing is queued or in flight. */
  drained(): Promise<void> {
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      let bytes = 0;
      let n = 0;
      while (n < this.#queue.length && n < this.#maxEntries) {
        const size = this.#queue[n]!.size;
        if (n > 0 && bytes + size > this.#maxBytes) break;
        bytes += size;
        n++;
      }
      const batch = this.#queue.splice(0, n);
      this.#inFlight++;
      this.#send(batch.map((p) => p.item)).then(
        (results) => {
          batch.forEach((p, i) => {
            const r = results[i];
            if (r) p.reject(r);
            else p.resolve();
          });
        },
        (e) => {
          for (const p of batch) p.reject(e);
        },
      ).finally(() => {
        this.#inFlight--;
        this.#pump();
        if (this.#inFlight === 0 && this.#queue.length === 0) {
          const idle = this.#idle;
          this.#idle = [];
          for (const r of idle) r();
        }
      });
    }
  }
}
