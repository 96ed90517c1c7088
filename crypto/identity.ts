/**
 * An agent's long-term keys: an Ed25519 signing key, an optional ML-DSA-65
 * signing key (hybrid, post-quantum authentication) and an X-Wing KEM key.
 * The fingerprint names the signing keys; the KEM key can rotate under it.
 *
 * @module
 */
import { base32nopad, concat, equalBytes, randomBytes, utf8 } from "./bytes.ts";
import { ConfigError, KeyFileError } from "./errors.ts";
import { sha256Sync } from "./kdf.ts";
import { DEFAULT_SCRYPT_COST, openKeyFile, type ScryptCost, sealKeyFile } from "./key_file.ts";
import type { PrivateKey } from "./keys.ts";
import { naclBox } from "./nacl.ts";
import { type CryptoProvider, provider } from "./provider.ts";
import { nobleX25519 } from "./x25519.ts";
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
  /** The current X-Wing public key, 1,216 bytes. */
  xwing: Uint8Array;
}

/** An X-Wing key of an identity, with the window in which it is accepted. */
export interface KemKey {
  /** 8 bytes naming the key: SHA-256("spores/v1 kem key id" ‖ public key), truncated. */
  readonly keyId: Uint8Array;
  /** The X-Wing public key. */
  readonly publicKey: Uint8Array;
  /** The private key. */
  readonly privateKey: PrivateKey;
  /** From when senders may use it (Unix ms). */
  readonly notBefore: number;
  /** After when spores sealed to it are refused (Unix ms); `undefined` while it is current. */
  readonly notAfter: number | undefined;
}

/** The seeds an identity is made of (32 bytes each). */
export interface IdentitySeeds {
  /** Ed25519 seed. */
  ed25519: Uint8Array;
  /** ML-DSA-65 seed (ξ), for hybrid signatures. */
  mlDsa65?: Uint8Array;
  /** X25519 secret of the classic NaCl box suite. */
  box: Uint8Array;
  /** X-Wing seeds, oldest first, with their windows. */
  kem: { seed: Uint8Array; notBefore: number; notAfter?: number }[];
}

const KEY_ID_LABEL = utf8("spores/v1 kem key id");
/** Most KEM keys an identity holds at once (current plus those in their overlap). */
export const MAX_KEM_KEYS = 16;

/**
 * The 8-byte key id of an X-Wing public key.
 *
 * @example
 * ```ts
 * import { kemKeyId } from "@spores/spores/crypto";
 * console.assert(kemKeyId(new Uint8Array(1216)).length === 8);
 * ```
 */
export function kemKeyId(publicKey: Uint8Array): Uint8Array {
  return sha256Sync(concat(KEY_ID_LABEL, publicKey)).subarray(0, 8);
}

const FINGERPRINT_LABEL = utf8("spores/v1 fingerprint");
const FLAG_ML_DSA = 1;

/**
 * The 32-byte digest that names an identity: SHA-256 over a label, the
 * Ed25519 key's length and bytes, and the ML-DSA-65 key if any. Key
 * derivations bind it; the fingerprint is its first 160 bits.
 *
 * @example
 * ```ts
 * import { identityDigest } from "@spores/spores/crypto";
 * console.assert(identityDigest(new Uint8Array(32)).length === 32);
 * ```
 */
export function identityDigest(ed25519: Uint8Array, mlDsa65?: Uint8Array): Uint8Array {
  const lengths = new Uint8Array([ed25519.length >> 8, ed25519.length & 0xff]);
  return sha256Sync(concat(FINGERPRINT_LABEL, lengths, ed25519, mlDsa65 ?? new Uint8Array(0)));
}

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
  const text = base32nopad.encode(identityDigest(ed25519, mlDsa65).subarray(0, 20)).toLowerCase();
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
 *
 * @example Rotate the KEM key with an overlap window
 * ```ts
 * import { Identity } from "@spores/spores";
 * const id = await Identity.generate();
 * const old = id.kemKey;
 * await id.rotateKemKey({ overlapMs: 60_000 });
 * console.assert(id.kemKey !== old && id.findKemKey(old.keyId) !== undefined);
 * ```
 */
export class Identity {
  /** The Ed25519 signing key. */
  readonly signingKey: KeyPair;
  /** The ML-DSA-65 signing key, for hybrid signatures. */
  readonly pqSigningKey: KeyPair | undefined;
  /**
   * The X25519 key of the classic NaCl box suite (PyNaCl-compatible). Its
   * secret is held as bytes, as `tweetnacl` needs; the suite is for
   * compatibility, the X-Wing suites are the default.
   */
  readonly boxKey: KeyPair;
  /** The fingerprint of the signing keys. */
  readonly fingerprint: string;
  readonly #provider: CryptoProvider;
  readonly #extractable: boolean;
  #kemKeys: KemKey[];
  #kemSeeds: Map<KemKey, Uint8Array>;

