/**
 * ML-DSA-65 signatures (FIPS 204, pure mode, empty context): Web Crypto on
 * the native backend, `@noble/post-quantum` on the fallback.
 *
 * @module
 */
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js";
import { copyBytes, randomBytes } from "./bytes.ts";
import { ConfigError } from "./errors.ts";
import { expectLength, PrivateKey, unwrapKey } from "./keys.ts";
import { mlDsa65Profile, type SignatureScheme, webCryptoSignature } from "./signature.ts";

/**
 * ML-DSA-65 through Web Crypto.
 *
 * @example
 * ```ts
 * import { nativeMlDsa65 } from "@spores/spores/crypto";
 * const { publicKey, privateKey } = await nativeMlDsa65.generateKeyPair();
 * const sig = await nativeMlDsa65.sign(privateKey, new Uint8Array([1]));
 * console.assert(await nativeMlDsa65.verify(publicKey, sig, new Uint8Array([1])));
 * ```
 */
export const nativeMlDsa65: SignatureScheme = webCryptoSignature(mlDsa65Profile);

interface NobleMlDsaSecret {
  seed: Uint8Array;
  secretKey: Uint8Array;
}

/**
 * ML-DSA-65 in JavaScript (`@noble/post-quantum`).
 *
 * @example
 * ```ts
 * import { nobleMlDsa65 } from "@spores/spores/crypto";
 * const { publicKey, privateKey } = await nobleMlDsa65.keyPairFromSeed(new Uint8Array(32));
 * const sig = await nobleMlDsa65.sign(privateKey, new Uint8Array([1]));
 * console.assert(await nobleMlDsa65.verify(publicKey, sig, new Uint8Array([1])));
 * ```
 */
export const nobleMlDsa65: SignatureScheme = {
  algorithm: "ML-DSA-65",
  backend: "noble",
  seedLength: 32,
  publicKeyLength: 1952,
  signatureLength: 3309,
  async generateKeyPair(options) {
    return this.keyPairFromSeed(randomBytes(32), options);
  },
  async keyPairFromSeed(seed, options) {
    expectLength(seed, 32, "ML-DSA-65 seed");
    const { publicKey, secretKey } = ml_dsa65.keygen(seed);
    const secret: NobleMlDsaSecret = { seed: copyBytes(seed), secretKey };
    const privateKey = PrivateKey.wrap("ML-DSA-65", "noble", options?.extractable ?? false, secret);
    return { publicKey, privateKey };
  },
  async exportSeed(privateKey) {
    const secret = unwrapKey<NobleMlDsaSecret>(privateKey, "ML-DSA-65", "noble");
    if (!privateKey.extractable) throw new ConfigError("this ML-DSA-65 key is not extractable");
    return copyBytes(secret.seed);
  },
  async sign(privateKey, message) {
    const { secretKey } = unwrapKey<NobleMlDsaSecret>(privateKey, "ML-DSA-65", "noble");
    return ml_dsa65.sign(message, secretKey);
  },
  async verify(publicKey, signature, message) {
    try {
      return ml_dsa65.verify(signature, message, publicKey);
    } catch {
      return false;
    }
  },
};
