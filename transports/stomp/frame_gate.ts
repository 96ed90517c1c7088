/**
 * What of the broker's STOMP byte stream reaches the frame parser. Frames are
 * followed as they arrive (headers up to the blank line, then `content-length`
 * bytes and the NUL, or bytes up to the NUL), so that:
 *
 * - headers, and a body without `content-length`, are bounded by `maxBytes`
 *   (a broker cannot make the parser hold more);
 * - a MESSAGE whose `content-length` is over `maxBytes`, and that can be
 *   settled (it has an `ack` header), is not read into memory: its body is
 *   skipped as it streams by, and the parser gets the same frame with an empty
 *   body and the header `spores-oversize: <length>`, which the transport
 *   dead-letters. Cutting the connection instead would return the message to
 *   the queue, and it would come back first after every reconnection: one
 *   large message would stop the queue for good;
 * - any other frame over the limit is an error once the parser would hold
 *   more than the limit (the socket closes).
 *
 * @example
 * ```ts
 * import { StompFrameGate } from "@spores/spores/stomp";
 * const gate = new StompFrameGate(64);
 * const big = "MESSAGE\nack:1\ncontent-length:100\n\n" + "x".repeat(100) + "\0";
 * const out = gate.push(new TextEncoder().encode(big));
 * const text = out.map((b) => new TextDecoder().decode(b)).join("");
 * console.assert(text.includes("spores-oversize:100") && !text.includes("xxx"));
 * console.assert(gate.oversized === 1);
 * ```
 *
 * @module
 */

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = new Uint8Array(0);
/** Longest body skipped: RabbitMQ's largest `max_message_size` (512 MiB). A longer one is an error. */
const MAX_SKIP = 512 << 20;

const BETWEEN = 0;
const HEAD = 1;
const BODY = 2; // content-length bytes and the NUL
const UNTIL_NUL = 3;
const SKIP = 4;

/** The header that marks a MESSAGE whose body was over the limit (and not read). */
export const OVERSIZE_HEADER = "spores-oversize";

function overLimit(limit: number): Error {
  return new Error(`the broker sent over ${limit} bytes without completing a frame`);
}

/** Index just past the blank line that ends the headers in `b` (searching from `from`), or -1. */
function headEnd(b: Uint8Array, from: number): number {
  for (let i = b.indexOf(LF, from); i >= 0; i = b.indexOf(LF, i + 1)) {
    if (b[i + 1] === LF) return i + 2;
    if (b[i + 1] === CR && b[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** Follows STOMP frames from a broker; see the module documentation. */
export class StompFrameGate {
  /** MESSAGE frames whose body was over the limit and skipped. */
  oversized = 0;
  readonly #max: number;
  #state = BETWEEN;
  #head: Uint8Array = EMPTY;
  #remaining = 0;
  #body = 0;

  /** @param maxBytes Most bytes of a frame's headers, and of a body the parser is given. */
  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /**
   * Appends to `out` the parts of `chunk` to give to the parser, in order, and returns it; throws when the
   * broker goes over a limit (`out` then holds the frames before that point).
   */
  push(chunk: Uint8Array, out: Uint8Array[] = []): Uint8Array[] {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === BETWEEN) {
        let j = i;
        while (j < chunk.length && (chunk[j] === LF || chunk[j] === CR)) j++; // heartbeats
        if (j > i) out.push(chunk.subarray(i, j));
        i = j;
        if (i < chunk.length) this.#state = HEAD;
      } else if (this.#state === HEAD) {
        const before = this.#head.length;
        const rest = chunk.subarray(i);
        const head = before === 0 ? rest : concat(this.#head, rest);
        const end = headEnd(head, Math.max(0, before - 2));
        if (end < 0) {
          if (head.length > this.#max) throw overLimit(this.#max);
          this.#head = head.slice();
          i = chunk.length;
          continue;
        }
        if (end > this.#max) throw overLimit(this.#max);
        this.#head = EMPTY;
        i += end - before;
        this.#frame(head.subarray(0, end), out);
      } else if (this.#state === BODY || this.#state === SKIP) {
        const n = Math.min(this.#remaining, chunk.length - i);
        if (this.#state === BODY) {
          if ((this.#body += n) > this.#max + 1) throw overLimit(this.#max);
          out.push(chunk.subarray(i, i + n));
        }
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = BETWEEN;
      } else {
        const nul = chunk.indexOf(0, i);
        const j = nul < 0 ? chunk.length : nul + 1;
        this.#body += j - i;
        if (this.#body > this.#max + 1) throw overLimit(this.#max);
        out.push(chunk.subarray(i, j));
        i = j;
        if (nul >= 0) this.#state = BETWEEN;
      }
    }
    return out;
  }

  /** A frame's complete headers: passes them on (or the oversize stand-in) and sets how its body is read. */
  #frame(head: Uint8Array, out: Uint8Array[]): void {
    // Header values cannot hold a raw line feed, so a header is found by "\n<name>:"; the first one counts.
    const text = new TextDecoder().decode(head);
    const command = text.slice(0, text.indexOf("\n")).replace(/\r$/, "");
    let length: number | undefined;
    const at = text.indexOf("\ncontent-length:");
    if (at >= 0) {
      const from = at + 16;
      const v = text.slice(from, text.indexOf("\n", from)).replace(/\r$/, "");
      length = /^\d{1,15}$/.test(v) ? Number(v) : undefined;
    }
    const ack = text.includes("\nack:");
    if (length === undefined) {
      out.push(head);
      this.#state = UNTIL_NUL;
      this.#body = 0;
      return;
    }
    if (length <= this.#max || command !== "MESSAGE" || !ack || length > MAX_SKIP) {
      // Over the limit and not to be skipped: cut off once the parser would hold more than the limit.
      out.push(head);
      this.#state = BODY;
      this.#remaining = length + 1;
      this.#body = 0;
      return;
    }
    const lines = text.split("\n").map((l) => l.replace(/\r$/, ""));
    const kept = lines.slice(1).filter((l) =>
      l !== "" && !l.startsWith("content-length:") && !l.startsWith(`${OVERSIZE_HEADER}:`)
    );
    const stand = [command, "content-length:0", `${OVERSIZE_HEADER}:${length}`, ...kept, "", ""].join("\n");
    out.push(new TextEncoder().encode(`${stand}\0`));
    this.oversized++;
    this.#state = SKIP;
    this.#remaining = length + 1;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
