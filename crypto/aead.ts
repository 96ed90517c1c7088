/**
 * ChaCha20-Poly1305 (RFC 8439): Web Crypto on the native backend,
 * `@noble/ciphers` on the fallback, and a size-switching implementation that
 * uses the synchronous fallback for small messages (where an awaited Web
 * Crypto call costs more than the cipher) and Web Crypto for large ones.
 *
 * @module
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { copyBytes } from "./bytes.ts";
import { ConfigError, DecryptError } from "./errors.ts";
import { expectLength } from "./keys.ts";
import { subtle } from "./signature.ts";
import type { Sodium, SodiumModule } from "./sodium.ts";

/** Bytes of a ChaCha20-Poly1305 key. */
export const AEAD_KEY_LENGTH = 32;
/** Bytes of a ChaCha20-Poly1305 nonce. */
export const AEAD_NONCE_LENGTH = 12;
/** Bytes of a ChaCha20-Poly1305 tag. */
export const AEAD_TAG_LENGTH = 16;

const raw = new WeakMap<AeadKey, Uint8Array<ArrayBuffer>>();
const imported = new WeakMap<AeadKey, Promise<CryptoKey>>();

/**
 * A 256-bit AEAD key. Its bytes cannot be read through the object; every
 * {@linkcode Aead} implementation accepts it.
 *
 * @example
 * ```ts
 * import { AeadKey } from "@spores/spores/crypto";
 * const key = AeadKey.from(new Uint8Array(32));
 * console.assert(JSON.stringify(key) === '{"algorithm":"ChaCha20-Poly1305"}');
 * ```
 */
export class AeadKey {
  private constructor() {
    Object.freeze(this);
  }

  /** Wraps 32 key bytes (copied). */
  static from(bytes: Uint8Array): AeadKey {
    expectLength(bytes, AEAD_KEY_LENGTH, "ChaCha20-Poly1305 key");
    const key = new AeadKey();
    raw.set(key, copyBytes(bytes));
    return key;
  }

  /** A description without key material. */
  toJSON(): { algorithm: "ChaCha20-Poly1305" } {
    return { algorithm: "ChaCha20-Poly1305" };
  }

  /** Overwrites the key bytes; the key is unusable afterwards. */
  destroy(): void {
    raw.get(this)?.fill(0);
    raw.delete(this);
    imported.delete(this);
  }
}

function keyBytes(key: AeadKey): Uint8Array<ArrayBuffer> {
  const bytes = raw.get(key);
  if (bytes === undefined) throw new ConfigError("AEAD key was destroyed or is not an AeadKey");
  return bytes;
}

function checkNonce(nonce: Uint8Array): void {
  expectLength(nonce, AEAD_NONCE_LENGTH, "ChaCha20-Poly1305 nonce");
}

/**
 * Authenticated encryption with associated data.
 *
 * @example
 * ```ts
 * import { AeadKey, provider } from "@spores/spores/crypto";
 * const { aead } = await provider();
 * const key = AeadKey.from(crypto.getRandomValues(new Uint8Array(32)));
 * const nonce = new Uint8Array(12);
 * const aad = new Uint8Array([1]);
 * const sealed = await aead.seal(key, nonce, new TextEncoder().encode("hi"), aad);
 * console.assert(new TextDecoder().decode(await aead.open(key, nonce, sealed, aad)) === "hi");
 * ```
 */
export interface Aead {
  /** The algorithm name. */
  readonly algorithm: "ChaCha20-Poly1305";
  /** The backend that implements it (`"auto"` picks by message size). */
  readonly backend: "native" | "noble" | "sodium" | "auto";
  /** Encrypts and authenticates; returns ciphertext ‖ 16-byte tag. */
  seal(key: AeadKey, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  /** Checks and decrypts; a `DecryptError` for any failure. */
  open(key: AeadKey, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
}

function cryptoKey(key: AeadKey): Promise<CryptoKey> {
  let k = imported.get(key);
  if (k === undefined) {
    k = subtle().importKey("raw-secret", keyBytes(key), "ChaCha20-Poly1305", false, ["encrypt", "decrypt"]);
    imported.set(key, k);
  }
  return k;
}

/**
 * ChaCha20-Poly1305 through Web Crypto.
 *
 * @example
 * ```ts
 * import { AeadKey, nativeAead } from "@spores/spores/crypto";
 * const key = AeadKey.from(new Uint8Array(32));
 * const ct = await nativeAead.seal(key, new Uint8Array(12), new Uint8Array(3), new Uint8Array(0));
 * console.assert(ct.length === 3 + 16);
 * ```
 */
export const nativeAead: Aead = {
  algorithm: "ChaCha20-Poly1305",
  backend: "native",
  async seal(key, nonce, plaintext, aad) {
    checkNonce(nonce);
    const params = {
      name: "ChaCha20-Poly1305",
      iv: nonce,
      additionalData: aad,
    } as unknown as AlgorithmIdentifier;
    return new Uint8Array(
      await crypto.subtle.encrypt(params, await cryptoKey(key), plaintext as BufferSource),
    );
  },
  async open(key, nonce, ciphertext, aad) {
    checkNonce(nonce);
    if (ciphertext.length < AEAD_TAG_LENGTH) throw new DecryptError();
    const params = {
      name: "ChaCha20-Poly1305",
      iv: nonce,
      additionalData: aad,
    } as unknown as AlgorithmIdentifier;
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(params, await cryptoKey(key), ciphertext as BufferSource),
      );
    } catch (cause) {
      throw new DecryptError({ cause });
    }
  },
};

