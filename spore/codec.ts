/**
 * Bounded big-endian readers and writers for the binary formats. Every read
 * is checked: running past the end is a `ProtocolError`, never an exception
 * from deep inside a library.
 *
 * @module
 */
import { fromUtf8, utf8 } from "../crypto/bytes.ts";
import { ProtocolError } from "../crypto/errors.ts";

/** Reads fields from bytes, failing with a `ProtocolError` on truncation. */
export class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset: number;

  /** @param bytes What to read; @param offset where to start. */
  constructor(bytes: Uint8Array, offset = 0) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#offset = offset;
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes left. */
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  #need(n: number, what: string): void {
    if (n > this.remaining) {
      throw new ProtocolError(`truncated: ${what} needs ${n} bytes, ${this.remaining} left`);
    }
  }

  /** One unsigned byte. */
  u8(what: string): number {
    this.#need(1, what);
    return this.#bytes[this.#offset++]!;
  }

  /** A big-endian u16. */
  u16(what: string): number {
    this.#need(2, what);
    const v = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return v;
  }

  /** A big-endian u32. */
  u32(what: string): number {
    this.#need(4, what);
    const v = this.#view.getUint32(this.#offset);
    this.#offset += 4;
    return v;
  }

  /** A big-endian u64 that must fit in a safe integer. */
  u64(what: string): number {
    this.#need(8, what);
    const hi = this.#view.getUint32(this.#offset);
    const lo = this.#view.getUint32(this.#offset + 4);
    this.#offset += 8;
    // Safe integers are below 2^53: the high word below 2^21.
    if (hi >= 0x20_0000) throw new ProtocolError(`${what} out of range`);
    return hi * 0x1_0000_0000 + lo;
  }

  /** `n` bytes (a view, not a copy). */
  bytes(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const out = this.#bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  /** A u8-length-prefixed strict UTF-8 string. */
  shortString(what: string): string {
    const length = this.u8(`${what} length`);
    const raw = this.bytes(length, what);
    // Identifiers are ASCII: decode those directly, and anything else strictly as UTF-8.
    let ascii = "";
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i]!;
      if (c >= 0x80) {
        try {
          return fromUtf8(raw);
        } catch {
          throw new ProtocolError(`${what} is not valid UTF-8`);
        }
      }
      ascii += String.fromCharCode(c);
    }
    return ascii;
  }

  /** Fails unless every byte was read. */
  end(what: string): void {
    if (this.remaining !== 0) throw new ProtocolError(`${this.remaining} trailing bytes after ${what}`);
  }
}

/** Appends fields into a growing buffer. */
export class Writer {
  #buffer: Uint8Array;
  #length = 0;

  /** @param capacity Initial capacity in bytes. */
  constructor(capacity = 256) {
    this.#buffer = new Uint8Array(capacity);
  }

  // Big-endian, byte by byte: no DataView to allocate per writer.
  #put32(at: number, v: number): void {
    const b = this.#buffer;
    b[at] = v >>> 24;
    b[at + 1] = v >>> 16;
    b[at + 2] = v >>> 8;
    b[at + 3] = v;
  }

  #reserve(n: number): void {
    if (this.#length + n <= this.#buffer.length) return;
    let size = this.#buffer.length * 2;
    while (size < this.#length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = next;
  }

  /** Empties the writer, keeping its buffer (a scratch writer reused by a synchronous encoder). */
  reset(): this {
    this.#length = 0;
    return this;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  /** One byte. */
  u8(v: number): this {
    this.#reserve(1);
    this.#buffer[this.#length++] = v;
    return this;
  }

  /** A big-endian u16. */
  u16(v: number): this {
    this.#reserve(2);
    this.#buffer[this.#length] = v >>> 8;
    this.#buffer[this.#length + 1] = v;
    this.#length += 2;
    return this;
  }

  /** A big-endian u32. */
  u32(v: number): this {
    this.#reserve(4);
    this.#put32(this.#length, v);
    this.#length += 4;
    return this;
  }

  /** A big-endian u64 from a safe integer (written as two u32s: no BigInt). */
  u64(v: number): this {
    this.#reserve(8);
    this.#put32(this.#length, Math.floor(v / 0x1_0000_0000));
    this.#put32(this.#length + 4, v >>> 0);
    this.#length += 8;
    return this;
  }

  /** Raw bytes. */
  bytes(b: Uint8Array): this {
    this.#reserve(b.length);
    this.#buffer.set(b, this.#length);
    this.#length += b.length;
    return this;
  }

  /** A u8-length-prefixed UTF-8 string (at most 255 bytes). */
  shortString(s: string): this {
    let ascii = true;
    for (let i = 0; i < s.length && ascii; i++) ascii = s.charCodeAt(i) < 0x80;
    if (!ascii) {
      const b = utf8(s);
      return this.u8(b.length).bytes(b);
    }
    this.#reserve(1 + s.length);
    this.#buffer[this.#length++] = s.length;
    for (let i = 0; i < s.length; i++) this.#buffer[this.#length++] = s.charCodeAt(i);
    return this;
  }

  /** Overwrites a u16 at `offset`. */
  patchU16(offset: number, v: number): this {
    this.#buffer[offset] = v >>> 8;
    this.#buffer[offset + 1] = v;
    return this;
  }

  /** The bytes written (a copy). */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#buffer.slice(0, this.#length);
  }

  /**
   * The bytes written, without a copy when the buffer is exactly full (a
   * writer sized in advance). The writer must not be used afterwards.
   */
  take(): Uint8Array<ArrayBuffer> {
    if (this.#length === this.#buffer.length) return this.#buffer as Uint8Array<ArrayBuffer>;
    return this.#buffer.slice(0, this.#length);
  }
}
