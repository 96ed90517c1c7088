/**
 * The signature scheme interface, shared by Ed25519 and ML-DSA-65, and the
 * Web Crypto implementation both algorithms use on the native backend.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { type Backend, expectLength, PrivateKey } from "./keys.ts";
import { concat, copyBytes } from "./bytes.ts";
import { unwrapKey } from "./keys.ts";
import { PublicKeyCache } from "./public_key_cache.ts";

/** Options for making a private key. */
export interface KeyOptions {
  /**
   * Whether the secret seed can be exported later (needed to seal a key
   * file). Default `false`: on the native backend the secret then lives in a
   * non-extractable `CryptoKey`.
   */
  extractable?: boolean;
}

/** A private key and its encoded public key. */
export interface KeyPair {
  /** The public key, in the algorithm's standard raw encoding. */
  publicKey: Uint8Array;
  /** The private key; its secret cannot be read through the object. */
  privateKey: PrivateKey;
}

/**
 * A digital signature scheme (Ed25519, ML-DSA-65). `verify` never throws on
 * malformed input: it returns `false`.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { ed25519 } = await provider();
 * const { publicKey, privateKey } = await ed25519.generateKeyPair();
 * const msg = new TextEncoder().encode("hello");
 * const sig = await ed25519.sign(privateKey, msg);
 * console.assert(await ed25519.verify(publicKey, sig, msg));
 * ```
 */
export interface SignatureScheme {
  /** The algorithm name. */
  readonly algorithm: "Ed25519" | "ML-DSA-65";
  /** The backend that implements it. */
  readonly backend: Backend;
  /** Length of a seed (the private key's secret) in bytes. */
  readonly seedLength: number;
  /** Length of an encoded public key in bytes. */
  readonly publicKeyLength: number;
  /** Length of a signature in bytes. */
  readonly signatureLength: number;
  /** Makes a fresh key pair. */
  generateKeyPair(options?: KeyOptions): Promise<KeyPair>;
  /** Derives the key pair of a seed (deterministic). */
  keyPairFromSeed(seed: Uint8Array, options?: KeyOptions): Promise<KeyPair>;
  /** Exports the seed of an extractable private key. */
  exportSeed(privateKey: PrivateKey): Promise<Uint8Array>;
  /** Signs `message`. */
  sign(privateKey: PrivateKey, message: Uint8Array): Promise<Uint8Array>;
  /** Verifies `signature` on `message`; `false` for any invalid input. */
  verify(publicKey: Uint8Array, signature: Uint8Array, message: Uint8Array): Promise<boolean>;
}

/** How a signature algorithm maps onto Web Crypto. */
interface WebCryptoSignatureProfile {
  algorithm: "Ed25519" | "ML-DSA-65";
  seedLength: number;
  publicKeyLength: number;
  signatureLength: number;
  /** Web Crypto import format and data for a seed. */
  seedImport(seed: Uint8Array): { format: string; data: Uint8Array<ArrayBuffer> };
  /** Extracts the seed from an exported private key. */
  seedExport: { format: string; extract(exported: Uint8Array): Uint8Array };
  publicFormat: string;
}