/** Synchronous ChaCha20-Poly1305 seal with `@noble/ciphers`. */
export function sealSync(
  key: AeadKey,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  checkNonce(nonce);
  return chacha20poly1305(keyBytes(key), nonce, aad).encrypt(plaintext);
}

/** Synchronous ChaCha20-Poly1305 open with `@noble/ciphers`; a `DecryptError` for any failure. */
export function openSync(
  key: AeadKey,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  checkNonce(nonce);
  const k = keyBytes(key);
  if (ciphertext.length < AEAD_TAG_LENGTH) throw new DecryptError();
  try {
    return chacha20poly1305(k, nonce, aad).decrypt(ciphertext);
  } catch (cause) {
    throw new DecryptError({ cause });
  }
}

/**
 * ChaCha20-Poly1305 in JavaScript (`@noble/ciphers`), synchronous underneath.
 *
 * @example
 * ```ts
 * import { AeadKey, nobleAead } from "@spores/spores/crypto";
 * const key = AeadKey.from(new Uint8Array(32));
 * const ct = await nobleAead.seal(key, new Uint8Array(12), new Uint8Array(3), new Uint8Array(0));
 * console.assert(ct.length === 3 + 16);
 * ```
 */
export const nobleAead: Aead = {
  algorithm: "ChaCha20-Poly1305",
  backend: "noble",
  async seal(key, nonce, plaintext, aad) {
    return sealSync(key, nonce, plaintext, aad);
  },
  async open(key, nonce, ciphertext, aad) {
    return openSync(key, nonce, ciphertext, aad);
  },
};

/**
 * ChaCha20-Poly1305 in libsodium's WebAssembly build: synchronous, and 3–4×
 * faster than `@noble/ciphers` at 1 KiB (bench/README.md). Get `sodium` from
 * {@linkcode loadSodium}.
 *
 * @example
 * ```ts
 * import { AeadKey, loadSodium, sodiumAead } from "@spores/spores/crypto";
 * const sodium = await loadSodium();
 * if (sodium) {
 *   const aead = sodiumAead(sodium);
 *   const key = AeadKey.from(new Uint8Array(32));
 *   const ct = await aead.seal(key, new Uint8Array(12), new Uint8Array(3), new Uint8Array(0));
 *   console.assert(ct.length === 3 + 16);
 * }
 * ```
 */
export function sodiumAead(sodium: Sodium): Aead & SyncAead {
  const direct = sodium.libsodium ? heapAead(sodium.libsodium) : undefined;
  const seal = direct?.seal ??
    ((key: AeadKey, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array => {
      checkNonce(nonce);
      return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, keyBytes(key));
    });
  const open = direct?.open ??
    ((key: AeadKey, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array => {
      checkNonce(nonce);
      const k = keyBytes(key);
      if (ciphertext.length < AEAD_TAG_LENGTH) throw new DecryptError();
      try {
        return sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, ciphertext, aad, nonce, k);
      } catch (cause) {
        throw new DecryptError({ cause });
      }
    });
  return {
    algorithm: "ChaCha20-Poly1305",
    backend: "sodium",
    sealSync: seal,
    openSync: open,
    async seal(key, nonce, plaintext, aad) {
      return seal(key, nonce, plaintext, aad);
    },
    async open(key, nonce, ciphertext, aad) {
      return open(key, nonce, ciphertext, aad);
    },
  };
}

