/**
 * SHA-256 and HKDF-SHA-256 (RFC 5869): Web Crypto on the native backend,
 * `@noble/hashes` on the fallback.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { copyBytes } from "./bytes.ts";
import { ConfigError } from "./errors.ts";
import type { Backend } from "./keys.ts";

/** Largest HKDF-SHA-256 output, 255 blocks. */
const HKDF_MAX = 255 * 32;

/**
 * Hashing and key derivation.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { kdf } = await provider();
 * const okm = await kdf.hkdf(new Uint8Array(32), new Uint8Array(0), new TextEncoder().encode("label"), 64);
 * console.assert(okm.length === 64);
 * ```
 */
export interface Kdf {
  /** The backend that implements it. */
  readonly backend: Backend;
  /** SHA-256 of `data`. */
  sha256(data: Uint8Array): Promise<Uint8Array>;
  /** HKDF-SHA-256 extract-then-expand to `length` bytes (at most 8,160). */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array>;
}

function checkLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_MAX) {
    throw new ConfigError(`HKDF output length must be 1..${HKDF_MAX}`);
  }
}

/**
 * SHA-256 and HKDF through Web Crypto.
 *
 * @example
 * ```ts
 * import { nativeKdf } from "@spores/spores/crypto";
 * console.assert((await nativeKdf.sha256(new Uint8Array(0))).length === 32);
 * ```
 */
export const nativeKdf: Kdf = {
  backend: "native",
  async sha256(data) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  },
  async hkdf(ikm, salt, info, length) {
    checkLength(length);
    const key = await crypto.subtle.importKey("raw", copyBytes(ikm), "HKDF", false, ["deriveBits"]);
    const params = { name: "HKDF", hash: "SHA-256", salt, info } as HkdfParams;
    return new Uint8Array(await crypto.subtle.deriveBits(params, key, length * 8));
  },
};

/**
 * SHA-256 and HKDF in JavaScript (`@noble/hashes`), synchronous underneath.
 *
 * @example
 * ```ts
 * import { nobleKdf } from "@spores/spores/crypto";
 * console.assert((await nobleKdf.sha256(new Uint8Array(0))).length === 32);
 * ```
 */
export const nobleKdf: Kdf = {
  backend: "noble",
  async sha256(data) {
    return sha256(data);
  },
  async hkdf(ikm, salt, info, length) {
    checkLength(length);
    return hkdf(sha256, ikm, salt, info, length);
  },
};

/**
 * Synchronous SHA-256, for small inputs where a promise costs more than the hash.
 *
 * @example
 * ```ts
 * import { sha256Sync } from "@spores/spores/crypto";
 * console.assert(sha256Sync(new Uint8Array(0)).length === 32);
 * ```
 */
export function sha256Sync(data: Uint8Array): Uint8Array {
  return sha256(data);
}

/**
 * Synchronous HKDF-SHA-256.
 *
 * @example
 * ```ts
 * import { hkdfSync } from "@spores/spores/crypto";
 * console.assert(hkdfSync(new Uint8Array(32), new Uint8Array(0), new Uint8Array(0), 32).length === 32);
 * ```
 */
export function hkdfSync(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  checkLength(length);
  return hkdf(sha256, ikm, salt, info, length);
}
