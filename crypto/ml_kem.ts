/**
 * ML-KEM-768 key encapsulation (FIPS 203): Web Crypto on the native backend,
 * `@noble/post-quantum` on the fallback.
 *
 * @module
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { copyBytes, randomBytes } from "./bytes.ts";
import { ConfigError, DecryptError } from "./errors.ts";
import { type Backend, expectLength, PrivateKey, unwrapKey } from "./keys.ts";
import { PublicKeyCache } from "./public_key_cache.ts";
import { type KeyOptions, type KeyPair, subtle } from "./signature.ts";

/** The result of an encapsulation. */
export interface Encapsulation {
  /** What the recipient decapsulates. */
  ciphertext: Uint8Array;
  /** The 32-byte shared secret. */
  sharedSecret: Uint8Array;
}

/**
 * A key encapsulation mechanism.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { mlKem768 } = await provider();
 * const { publicKey, privateKey } = await mlKem768.generateKeyPair();
 * const { ciphertext, sharedSecret } = await mlKem768.encapsulate(publicKey);
 * const again = await mlKem768.decapsulate(privateKey, ciphertext);
 * console.assert(again.every((v, i) => v === sharedSecret[i]));
 * ```
 */
export interface Kem {
  /** The algorithm name. */
  readonly algorithm: "ML-KEM-768";
  /** The backend that implements it. */
  readonly backend: Backend;
  /** Whether `encapsulate` accepts caller-supplied randomness (test vectors). */
  readonly derandomized: boolean;
  /** Makes a fresh key pair. */
  generateKeyPair(options?: KeyOptions): Promise<KeyPair>;
  /** The key pair of a 64-byte seed `d ‖ z`. */
  keyPairFromSeed(seed: Uint8Array, options?: KeyOptions): Promise<KeyPair>;
  /** Exports the 64-byte seed of an extractable private key. */
  exportSeed(privateKey: PrivateKey): Promise<Uint8Array>;
  /**
   * Encapsulates to `publicKey`. `randomness` (32 bytes) is accepted only
   * where {@linkcode Kem.derandomized} is true; a `ConfigError` otherwise.
   * An invalid public key is a `DecryptError`.
   */
  encapsulate(publicKey: Uint8Array, randomness?: Uint8Array): Promise<Encapsulation>;
  /** Decapsulates (implicit rejection: a bad ciphertext gives an unrelated secret). */
  decapsulate(privateKey: PrivateKey, ciphertext: Uint8Array): Promise<Uint8Array>;
}

const PUBLIC_KEY_LENGTH = 1184;
const CIPHERTEXT_LENGTH = 1088;

interface WebCryptoKem {
  encapsulateBits(
    algorithm: string,
    key: CryptoKey,
  ): Promise<{ ciphertext: ArrayBuffer; sharedKey: ArrayBuffer }>;
  decapsulateBits(algorithm: string, key: CryptoKey, ciphertext: BufferSource): Promise<ArrayBuffer>;
}

const kemSubtle = (): WebCryptoKem => crypto.subtle as unknown as WebCryptoKem;
const publicKeys = new PublicKeyCache((raw) =>
  subtle().importKey("raw-public", raw, "ML-KEM-768", true, ["encapsulateBits"])
);

/**
 * ML-KEM-768 through Web Crypto. Encapsulation draws its own randomness.
 *
 * @example
 * ```ts
 * import { nativeMlKem768 } from "@spores/spores/crypto";
 * const { publicKey } = await nativeMlKem768.generateKeyPair();
 * console.assert(publicKey.length === 1184);
 * ```
 */
