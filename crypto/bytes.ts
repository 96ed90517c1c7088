/**
 * Byte helpers shared by every layer: concatenation, constant-time equality,
 * randomness, and the text encodings (hex, base64, base64url, base32) from
 * `@scure/base`.
 *
 * @module
 */
import { base32nopad, base64, base64urlnopad, type BytesCoder, type Coder, hex } from "@scure/base";

export { base32nopad, base64, base64urlnopad, hex };
export type { BytesCoder, Coder };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Concatenates byte arrays into a new one.
 *
 * @example
 * ```ts
 * import { concat } from "@spores/spores/crypto";
 * console.assert(concat(new Uint8Array([1]), new Uint8Array([2, 3])).length === 3);
 * ```
 */
export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Compares two byte arrays in time that depends only on their lengths.
 *
 * @example
 * ```ts
 * import { equalBytes } from "@spores/spores/crypto";
 * console.assert(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
 * ```
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Returns `length` bytes from the runtime's cryptographic random generator.
 *
 * @example
 * ```ts
 * import { randomBytes } from "@spores/spores/crypto";
 * console.assert(randomBytes(32).length === 32);
 * ```
 */
export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  // getRandomValues is limited to 65,536 bytes per call.
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(length, i + 65536)));
  }
  return out;
}

/**
 * Encodes a string as UTF-8.
 *
 * @example
 * ```ts
 * import { utf8 } from "@spores/spores/crypto";
 * console.assert(utf8("hi").length === 2);
 * ```
 */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text) as Uint8Array<ArrayBuffer>;
}

/**
 * Decodes strict UTF-8 (invalid sequences throw a `TypeError`).
 *
 * @example
 * ```ts
 * import { fromUtf8, utf8 } from "@spores/spores/crypto";
 * console.assert(fromUtf8(utf8("hi")) === "hi");
 * ```
 */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * Copies any byte view into a fresh `Uint8Array` backed by its own
 * `ArrayBuffer` (a plain one, not a `Buffer` or a subclass).
 *
 * @example
 * ```ts
 * import { copyBytes } from "@spores/spores/crypto";
 * const a = new Uint8Array([1, 2, 3]);
 * console.assert(copyBytes(a.subarray(1)).byteOffset === 0);
 * ```
 */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

/**
 * Overwrites a byte array with zeros (best effort: the runtime may hold copies).
 *
 * @example
 * ```ts
 * import { wipe } from "@spores/spores/crypto";
 * const k = new Uint8Array([1, 2]);
 * wipe(k);
 * console.assert(k[0] === 0);
 * ```
 */
export function wipe(bytes: Uint8Array): void {
  bytes.fill(0);
}
