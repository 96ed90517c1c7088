/**
 * A small bounded cache of imported Web Crypto public keys, so that verifying
 * many messages from one peer imports its key once.
 *
 * @module
 */
import { base64 } from "@scure/base";

/** Bounded least-recently-inserted cache from raw public key to `CryptoKey`. */
export class PublicKeyCache {
  readonly #import: (raw: Uint8Array<ArrayBuffer>) => Promise<CryptoKey>;
  readonly #limit: number;
  readonly #keys = new Map<string, Promise<CryptoKey>>();

  /**
   * @param importKey Imports a raw public key.
   * @param limit Most keys kept.
   */
  constructor(importKey: (raw: Uint8Array<ArrayBuffer>) => Promise<CryptoKey>, limit = 256) {
    this.#import = importKey;
    this.#limit = limit;
  }

  /** The imported key for `raw`; a failed import is not cached. */
  get(raw: Uint8Array): Promise<CryptoKey> {
    const id = base64.encode(raw);
    let key = this.#keys.get(id);
    if (key === undefined) {
      key = this.#import(new Uint8Array(raw));
      key.catch(() => this.#keys.delete(id));
      if (this.#keys.size >= this.#limit) {
        this.#keys.delete(this.#keys.keys().next().value!);
      }
      this.#keys.set(id, key);
    }
    return key;
  }
}
