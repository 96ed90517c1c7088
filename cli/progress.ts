/**
 * A progress bar on stderr for long runs, and the latency summary of a load
 * run.
 *
 * @module
 */
import { writeAll } from "./io.ts";

const encoder = new TextEncoder();
const WIDTH = 30;

/** A progress bar redrawn at most every 100 ms on one stderr line. */
export class Progress {
  readonly #total: number;
  readonly #enabled: boolean;
  readonly #started = performance.now();
  #done = 0;
  #drawnAt = 0;

  /**
   * @param total Units of work.
   * @param enabled Whether to draw (a terminal, or asked for).
   */
  constructor(total: number, enabled: boolean) {
    this.#total = total;
    this.#enabled = enabled;
  }

  /** Counts `n` more units done. */
  tick(n = 1): void {
    this.#done += n;
    const now = performance.now();
    if (this.#enabled && (now - this.#drawnAt >= 100 || this.#done === this.#total)) {
      this.#drawnAt = now;
      this.#draw(now);
    }
  }

  #draw(now: number): void {
    const share = this.#total === 0 ? 1 : this.#done / this.#total;
    const filled = Math.round(share * WIDTH);
    const seconds = (now - this.#started) / 1000;
    const rate = seconds > 0 ? Math.round(this.#done / seconds) : 0;
    const line = `\r[${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${this.#done}/${this.#total} ` +
      `${Math.floor(share * 100)}% ${rate} msg/s `;
    writeAll(Deno.stderr, encoder.encode(line));
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.#enabled) writeAll(Deno.stderr, encoder.encode("\n"));
  }
}

/** Latency percentiles, ms. */
export interface LatencySummary {
  /** Median. */
  p50: number;
  /** 90th percentile. */
  p90: number;
  /** 99th percentile. */
  p99: number;
  /** Largest. */
  max: number;
  /** Mean. */
  mean: number;
}

/** Percentiles of `samples` (ms), rounded to 0.01 ms. */
export function summarize(samples: number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const round = (v: number) => Math.round(v * 100) / 100;
  const mean = sorted.length === 0 ? 0 : sorted.reduce((s, v) => s + v, 0) / sorted.length;
  return {
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    max: round(at(1)),
    mean: round(mean),
  };
}