  private constructor(
    crypto: CryptoProvider,
    extractable: boolean,
    signingKey: KeyPair,
    pqSigningKey: KeyPair | undefined,
    boxKey: KeyPair,
    kemKeys: KemKey[],
  ) {
    this.boxKey = boxKey;
    this.#provider = crypto;
    this.#extractable = extractable;
    this.signingKey = signingKey;
    this.pqSigningKey = pqSigningKey;
    this.#kemKeys = kemKeys;
    this.#kemSeeds = new Map();
    this.fingerprint = fingerprint(signingKey.publicKey, pqSigningKey?.publicKey);
  }

  /** Generates a fresh identity. */
  static async generate(options: IdentityOptions = {}): Promise<Identity> {
    const p = await provider();
    const extractable = options.extractable ?? false;
    const [signing, pq] = await Promise.all([
      p.ed25519.generateKeyPair({ extractable }),
      options.postQuantumSignatures ? p.mlDsa65.generateKeyPair({ extractable }) : undefined,
    ]);
    const id = new Identity(p, extractable, signing, pq, naclBox.generateKeyPair(), []);
    await id.#addKemKey(randomBytes(32), Date.now(), undefined);
    return id;
  }

  /**
   * Rebuilds an identity from its seeds, for example from a deployment's
   * secret store.
   */
  static async fromSeeds(
    seeds: IdentitySeeds,
    options: Pick<IdentityOptions, "extractable"> = {},
  ): Promise<Identity> {
    const p = await provider();
    const extractable = options.extractable ?? false;
    if (seeds.kem.length < 1 || seeds.kem.length > MAX_KEM_KEYS) {
      throw new ConfigError(`an identity holds 1..${MAX_KEM_KEYS} KEM keys`);
    }
    const [signing, pq] = await Promise.all([
      p.ed25519.keyPairFromSeed(seeds.ed25519, { extractable }),
      seeds.mlDsa65 ? p.mlDsa65.keyPairFromSeed(seeds.mlDsa65, { extractable }) : undefined,
    ]);
    const id = new Identity(p, extractable, signing, pq, naclBox.keyPairFromSecret(seeds.box), []);
    for (const k of seeds.kem) await id.#addKemKey(k.seed, k.notBefore, k.notAfter);
    return id;
  }

  /**
   * Opens a key file made by {@linkcode Identity.seal}: a `KeyFileError` if
   * it is corrupted or not a key file, a `PassphraseError` if the passphrase
   * is wrong. The identity comes back extractable.
   */
  static async open(file: Uint8Array, passphrase: string): Promise<Identity> {
    const secret = await openKeyFile(file, passphrase);
    try {
      return await Identity.fromSeeds(decodeSeeds(secret), { extractable: true });
    } finally {
      secret.fill(0);
    }
  }

  async #addKemKey(seed: Uint8Array, notBefore: number, notAfter: number | undefined): Promise<KemKey> {
    const pair = await this.#provider.xwing.keyPairFromSeed(seed, { extractable: this.#extractable });
    const key: KemKey = Object.freeze({
      keyId: kemKeyId(pair.publicKey),
      publicKey: pair.publicKey,
      privateKey: pair.privateKey,
      notBefore,
      notAfter,
    });
    this.#kemKeys.push(key);
    if (this.#extractable) this.#kemSeeds.set(key, seed.slice());
    return key;
  }

  /** The current X-Wing key: the newest one. */
  get kemKey(): KemKey {
    return this.#kemKeys[this.#kemKeys.length - 1]!;
  }

  /** Every X-Wing key still held, oldest first. */
  get kemKeys(): readonly KemKey[] {
    return [...this.#kemKeys];
  }

  /**
   * The key named `keyId` if spores sealed to it are still accepted at `now`
   * (it is current, or within its overlap window); otherwise `undefined`.
   */
  findKemKey(keyId: Uint8Array, now: number = Date.now()): KemKey | undefined {
    return this.#kemKeys.find((k) =>
      equalBytes(k.keyId, keyId) && (k.notAfter === undefined || now <= k.notAfter)
    );
  }

