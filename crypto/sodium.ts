/**
 * libsodium compiled to WebAssembly (`libsodium-wrappers-sumo`, from the npm
 * registry; the module embeds its WebAssembly, so loading needs no network
 * and no permission). Loaded on first use only, so that a program that never
 * asks for it pays nothing.
 *
 * @module
 */

/** The compiled module under the wrappers: its heap and the C functions Spores calls directly. */
export interface SodiumModule {
  /** The WebAssembly memory (replaced when it grows: read it after every allocation). */
  HEAPU8: Uint8Array;
  /** `malloc`. */
  _malloc(size: number): number;
  /** `free`. */
  _free(pointer: number): void;
  /** `crypto_aead_chacha20poly1305_ietf_encrypt`, 64-bit lengths passed as (low, high). */
  _crypto_aead_chacha20poly1305_ietf_encrypt(
    c: number,
    clenP: number,
    m: number,
    mlenLo: number,
    mlenHi: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    nsec: number,
    npub: number,
    k: number,
  ): number;
  /** `crypto_aead_chacha20poly1305_ietf_decrypt`, 64-bit lengths passed as (low, high). */
  _crypto_aead_chacha20poly1305_ietf_decrypt(
    m: number,
    mlenP: number,
    nsec: number,
    c: number,
    clenLo: number,
    clenHi: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    npub: number,
    k: number,
  ): number;
}

/** The part of libsodium that Spores uses. */
export interface Sodium {
  /** The compiled module itself. */
  libsodium?: SodiumModule;
  /** ChaCha20-Poly1305 (IETF, RFC 8439) seal: ciphertext ‖ tag. */
  crypto_aead_chacha20poly1305_ietf_encrypt(
    message: Uint8Array,
    additionalData: Uint8Array | null,
    secretNonce: null,
    publicNonce: Uint8Array,
    key: Uint8Array,
  ): Uint8Array;
  /** ChaCha20-Poly1305 (IETF) open; throws on a bad tag. */
  crypto_aead_chacha20poly1305_ietf_decrypt(
    secretNonce: null,
    ciphertext: Uint8Array,
    additionalData: Uint8Array | null,
    publicNonce: Uint8Array,
    key: Uint8Array,
  ): Uint8Array;
}

let loading: Promise<Sodium | undefined> | undefined;

/**
 * libsodium, once its WebAssembly is instantiated; `undefined` where it cannot
 * load (no WebAssembly in this runtime, or the module is missing).
 *
 * @example
 * ```ts
 * import { loadSodium } from "@spores/spores/crypto";
 * const sodium = await loadSodium();
 * console.log(sodium ? "libsodium loaded" : "no WebAssembly here");
 * ```
 */
export function loadSodium(): Promise<Sodium | undefined> {
  loading ??= (async () => {
    try {
      const mod = await import("libsodium-wrappers-sumo");
      const sodium = (mod.default ?? mod) as unknown as Sodium & { ready: Promise<void> };
      await sodium.ready;
      return sodium;
    } catch {
      return undefined;
    }
  })();
  return loading;
}