export const nativeMlKem768: Kem = {
  algorithm: "ML-KEM-768",
  backend: "native",
  derandomized: false,
  generateKeyPair(options) {
    return this.keyPairFromSeed(randomBytes(64), options);
  },
  async keyPairFromSeed(seed, options) {
    expectLength(seed, 64, "ML-KEM-768 seed");
    const extractable = options?.extractable ?? false;
    const key = await subtle().importKey("raw-seed", copyBytes(seed), "ML-KEM-768", extractable, [
      "decapsulateBits",
    ]);
    const pub = await subtle().getPublicKey(key, ["encapsulateBits"]);
    const publicKey = new Uint8Array(await subtle().exportKey("raw-public", pub));
    return { publicKey, privateKey: PrivateKey.wrap("ML-KEM-768", "native", extractable, key) };
  },
  async exportSeed(privateKey) {
    const key = unwrapKey<CryptoKey>(privateKey, "ML-KEM-768", "native");
    if (!privateKey.extractable) throw new ConfigError("this ML-KEM-768 key is not extractable");
    return new Uint8Array(await subtle().exportKey("raw-seed", key));
  },
  async encapsulate(publicKey, randomness) {
    if (randomness !== undefined) {
      throw new ConfigError("native ML-KEM-768 does not accept caller-supplied randomness");
    }
    if (publicKey.length !== PUBLIC_KEY_LENGTH) throw new DecryptError();
    try {
      const key = await publicKeys.get(publicKey);
      const { ciphertext, sharedKey } = await kemSubtle().encapsulateBits("ML-KEM-768", key);
      return { ciphertext: new Uint8Array(ciphertext), sharedSecret: new Uint8Array(sharedKey) };
    } catch (cause) {
      // The FIPS 203 modulus check on the public key failed.
      throw new DecryptError({ cause });
    }
  },
  async decapsulate(privateKey, ciphertext) {
    const key = unwrapKey<CryptoKey>(privateKey, "ML-KEM-768", "native");
    if (ciphertext.length !== CIPHERTEXT_LENGTH) throw new DecryptError();
    try {
      return new Uint8Array(await kemSubtle().decapsulateBits("ML-KEM-768", key, ciphertext as BufferSource));
    } catch (cause) {
      throw new DecryptError({ cause });
    }
  },
};

interface NobleKemSecret {
  seed: Uint8Array;
  secretKey: Uint8Array;
}

/**
 * ML-KEM-768 in JavaScript (`@noble/post-quantum`); accepts explicit
 * encapsulation randomness for known-answer tests.
 *
 * @example
 * ```ts
 * import { nobleMlKem768 } from "@spores/spores/crypto";
 * const { publicKey } = await nobleMlKem768.keyPairFromSeed(new Uint8Array(64));
 * console.assert(publicKey.length === 1184);
 * ```
 */
export const nobleMlKem768: Kem = {
  algorithm: "ML-KEM-768",
  backend: "noble",
  derandomized: true,
  async generateKeyPair(options) {
    return this.keyPairFromSeed(randomBytes(64), options);
  },
  async keyPairFromSeed(seed, options) {
    expectLength(seed, 64, "ML-KEM-768 seed");
    const { publicKey, secretKey } = ml_kem768.keygen(seed);
    const secret: NobleKemSecret = { seed: copyBytes(seed), secretKey };
    const privateKey = PrivateKey.wrap("ML-KEM-768", "noble", options?.extractable ?? false, secret);
    return { publicKey, privateKey };
  },
  async exportSeed(privateKey) {
    const secret = unwrapKey<NobleKemSecret>(privateKey, "ML-KEM-768", "noble");
    if (!privateKey.extractable) throw new ConfigError("this ML-KEM-768 key is not extractable");
    return copyBytes(secret.seed);
  },
  async encapsulate(publicKey, randomness) {
    if (randomness !== undefined) expectLength(randomness, 32, "ML-KEM-768 randomness");
    try {
      const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, randomness);
      return { ciphertext: cipherText, sharedSecret };
    } catch (cause) {
      // A public key of the wrong length or with coefficients out of range.
      throw new DecryptError({ cause });
    }
  },
  async decapsulate(privateKey, ciphertext) {
    const { secretKey } = unwrapKey<NobleKemSecret>(privateKey, "ML-KEM-768", "noble");
    if (ciphertext.length !== CIPHERTEXT_LENGTH) throw new DecryptError();
    return ml_kem768.decapsulate(ciphertext, secretKey);
  },
};
