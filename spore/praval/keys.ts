/**
 * Praval agent keys in Praval's own shapes: a key pair as
 * `SporeKeyManager.export_keys()` writes it (base64 strings) and public keys
 * as `get_public_keys()` returns them (raw bytes, or base64 once they went
 * through JSON). A Praval agent has no Spores card: trusting one means
 * pinning its two public keys under its name (see `docs/PROTOCOL.md`,
 * "Praval profile").
 *
 * @module
 */
import nacl from "tweetnacl";
import { base64, copyBytes, equalBytes, hex, randomBytes } from "../../crypto/bytes.ts";
import { ConfigError } from "../../crypto/errors.ts";
import type { PrivateKey } from "../../crypto/keys.ts";
import { naclBox } from "../../crypto/nacl.ts";
import { provider } from "../../crypto/provider.ts";
import { sha256 } from "@noble/hashes/sha2.js";

/** Praval's `get_public_keys()`: raw bytes, or base64 strings after a trip through JSON. */
export interface PravalPublicKeysInput {
  /** Ed25519 verify key (32 bytes). */
  verify_key: Uint8Array | string;
  /** X25519 box public key (32 bytes). */
  public_key: Uint8Array | string;
  /** The agent's name. */
  agent_name: string;
}

/** Praval's `export_keys()`: base64 strings of the four keys and the agent's name. */
export interface PravalExportedKeys {
  /** The agent's name. */
  agent_name: string;
  /** Ed25519 seed (32 bytes), base64. Secret. */
  signing_key: string;
  /** X25519 secret key (32 bytes), base64. Secret. */
  box_key: string;
  /** Ed25519 verify key, base64. */
  verify_key: string;
  /** X25519 public key, base64. */
  public_key: string;
}

function keyBytes(value: Uint8Array | string, what: string): Uint8Array {
  let bytes: Uint8Array;
  if (typeof value === "string") {
    try {
      bytes = base64.decode(value);
    } catch (cause) {
      throw new ConfigError(`${what} is not valid base64`, { cause });
    }
  } else if (value instanceof Uint8Array) {
    bytes = copyBytes(value);
  } else {
    throw new ConfigError(`${what} must be bytes or a base64 string`);
  }
  if (bytes.length !== 32) throw new ConfigError(`${what} must be 32 bytes`);
  return bytes;
}

// An X25519 public key of small order gives an all-zero shared secret whatever the other
// key: libsodium (PyNaCl) refuses such a box, tweetnacl does not. Refuse it when pinned.
function checkBoxKey(publicKey: Uint8Array, what: string): void {
  const probe = nacl.scalarMult(randomBytes(32), publicKey);
  if (probe.every((b) => b === 0)) throw new ConfigError(`${what} is a low-order X25519 point`);
}

/**
 * A Praval agent's public keys, checked and pinned under its name.
 *
 * @example Pin the keys a Praval agent printed with `get_public_keys()`
 * ```ts
 * import { PravalKeyPair, PravalPublicKeys } from "@spores/spores/spore";
 * const theirs = await PravalKeyPair.generate("researcher");
 * const pinned = PravalPublicKeys.from(JSON.parse(JSON.stringify(theirs.publicKeys().toJSON())));
 * console.assert(pinned.agentName === "researcher" && pinned.fingerprint === theirs.publicKeys().fingerprint);
 * ```
 */
export class PravalPublicKeys {
  /** The agent's name. */
  readonly agentName: string;
  /** Ed25519 verify key. */
  readonly verifyKey: Uint8Array;
  /** X25519 box public key. */
  readonly publicKey: Uint8Array;
  /** SHA-256 of `verify_key ‖ public_key`, hex: compare it out of band before pinning. */
  readonly fingerprint: string;

  private constructor(agentName: string, verifyKey: Uint8Array, publicKey: Uint8Array) {
    this.agentName = agentName;
    this.verifyKey = verifyKey;
    this.publicKey = publicKey;
    const both = new Uint8Array(64);
    both.set(verifyKey), both.set(publicKey, 32);
    this.fingerprint = hex.encode(sha256(both));
    Object.freeze(this);
  }

  /** Checks and copies keys in Praval's `get_public_keys()` shape (bytes or base64). */
  static from(input: PravalPublicKeysInput): PravalPublicKeys {
    if (input === null || typeof input !== "object") {
      throw new ConfigError("Praval public keys must be an object");
    }
    const name = input.agent_name;
    if (typeof name !== "string" || name.length === 0 || name.length > 256) {
      throw new ConfigError("agent_name must be a non-empty string");
    }
    const verifyKey = keyBytes(input.verify_key, "verify_key");
    const publicKey = keyBytes(input.public_key, "public_key");
    checkBoxKey(publicKey, "public_key");
    return new PravalPublicKeys(name, verifyKey, publicKey);
  }

  /** Whether both keys are the same as `other`'s. */
  equals(other: PravalPublicKeys): boolean {
    return equalBytes(this.verifyKey, other.verifyKey) && equalBytes(this.publicKey, other.publicKey);
  }

  /** Praval's `get_public_keys()` shape exactly: raw bytes, as `KeyRegistry.register_agent` takes them. */
  toPraval(): { verify_key: Uint8Array; public_key: Uint8Array; agent_name: string } {
    return {
      verify_key: copyBytes(this.verifyKey),
      public_key: copyBytes(this.publicKey),
      agent_name: this.agentName,
    };
  }