// Web Crypto's TypeScript types predate the modern algorithms (raw-seed,
// raw-public, getPublicKey, ML-KEM, ML-DSA); this is the part Spores uses.
interface ModernSubtle {
  importKey(
    format: string,
    data: BufferSource,
    algorithm: string | { name: string },
    extractable: boolean,
    usages: string[],
  ): Promise<CryptoKey>;
  exportKey(format: string, key: CryptoKey): Promise<ArrayBuffer>;
  getPublicKey(key: CryptoKey, usages: string[]): Promise<CryptoKey>;
  sign(algorithm: string | { name: string }, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer>;
  verify(
    algorithm: string | { name: string },
    key: CryptoKey,
    signature: BufferSource,
    data: BufferSource,
  ): Promise<boolean>;
}

/** The runtime's `crypto.subtle` with the modern-algorithm methods typed. */
export function subtle(): ModernSubtle {
  return crypto.subtle as unknown as ModernSubtle;
}

/** The PKCS#8 prefix of a 32-byte Ed25519 (OID 1.3.101.112) or X25519 (1.3.101.110) seed. */
export function pkcs8Prefix(oidLastByte: 0x70 | 0x6e): Uint8Array {
  return new Uint8Array([
    0x30,
    0x2e,
    0x02,
    0x01,
    0x00,
    0x30,
    0x05,
    0x06,
    0x03,
    0x2b,
    0x65,
    oidLastByte,
    0x04,
    0x22,
    0x04,
    0x20,
  ]);
}

/** Web Crypto signature schemes (native backend). */
export function webCryptoSignature(profile: WebCryptoSignatureProfile): SignatureScheme {
  const { algorithm } = profile;
  const publicKeys = new PublicKeyCache((raw) =>
    subtle().importKey(profile.publicFormat, raw, algorithm, true, ["verify"])
  );
  const fromPrivate = async (privateKey: CryptoKey, extractable: boolean): Promise<KeyPair> => {
    const pub = await subtle().getPublicKey(privateKey, ["verify"]);
    const publicKey = new Uint8Array(await subtle().exportKey(profile.publicFormat, pub));
    return { publicKey, privateKey: PrivateKey.wrap(algorithm, "native", extractable, privateKey) };
  };
  return {
    algorithm,
    backend: "native",
    seedLength: profile.seedLength,
    publicKeyLength: profile.publicKeyLength,
    signatureLength: profile.signatureLength,
    async generateKeyPair(options) {
      const extractable = options?.extractable ?? false;
      const pair = await crypto.subtle.generateKey({ name: algorithm }, extractable, [
        "sign",
        "verify",
      ]) as CryptoKeyPair;
      return fromPrivate(pair.privateKey, extractable);
    },
    async keyPairFromSeed(seed, options) {
      expectLength(seed, profile.seedLength, `${algorithm} seed`);
      const extractable = options?.extractable ?? false;
      const { format, data } = profile.seedImport(seed);
      const key = await subtle().importKey(format, data, algorithm, extractable, ["sign"]);
      data.fill(0);
      return fromPrivate(key, extractable);
    },
    async exportSeed(privateKey) {
      const key = unwrapKey<CryptoKey>(privateKey, algorithm, "native");
      if (!privateKey.extractable) throw new ConfigError(`this ${algorithm} key is not extractable`);
      const exported = new Uint8Array(await subtle().exportKey(profile.seedExport.format, key));
      const seed = copyBytes(profile.seedExport.extract(exported));
      exported.fill(0);
      return seed;
    },
    async sign(privateKey, message) {
      const key = unwrapKey<CryptoKey>(privateKey, algorithm, "native");
      return new Uint8Array(await subtle().sign(algorithm, key, message as BufferSource));
    },
    async verify(publicKey, signature, message) {
      if (publicKey.length !== profile.publicKeyLength) return false;
      if (signature.length !== profile.signatureLength) return false;
      try {
        const key = await publicKeys.get(publicKey);
        return await subtle().verify(algorithm, key, signature as BufferSource, message as BufferSource);
      } catch {
        return false;
      }
    },
  };
}

/** Ed25519 on Web Crypto: seeds travel as PKCS#8. */
export const ed25519Profile: WebCryptoSignatureProfile = {
  algorithm: "Ed25519",
  seedLength: 32,
  publicKeyLength: 32,
  signatureLength: 64,
  seedImport: (seed) => ({ format: "pkcs8", data: concat(pkcs8Prefix(0x70), seed) }),
  seedExport: { format: "pkcs8", extract: (der) => der.subarray(der.length - 32) },
  publicFormat: "raw",
};

/** ML-DSA-65 on Web Crypto: seeds travel as `raw-seed` (FIPS 204 ξ). */
export const mlDsa65Profile: WebCryptoSignatureProfile = {
  algorithm: "ML-DSA-65",
  seedLength: 32,
  publicKeyLength: 1952,
  signatureLength: 3309,
  seedImport: (seed) => ({ format: "raw-seed", data: copyBytes(seed) }),
  seedExport: { format: "raw-seed", extract: (raw) => raw },
  publicFormat: "raw-public",
};
