/**
 * An agent's long-term keys: an Ed25519 signing key, an optional ML-DSA-65
 * signing key (hybrid, post-quantum authentication) and an X-Wing KEM key.
 * The fingerprint names the signing keys; the KEM key can rotate under it.
 *
 * @module
 */
import { base32nopad, concat, utf8 } from "./bytes.ts";
import { ConfigError, KeyFileError } from "./errors.ts";
import { sha256Sync } from "./kdf.ts";
import { DEFAULT_SCRYPT_COST, openKeyFile, type ScryptCost, sealKeyFile } from "./key_file.ts";
import type { PrivateKey } from "./keys.ts";
import { type CryptoProvider, provider } from "./provider.ts";
import type { KeyPair } from "./signature.ts";

/** Options for {@linkcode Identity.generate}. */
export interface IdentityOptions {
  /**
   * Keep the seeds so the identity can be sealed into a key file. Default
   * `false`: on the native backend the private keys are then non-extractable
   * `CryptoKey`s that no code can read.
   */
  extractable?: boolean;
  /** Add an ML-DSA-65 key for hybrid (Ed25519 + ML-DSA-65) signatures. Default `false`. */
  postQuantumSignatures?: boolean;
}

/** The public half of an identity. */
export interface IdentityPublicKeys {
  /** Ed25519 public key, 32 bytes. */
  ed25519: Uint8Array;
  /** ML-DSA-65 public key, 1,952 bytes, when the identity has one. */
  mlDsa65?: Uint8Array;
  /** X-Wing public key, 1,216 bytes. */
  xwing: Uint8Array;
}

const FINGERPRINT_LABEL = utf8("spores/v1 fingerprint");
const FLAG_ML_DSA = 1;

/**
 * A short, human-comparable fingerprint of signing public keys: 160 bits of
 * SHA-256 over a label and the keys, in eight groups of four base32 letters.
 *
 * @example
 * ```ts
 * import { fingerprint } from "@spores/spores/crypto";
 * console.assert(/^([a-z2-7]{4}-){7}[a-z2-7]{4}$/.test(fingerprint(new Uint8Array(32))));
 * ```
 */
export function fingerprint(ed25519: Uint8Array, mlDsa65?: Uint8Array): string {
  const lengths = new Uint8Array([ed25519.length >> 8, ed25519.length & 0xff]);
  const digest = sha256Sync(concat(FINGERPRINT_LABEL, lengths, ed25519, mlDsa65 ?? new Uint8Array(0)));
  const text = base32nopad.encode(digest.subarray(0, 20)).toLowerCase();
  return text.match(/.{4}/g)!.join("-");
}

/**
 * An agent identity.
 *
 * @example Generate, sign, fingerprint
 * ```ts
 * import { Identity } from "@spores/spores";
 * const alice = await Identity.generate();
 * const sig = await alice.sign(new Uint8Array([1]));
 * console.assert(sig.length === 64);
 * console.log(alice.fingerprint); // e.g. "k3zq-4m7a-..."
 * ```
 *
 * @example Persist in a passphrase-sealed key file
 * ```ts
 * import { Identity } from "@spores/spores";
 * const id = await Identity.generate({ extractable: true });
 * const file = await id.seal("correct horse battery staple", { logN: 10, r: 8, p: 1 });
 * const back = await Identity.open(file, "correct horse battery staple");
 * console.assert(back.fingerprint === id.fingerprint);
 * ```
 */
export class Identity {
  /** The Ed25519 signing key. */
  readonly signingKey: KeyPair;
  /** The ML-DSA-65 signing key, for hybrid signatures. */
  readonly pqSigningKey: KeyPair | undefined;
  /** The X-Wing key that others encapsulate to. */
  readonly kemKey: KeyPair;
  /** The fingerprint of the signing keys. */
  readonly fingerprint: string;
  readonly #provider: CryptoProvider;

  private constructor(
    crypto: CryptoProvider,
    signingKey: KeyPair,
    pqSigningKey: KeyPair | undefined,
    kemKey: KeyPair,
  ) {
    this.#provider = crypto;
    this.signingKey = signingKey;
    this.pqSigningKey = pqSigningKey;
    this.kemKey = kemKey;
    this.fingerprint = fingerprint(signingKey.publicKey, pqSigningKey?.publicKey);
  }

  /** Generates a fresh identity. */
  static async generate(options: IdentityOptions = {}): Promise<Identity> {
    const p = await provider();
    const keyOptions = { extractable: options.extractable ?? false };
    const [signing, pq, kem] = await Promise.all([
      p.ed25519.generateKeyPair(keyOptions),
      options.postQuantumSignatures ? p.mlDsa65.generateKeyPair(keyOptions) : undefined,
      p.xwing.generateKeyPair(keyOptions),
    ]);
    return new Identity(p, signing, pq, kem);
  }