  /** Praval's `get_public_keys()` shape with base64 strings (JSON-safe). */
  toJSON(): { verify_key: string; public_key: string; agent_name: string } {
    return {
      verify_key: base64.encode(this.verifyKey),
      public_key: base64.encode(this.publicKey),
      agent_name: this.agentName,
    };
  }
}

interface Secrets {
  signingSeed: Uint8Array;
  boxSecret: Uint8Array;
}
const secrets = new WeakMap<PravalKeyPair, Secrets>();
const shared = new WeakMap<PravalKeyPair, Map<string, Uint8Array>>();

/**
 * The key pair a Spores agent uses towards Praval agents: an Ed25519
 * signing key and an X25519 box key, separate from the agent's Spores
 * identity (no key serves two protocols). Its secrets are not reachable
 * through the object; {@linkcode PravalKeyPair.exportKeys} is the one way out.
 *
 * @example
 * ```ts
 * import { PravalKeyPair } from "@spores/spores/spore";
 * const keys = await PravalKeyPair.generate("bridge");
 * const again = await PravalKeyPair.fromExport(keys.exportKeys());
 * console.assert(again.publicKeys().equals(keys.publicKeys()));
 * ```
 */
export class PravalKeyPair {
  /** The agent's name (Praval's `agent_name`). */
  readonly agentName: string;
  /** @internal Ed25519 private key. */
  readonly signingKey: PrivateKey;
  /** @internal X25519 private key (noble backend, for the box). */
  readonly boxKey: PrivateKey;
  readonly #public: PravalPublicKeys;

  private constructor(
    agentName: string,
    signingKey: PrivateKey,
    boxKey: PrivateKey,
    publicKeys: PravalPublicKeys,
  ) {
    this.agentName = agentName;
    this.signingKey = signingKey;
    this.boxKey = boxKey;
    this.#public = publicKeys;
  }

  static async #make(
    agentName: string,
    signingSeed: Uint8Array,
    boxSecret: Uint8Array,
  ): Promise<PravalKeyPair> {
    if (typeof agentName !== "string" || agentName.length === 0 || agentName.length > 256) {
      throw new ConfigError("agent_name must be a non-empty string");
    }
    const { ed25519 } = await provider();
    const signer = await ed25519.keyPairFromSeed(signingSeed);
    const box = naclBox.keyPairFromSecret(boxSecret);
    const pub = PravalPublicKeys.from({
      agent_name: agentName,
      verify_key: signer.publicKey,
      public_key: box.publicKey,
    });
    const pair = new PravalKeyPair(agentName, signer.privateKey, box.privateKey, pub);
    secrets.set(pair, { signingSeed: copyBytes(signingSeed), boxSecret: copyBytes(boxSecret) });
    shared.set(pair, new Map());
    return pair;
  }

  /** Fresh keys, as `SporeKeyManager(agent_name)` makes them. */
  static generate(agentName: string): Promise<PravalKeyPair> {
    return PravalKeyPair.#make(agentName, randomBytes(32), randomBytes(32));
  }

  /**
   * Keys from Praval's `export_keys()` output. When the export carries
   * `verify_key` / `public_key`, they must match the secrets.
   */
  static async fromExport(exported: PravalExportedKeys): Promise<PravalKeyPair> {
    if (exported === null || typeof exported !== "object") {
      throw new ConfigError("exported keys must be an object");
    }
    const pair = await PravalKeyPair.#make(
      exported.agent_name,
      keyBytes(exported.signing_key, "signing_key"),
      keyBytes(exported.box_key, "box_key"),
    );
    const pub = pair.publicKeys();
    if (
      exported.verify_key !== undefined &&
      !equalBytes(keyBytes(exported.verify_key, "verify_key"), pub.verifyKey)
    ) {
      throw new ConfigError("verify_key does not belong to signing_key");
    }
    if (
      exported.public_key !== undefined &&
      !equalBytes(keyBytes(exported.public_key, "public_key"), pub.publicKey)
    ) {
      throw new ConfigError("public_key does not belong to box_key");
    }
    return pair;
  }

  /**
   * @internal The `crypto_box_beforenm` key shared with `peerPublicKey`
   * (X25519 then HSalsa20), computed once per peer: with it, a box costs no
   * scalar multiplication. At most 1,024 peers are cached.
   */
  sharedBoxKey(peerPublicKey: Uint8Array): Uint8Array {
    const cache = shared.get(this)!;
    const id = hex.encode(peerPublicKey);
    let k = cache.get(id);
    if (!k) {
      k = nacl.box.before(copyBytes(peerPublicKey), copyBytes(secrets.get(this)!.boxSecret));
      if (cache.size >= 1024) cache.delete(cache.keys().next().value!);
      cache.set(id, k);
    }
    return k;
  }

  /** Public keys, to give to Praval agents (`KeyRegistry.register_agent`). */
  publicKeys(): PravalPublicKeys {
    return this.#public;
  }

  /** Praval's `export_keys()` shape. It holds both secret keys: store it as a secret. */
  exportKeys(): PravalExportedKeys {
    const s = secrets.get(this)!;
    return {
      agent_name: this.agentName,
      signing_key: base64.encode(s.signingSeed),
      box_key: base64.encode(s.boxSecret),
      verify_key: base64.encode(this.#public.verifyKey),
      public_key: base64.encode(this.#public.publicKey),
    };
  }

  /** A description without secret material. */
  toJSON(): { agentName: string; fingerprint: string } {
    return { agentName: this.agentName, fingerprint: this.#public.fingerprint };
  }
}
