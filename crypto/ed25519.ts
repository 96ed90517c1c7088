/**
 * Ed25519 signatures (RFC 8032): Web Crypto on the native backend,
 * `@noble/curves` on the fallback.
 *
 * @module
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { copyBytes, randomBytes } from "./bytes.ts";
import { ConfigError } from "./errors.ts";
import { expectLength, PrivateKey, unwrapKey } from "./keys.ts";
import { ed25519Profile, type SignatureScheme, webCryptoSignature } from "./signature.ts";

/**
 * Ed25519 through Web Crypto (non-extractable keys by default).
 *
 * @example
 * ```ts
 * import { nativeEd25519 } from "@spores/spores/crypto";
 * const { publicKey, privateKey } = await nativeEd25519.generateKeyPair();
 * const sig = await nativeEd25519.sign(privateKey, new Uint8Array([1]));
 * console.assert(await nativeEd25519.verify(publicKey, sig, new Uint8Array([1])));
 * ```
 */
export const nativeEd25519: SignatureScheme = webCryptoSignature(ed25519Profile);

/**
 * Ed25519 in JavaScript (`@noble/curves`), for runtimes without it natively.
 *
 * @example
 * ```ts
 * import { nobleEd25519 } from "@spores/spores/crypto";
 * const { publicKey, privateKey } = await nobleEd25519.keyPairFromSeed(new Uint8Array(32));
 * const sig = await nobleEd25519.sign(privateKey, new Uint8Array([1]));
 * console.assert(await nobleEd25519.verify(publicKey, sig, new Uint8Array([1])));
 * ```
 */
export const nobleEd25519: SignatureScheme = {
  algorithm: "Ed25519",
  backend: "noble",
  seedLength: 32,
  publicKeyLength: 32,
  signatureLength: 64,
  async generateKeyPair(options) {
    return this.keyPairFromSeed(randomBytes(32), options);
  },
  async keyPairFromSeed(seed, options) {
    expectLength(seed, 32, "Ed25519 seed");
    const secret = copyBytes(seed);
    const publicKey = ed25519.getPublicKey(secret);
    const privateKey = PrivateKey.wrap("Ed25519", "noble", options?.extractable ?? false, secret);
    return { publicKey, privateKey };
  },
  async exportSeed(privateKey) {
    const secret = unwrapKey<Uint8Array>(privateKey, "Ed25519", "noble");
    if (!privateKey.extractable) throw new ConfigError("this Ed25519 key is not extractable");
    return copyBytes(secret);
  },
  async sign(privateKey, message) {
    const secret = unwrapKey<Uint8Array>(privateKey, "Ed25519", "noble");
    return ed25519.sign(message, secret);
  },
  async verify(publicKey, signature, message) {
    try {
      // zip215: false gives the strict RFC 8032 / Web Crypto verification rules.
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};