  /**
   * Rebuilds an identity from its seeds (32 bytes each), for example from a
   * deployment's secret store.
   */
  static async fromSeeds(
    seeds: { ed25519: Uint8Array; xwing: Uint8Array; mlDsa65?: Uint8Array },
    options: Pick<IdentityOptions, "extractable"> = {},
  ): Promise<Identity> {
    const p = await provider();
    const keyOptions = { extractable: options.extractable ?? false };
    const [signing, pq, kem] = await Promise.all([
      p.ed25519.keyPairFromSeed(seeds.ed25519, keyOptions),
      seeds.mlDsa65 ? p.mlDsa65.keyPairFromSeed(seeds.mlDsa65, keyOptions) : undefined,
      p.xwing.keyPairFromSeed(seeds.xwing, keyOptions),
    ]);
    return new Identity(p, signing, pq, kem);
  }

  /**
   * Opens a key file made by {@linkcode Identity.seal}: a `KeyFileError` if
   * it is corrupted or not a key file, a `PassphraseError` if the passphrase
   * is wrong. The identity comes back extractable.
   */
  static async open(file: Uint8Array, passphrase: string): Promise<Identity> {
    const secret = await openKeyFile(file, passphrase);
    try {
      const flags = secret[0];
      const pq = flags === FLAG_ML_DSA;
      if ((flags !== 0 && !pq) || secret.length !== (pq ? 97 : 65)) {
        throw new KeyFileError("key file holds no identity this version understands");
      }
      return await Identity.fromSeeds({
        ed25519: secret.subarray(1, 33),
        xwing: secret.subarray(33, 65),
        mlDsa65: pq ? secret.subarray(65, 97) : undefined,
      }, { extractable: true });
    } finally {
      secret.fill(0);
    }
  }

  /** The public keys, to publish. */
  publicKeys(): IdentityPublicKeys {
    const keys: IdentityPublicKeys = { ed25519: this.signingKey.publicKey, xwing: this.kemKey.publicKey };
    if (this.pqSigningKey) keys.mlDsa65 = this.pqSigningKey.publicKey;
    return keys;
  }

  /** Whether the seeds can be exported (and so sealed into a key file). */
  get extractable(): boolean {
    return this.signingKey.privateKey.extractable && this.kemKey.privateKey.extractable;
  }

  /** Signs with the Ed25519 key. */
  sign(message: Uint8Array): Promise<Uint8Array> {
    return this.#provider.ed25519.sign(this.signingKey.privateKey, message);
  }

  /** Signs with the ML-DSA-65 key; a `ConfigError` if the identity has none. */
  signPostQuantum(message: Uint8Array): Promise<Uint8Array> {
    if (!this.pqSigningKey) return Promise.reject(new ConfigError("this identity has no ML-DSA-65 key"));
    return this.#provider.mlDsa65.sign(this.pqSigningKey.privateKey, message);
  }

  /** Decapsulates an X-Wing ciphertext sent to this identity. */
  decapsulate(ciphertext: Uint8Array): Promise<Uint8Array> {
    return this.#provider.xwing.decapsulate(this.kemKey.privateKey, ciphertext);
  }

  /**
   * Seals the identity into a key file under `passphrase` (scrypt with
   * `cost`, default N = 2^17, r = 8, p = 1; then ChaCha20-Poly1305).
   * A `ConfigError` if the identity is not extractable.
   */
  async seal(passphrase: string, cost: ScryptCost = DEFAULT_SCRYPT_COST): Promise<Uint8Array> {
    if (!this.extractable || (this.pqSigningKey && !this.pqSigningKey.privateKey.extractable)) {
      throw new ConfigError("this identity is not extractable: generate it with { extractable: true }");
    }
    const p = this.#provider;
    const parts = await Promise.all([
      p.ed25519.exportSeed(this.signingKey.privateKey),
      p.xwing.exportSeed(this.kemKey.privateKey),
      ...(this.pqSigningKey ? [p.mlDsa65.exportSeed(this.pqSigningKey.privateKey)] : []),
    ]);
    const secret = concat(new Uint8Array([this.pqSigningKey ? FLAG_ML_DSA : 0]), ...parts);
    try {
      return await sealKeyFile(secret, passphrase, cost);
    } finally {
      secret.fill(0);
      for (const part of parts) part.fill(0);
    }
  }

  /** A description without secret material. */
  toJSON(): { fingerprint: string } {
    return { fingerprint: this.fingerprint };
  }
}

export type { PrivateKey };
