/**
 * X25519 key agreement (RFC 7748): Web Crypto on the native backend,
 * `@noble/curves` on the fallback. Both reject an all-zero shared secret
 * (a low-order peer key) with a `DecryptError`.
 *
 * @module
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { concat, copyBytes, randomBytes } from "./bytes.ts";
import { ConfigError, DecryptError } from "./errors.ts";
import { type Backend, expectLength, PrivateKey, unwrapKey } from "./keys.ts";
import { PublicKeyCache } from "./public_key_cache.ts";
import { pkcs8Prefix, subtle } from "./signature.ts";
import type { KeyOptions, KeyPair } from "./signature.ts";

/**
 * Diffie-Hellman over Curve25519.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { x25519 } = await provider();
 * const a = await x25519.generateKeyPair();
 * const b = await x25519.generateKeyPair();
 * const s1 = await x25519.deriveSharedSecret(a.privateKey, b.publicKey);
 * const s2 = await x25519.deriveSharedSecret(b.privateKey, a.publicKey);
 * console.assert(s1.every((v, i) => v === s2[i]));
 * ```
 */
export interface KeyAgreement {
  /** The algorithm name. */
  readonly algorithm: "X25519";
  /** The backend that implements it. */
  readonly backend: Backend;
  /** Makes a fresh key pair. */
  generateKeyPair(options?: KeyOptions): Promise<KeyPair>;
  /** The key pair of a 32-byte secret scalar (clamped as RFC 7748 says). */
  keyPairFromSecret(secret: Uint8Array, options?: KeyOptions): Promise<KeyPair>;
  /** Exports the secret of an extractable private key. */
  exportSecret(privateKey: PrivateKey): Promise<Uint8Array>;
  /** X25519(private, public); a `DecryptError` for a low-order public key. */
  deriveSharedSecret(privateKey: PrivateKey, publicKey: Uint8Array): Promise<Uint8Array>;
}

function isZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

// Static peer keys (an X-Wing recipient's) recur: import each once.
const peers = new PublicKeyCache((raw) => subtle().importKey("raw", raw, "X25519", true, []));

/**
 * X25519 through Web Crypto.
 *
 * @example
 * ```ts
 * import { nativeX25519 } from "@spores/spores/crypto";
 * const { publicKey } = await nativeX25519.generateKeyPair();
 * console.assert(publicKey.length === 32);
 * ```
 */
export const nativeX25519: KeyAgreement = {
  algorithm: "X25519",
  backend: "native",
  async generateKeyPair(options) {
    const extractable = options?.extractable ?? false;
    const pair = await crypto.subtle.generateKey({ name: "X25519" }, extractable, [
      "deriveBits",
    ]) as CryptoKeyPair;
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return { publicKey, privateKey: PrivateKey.wrap("X25519", "native", extractable, pair.privateKey) };
  },
  async keyPairFromSecret(secret, options) {
    expectLength(secret, 32, "X25519 secret");
    const extractable = options?.extractable ?? false;
    const der = concat(pkcs8Prefix(0x6e), secret);
    const key = await subtle().importKey("pkcs8", der, "X25519", extractable, ["deriveBits"]);
    der.fill(0);
    const pub = await subtle().getPublicKey(key, []);
    const publicKey = new Uint8Array(await subtle().exportKey("raw", pub));
    return { publicKey, privateKey: PrivateKey.wrap("X25519", "native", extractable, key) };
  },
  async exportSecret(privateKey) {
    const key = unwrapKey<CryptoKey>(privateKey, "X25519", "native");
    if (!privateKey.extractable) throw new ConfigError("this X25519 key is not extractable");
    const der = new Uint8Array(await subtle().exportKey("pkcs8", key));
    const secret = copyBytes(der.subarray(der.length - 32));
    der.fill(0);
    return secret;
  },
  async deriveSharedSecret(privateKey, publicKey) {
    const key = unwrapKey<CryptoKey>(privateKey, "X25519", "native");
    if (publicKey.length !== 32) throw new DecryptError();
    try {
      const peer = await peers.get(publicKey);
      const bits = await crypto.subtle.deriveBits({ name: "X25519", public: peer }, key, 256);
      return new Uint8Array(bits);
    } catch (cause) {
      // Web Crypto refuses an all-zero result (a low-order point).
      throw new DecryptError({ cause });
    }
  },
};

/**
 * X25519 in JavaScript (`@noble/curves`).
 *
 * @example
 * ```ts
 * import { nobleX25519 } from "@spores/spores/crypto";
 * const { publicKey } = await nobleX25519.keyPairFromSecret(new Uint8Array(32).fill(1));
 * console.assert(publicKey.length === 32);
 * ```
 */
export const nobleX25519: KeyAgreement = {
  algorithm: "X25519",
  backend: "noble",
  async generateKeyPair(options) {
    return this.keyPairFromSecret(randomBytes(32), options);
  },
  async keyPairFromSecret(secret, options) {
    expectLength(secret, 32, "X25519 secret");
    const own = copyBytes(secret);
    const publicKey = x25519.getPublicKey(own);
    return {
      publicKey,
      privateKey: PrivateKey.wrap("X25519", "noble", options?.extractable ?? false, own),
    };
  },
  async exportSecret(privateKey) {
    const secret = unwrapKey<Uint8Array>(privateKey, "X25519", "noble");
    if (!privateKey.extractable) throw new ConfigError("this X25519 key is not extractable");
    return copyBytes(secret);
  },
  async deriveSharedSecret(privateKey, publicKey) {
    const secret = unwrapKey<Uint8Array>(privateKey, "X25519", "noble");
    if (publicKey.length !== 32) throw new DecryptError();
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(secret, publicKey);
    } catch (cause) {
      throw new DecryptError({ cause });
    }
    if (isZero(shared)) throw new DecryptError();
    return shared;
  },
};
