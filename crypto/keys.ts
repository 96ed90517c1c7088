/**
 * Opaque private keys. The secret behind a {@linkcode PrivateKey} (a
 * `CryptoKey` on the native backend, bytes on the fallback) is held in a
 * module-private `WeakMap`, so that logging, inspecting or serialising the key
 * object can never print secret material.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/** Which implementation performs an operation. */
export type Backend = "native" | "noble";

/** The asymmetric algorithms whose private keys Spores holds. */
export type KeyAlgorithm = "Ed25519" | "X25519" | "ML-KEM-768" | "ML-DSA-65" | "X-Wing";

const secrets = new WeakMap<PrivateKey, unknown>();

/**
 * A private key whose secret cannot be read through the object. Obtain one
 * from a primitive (`ed25519.generateKeyPair()`, ...) or from an `Identity`.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { ed25519 } = await provider();
 * const { privateKey } = await ed25519.generateKeyPair();
 * console.assert(JSON.stringify(privateKey).includes("Ed25519"));
 * ```
 */
export class PrivateKey {
  /** The algorithm this key is for. */
  readonly algorithm: KeyAlgorithm;
  /** The backend that holds the secret. */
  readonly backend: Backend;
  /** Whether the secret seed can be exported (to seal a key file). */
  readonly extractable: boolean;

  private constructor(algorithm: KeyAlgorithm, backend: Backend, extractable: boolean) {
    this.algorithm = algorithm;
    this.backend = backend;
    this.extractable = extractable;
    Object.freeze(this);
  }

  /** A description without secret material. */
  toJSON(): { algorithm: KeyAlgorithm; backend: Backend; extractable: boolean } {
    return { algorithm: this.algorithm, backend: this.backend, extractable: this.extractable };
  }

  /** A description without secret material. */
  toString(): string {
    return `PrivateKey(${this.algorithm}, ${this.backend})`;
  }

  /** @internal Wraps secret material; only primitives call this. */
  static wrap(
    algorithm: KeyAlgorithm,
    backend: Backend,
    extractable: boolean,
    material: unknown,
  ): PrivateKey {
    const key = new PrivateKey(algorithm, backend, extractable);
    secrets.set(key, material);
    return key;
  }
}

/**
 * Returns the secret material of `key`, checking that it belongs to the
 * expected algorithm and backend. Internal to `crypto/`.
 */
export function unwrapKey<T>(key: PrivateKey, algorithm: KeyAlgorithm, backend: Backend): T {
  if (!(key instanceof PrivateKey) || !secrets.has(key)) {
    throw new ConfigError(`expected a ${algorithm} PrivateKey`);
  }
  if (key.algorithm !== algorithm) {
    throw new ConfigError(`expected a ${algorithm} key, got a ${key.algorithm} key`);
  }
  if (key.backend !== backend) {
    throw new ConfigError(
      `a ${algorithm} key made by the ${key.backend} backend cannot be used by the ${backend} backend`,
    );
  }
  return secrets.get(key) as T;
}

/** Fails with a `ConfigError` unless `bytes` has exactly `length` bytes. */
export function expectLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ConfigError(`${what} must be ${length} bytes`);
  }
}