/**
 * ChaCha20-Poly1305 calls straight into libsodium's heap: one scratch region
 * (grown as needed) takes key, nonce, associated data and input, the output
 * is copied out once, and the key, nonce and plaintext written there are zeroed after each call.
 * The wrappers' own functions allocate and free per argument and copy the
 * output twice.
 */
function heapAead(m: SodiumModule): {
  seal(key: AeadKey, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  open(key: AeadKey, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array;
} {
  let base = 0;
  let capacity = 0;
  const region = (size: number): number => {
    if (size > capacity) {
      if (base !== 0) m._free(base);
      capacity = Math.max(size, capacity * 2, 4096);
      base = m._malloc(capacity);
      if (base === 0) throw new ConfigError("libsodium could not allocate memory");
    }
    return base;
  };
  // Layout: key (32) ‖ nonce (12) ‖ aad ‖ input ‖ output.
  const place = (key: AeadKey, nonce: Uint8Array, input: Uint8Array, aad: Uint8Array, outLength: number) => {
    checkNonce(nonce);
    const k = region(AEAD_KEY_LENGTH + AEAD_NONCE_LENGTH + aad.length + input.length + outLength);
    const heap = m.HEAPU8;
    const n = k + AEAD_KEY_LENGTH;
    const ad = n + AEAD_NONCE_LENGTH;
    const data = ad + aad.length;
    heap.set(keyBytes(key), k);
    heap.set(nonce, n);
    heap.set(aad, ad);
    heap.set(input, data);
    return { k, n, ad, data, out: data + input.length };
  };
  const wipe = (from: number, to: number) => m.HEAPU8.fill(0, from, to);
  return {
    seal(key, nonce, plaintext, aad) {
      const outLength = plaintext.length + AEAD_TAG_LENGTH;
      const { k, n, ad, data, out } = place(key, nonce, plaintext, aad, outLength);
      try {
        m._crypto_aead_chacha20poly1305_ietf_encrypt(
          out,
          0,
          data,
          plaintext.length,
          0,
          ad,
          aad.length,
          0,
          0,
          n,
          k,
        );
        return m.HEAPU8.slice(out, out + outLength);
      } finally {
        wipe(k, out); // key, nonce, aad and plaintext; the ciphertext is public
      }
    },
    open(key, nonce, ciphertext, aad) {
      if (ciphertext.length < AEAD_TAG_LENGTH) throw new DecryptError();
      const outLength = ciphertext.length - AEAD_TAG_LENGTH;
      const { k, n, ad, data, out } = place(key, nonce, ciphertext, aad, outLength);
      try {
        const rc = m._crypto_aead_chacha20poly1305_ietf_decrypt(
          out,
          0,
          0,
          data,
          ciphertext.length,
          0,
          ad,
          aad.length,
          0,
          n,
          k,
        );
        if (rc !== 0) throw new DecryptError();
        return m.HEAPU8.slice(out, out + outLength);
      } finally {
        wipe(k, ad); // key and nonce
        wipe(out, out + outLength); // plaintext (libsodium already clears it when the tag is wrong)
      }
    },
  };
}

/** An AEAD whose work is synchronous underneath, callable without a promise. */
export interface SyncAead {
  /** {@linkcode Aead.seal}, synchronously. */
  sealSync(key: AeadKey, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** {@linkcode Aead.open}, synchronously; a `DecryptError` for any failure. */
  openSync(key: AeadKey, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array;
}

/**
 * An AEAD that uses a synchronous implementation (`small`, by default the
 * `@noble/ciphers` fallback) for messages shorter than `threshold` bytes and
 * Web Crypto for the rest. The output is identical
 * either way (the algorithm is deterministic).
 *
 * @example
 * ```ts
 * import { AeadKey, sizedAead } from "@spores/spores/crypto";
 * const aead = sizedAead(4096);
 * const key = AeadKey.from(new Uint8Array(32));
 * const ct = await aead.seal(key, new Uint8Array(12), new Uint8Array(10_000), new Uint8Array(0));
 * console.assert(ct.length === 10_016);
 * ```
 */
export function sizedAead(threshold: number, small: Aead = nobleAead): Aead {
  return {
    algorithm: "ChaCha20-Poly1305",
    backend: "auto",
    seal(key, nonce, plaintext, aad) {
      return plaintext.length < threshold
        ? small.seal(key, nonce, plaintext, aad)
        : nativeAead.seal(key, nonce, plaintext, aad);
    },
    open(key, nonce, ciphertext, aad) {
      return ciphertext.length < threshold
        ? small.open(key, nonce, ciphertext, aad)
        : nativeAead.open(key, nonce, ciphertext, aad);
    },
  };
}