  /**
   * Makes a new current X-Wing key. The previous ones stay accepted for
   * `overlapMs` (default one hour) and are erased at the next rotation after
   * that; publish the new agent card so that senders switch.
   */
  async rotateKemKey(options: { overlapMs?: number; now?: number } = {}): Promise<KemKey> {
    const now = options.now ?? Date.now();
    const overlap = options.overlapMs ?? 3_600_000;
    if (!Number.isFinite(overlap) || overlap < 0) {
      throw new ConfigError("overlapMs must be a non-negative number");
    }
    this.#kemKeys = this.#kemKeys
      .filter((k) => k.notAfter === undefined || k.notAfter >= now)
      .map((k) => {
        if (k.notAfter !== undefined) return k;
        const ended = Object.freeze({ ...k, notAfter: now + overlap });
        const seed = this.#kemSeeds.get(k);
        this.#kemSeeds.delete(k);
        if (seed) this.#kemSeeds.set(ended, seed);
        return ended;
      });
    for (const k of this.#kemSeeds.keys()) if (!this.#kemKeys.includes(k)) this.#kemSeeds.delete(k);
    if (this.#kemKeys.length >= MAX_KEM_KEYS) {
      throw new ConfigError(`too many KEM keys in their overlap window (at most ${MAX_KEM_KEYS})`);
    }
    return await this.#addKemKey(randomBytes(32), now, undefined);
  }

  /** The public keys, to publish. */
  publicKeys(): IdentityPublicKeys {
    const keys: IdentityPublicKeys = { ed25519: this.signingKey.publicKey, xwing: this.kemKey.publicKey };
    if (this.pqSigningKey) keys.mlDsa65 = this.pqSigningKey.publicKey;
    return keys;
  }

  /** Whether the seeds can be exported (and so sealed into a key file). */
  get extractable(): boolean {
    return this.#extractable;
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

  /** Decapsulates an X-Wing ciphertext sent to `key` (default: the current key). */
  decapsulate(ciphertext: Uint8Array, key: KemKey = this.kemKey): Promise<Uint8Array> {
    return this.#provider.xwing.decapsulate(key.privateKey, ciphertext);
  }

  /**
   * Seals the identity into a key file under `passphrase` (scrypt with
   * `cost`, default N = 2^17, r = 8, p = 1; then ChaCha20-Poly1305).
   * A `ConfigError` if the identity is not extractable.
   */
  async seal(passphrase: string, cost: ScryptCost = DEFAULT_SCRYPT_COST): Promise<Uint8Array> {
    if (!this.#extractable) {
      throw new ConfigError("this identity is not extractable: generate it with { extractable: true }");
    }
    const p = this.#provider;
    const seeds: IdentitySeeds = {
      ed25519: await p.ed25519.exportSeed(this.signingKey.privateKey),
      mlDsa65: this.pqSigningKey ? await p.mlDsa65.exportSeed(this.pqSigningKey.privateKey) : undefined,
      box: await nobleX25519.exportSecret(this.boxKey.privateKey),
      kem: this.#kemKeys.map((k) => ({
        seed: this.#kemSeeds.get(k)!,
        notBefore: k.notBefore,
        notAfter: k.notAfter,
      })),
    };
    const secret = encodeSeeds(seeds);
    try {
      return await sealKeyFile(secret, passphrase, cost);
    } finally {
      secret.fill(0);
      seeds.ed25519.fill(0);
      seeds.mlDsa65?.fill(0);
      seeds.box.fill(0);
    }
  }

  /** A description without secret material. */
  toJSON(): { fingerprint: string } {
    return { fingerprint: this.fingerprint };
  }
}

// Key file contents: flags ‖ Ed25519 seed ‖ [ML-DSA-65 seed] ‖ box secret ‖ n ‖ n × (X-Wing seed ‖ notBefore u64 ‖ notAfter u64, 0 = none)
function encodeSeeds(seeds: IdentitySeeds): Uint8Array {
  const kem = seeds.kem.map(({ seed, notBefore, notAfter }) => {
    const times = new Uint8Array(16);
    const view = new DataView(times.buffer);
    view.setBigUint64(0, BigInt(notBefore));
    view.setBigUint64(8, BigInt(notAfter ?? 0));
    return concat(seed, times);
  });
  return concat(
    new Uint8Array([seeds.mlDsa65 ? FLAG_ML_DSA : 0]),
    seeds.ed25519,
    seeds.mlDsa65 ?? new Uint8Array(0),
    seeds.box,
    new Uint8Array([kem.length]),
    ...kem,
  );
}

function decodeSeeds(secret: Uint8Array): IdentitySeeds {
  const fail = () => new KeyFileError("key file holds no identity this version understands");
  const flags = secret[0];
  if (flags !== 0 && flags !== FLAG_ML_DSA) throw fail();
  const pq = flags === FLAG_ML_DSA;
  const boxAt = 33 + (pq ? 32 : 0);
  let offset = boxAt + 32;
  const count = secret[offset];
  if (count === undefined || count < 1 || count > MAX_KEM_KEYS) throw fail();
  offset += 1;
  if (secret.length !== offset + count * 48) throw fail();
  const view = new DataView(secret.buffer, secret.byteOffset, secret.byteLength);
  const kem: IdentitySeeds["kem"] = [];
  for (let i = 0; i < count; i++, offset += 48) {
    const notAfter = Number(view.getBigUint64(offset + 40));
    kem.push({
      seed: secret.slice(offset, offset + 32),
      notBefore: Number(view.getBigUint64(offset + 32)),
      notAfter: notAfter === 0 ? undefined : notAfter,
    });
  }
  return {
    ed25519: secret.slice(1, 33),
    mlDsa65: pq ? secret.slice(33, 65) : undefined,
    box: secret.slice(boxAt, boxAt + 32),
    kem,
  };
}

export type { PrivateKey };
