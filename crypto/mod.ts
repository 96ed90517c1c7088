/**
 * The cryptographic core of Spores: one small interface per primitive, each
 * with a native Web Crypto implementation and a `@noble/*` fallback chosen
 * once per process by a round-trip probe; X-Wing; the classic NaCl suite;
 * identities and key files.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { xwing, backends } = await provider();
 * const { publicKey, privateKey } = await xwing.generateKeyPair();
 * const { ciphertext, sharedSecret } = await xwing.encapsulate(publicKey);
 * console.assert((await xwing.decapsulate(privateKey, ciphertext)).length === sharedSecret.length);
 * console.log(backends);
 * ```
 *
 * @module
 */
export * from "./aead.ts";
export * from "./sodium.ts";
export * from "./bytes.ts";
export * from "./ed25519.ts";
export * from "./errors.ts";
export * from "./identity.ts";
export * from "./kdf.ts";
export * from "./key_file.ts";
export { type Backend, type KeyAlgorithm, PrivateKey } from "./keys.ts";
export * from "./ml_dsa.ts";
export * from "./ml_kem.ts";
export * from "./nacl.ts";
export * from "./provider.ts";
export type { KeyOptions, KeyPair, SignatureScheme } from "./signature.ts";
export * from "./x25519.ts";
export * from "./xwing.ts";
