/**
 * libsodium compiled to WebAssembly (`libsodium-wrappers-sumo`, from the npm
 * registry; the module embeds its WebAssembly, so loading needs no network
 * and no permission). Loaded on first use only, so that a program that never
 * asks for it pays nothing.
 *
 * @module
 */

/** The part of libsodium that Spores uses. */
export interface Sodium {
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
