/**
 * X-Wing, the hybrid KEM of ML-KEM-768 and X25519
 * (draft-connolly-cfrg-xwing-kem), built on the {@linkcode Kem} and
 * {@linkcode KeyAgreement} primitives of whichever backend is selected.
 *
 * ```text
 * keygen(seed):      (d ‖ z ‖ sk_X) = SHAKE256(seed, 96)
 *                    pk = pk_M(d, z) ‖ X25519(sk_X, 9)                  1216 bytes
 * encaps(pk):        (ct_M, ss_M) = ML-KEM.Encaps(pk_M); ek_X random
 *                    ct = ct_M ‖ X25519(ek_X, 9)                         1120 bytes
 * shared secret:     SHA3-256(ss_M ‖ X25519(ek_X, pk_X) ‖ ct_X ‖ pk_X ‖ "\.//^\")
 * ```
 *
 * One deviation from the draft, on the side of refusal: an X25519 share that
 * is all zero (a low-order `ct_X` or `pk_X`, which no honest party produces)
 * is rejected with a `DecryptError`, as Web Crypto requires.
 *
 * @module
 */
import { concat, copyBytes, randomBytes } from "./bytes.ts";
import { ConfigError, DecryptError } from "./errors.ts";
import { sha3_256, shake256 } from "@noble/hashes/sha3.js";
import { type Backend, expectLength, PrivateKey, unwrapKey } from "./keys.ts";
import type { Encapsulation, Kem } from "./ml_kem.ts";
import type { KeyOptions, KeyPair } from "./signature.ts";
import type { KeyAgreement } from "./x25519.ts";

/** Bytes of an X-Wing seed (the private key). */
export const XWING_SEED_LENGTH = 32;
/** Bytes of an X-Wing public key. */
export const XWING_PUBLIC_KEY_LENGTH = 1216;
/** Bytes of an X-Wing ciphertext. */
export const XWING_CIPHERTEXT_LENGTH = 1120;

const ML_KEM_PUBLIC = 1184;
const ML_KEM_CIPHERTEXT = 1088;
const LABEL = new Uint8Array([0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c]); // "\.//^\"

/**
 * The X-Wing KEM.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { xwing } = await provider();
 * const { publicKey, privateKey } = await xwing.generateKeyPair();
 * const { ciphertext, sharedSecret } = await xwing.encapsulate(publicKey);
 * const again = await xwing.decapsulate(privateKey, ciphertext);
 * console.assert(again.every((v, i) => v === sharedSecret[i]));
 * ```
 */
export interface XWing {
  /** The algorithm name. */
  readonly algorithm: "X-Wing";
  /** The backend of its ML-KEM-768 part. */
  readonly backend: Backend;
  /** Makes a fresh key pair. */
  generateKeyPair(options?: KeyOptions): Promise<KeyPair>;
  /** The key pair of a 32-byte seed (deterministic). */
  keyPairFromSeed(seed: Uint8Array, options?: KeyOptions): Promise<KeyPair>;
  /** Exports the 32-byte seed of an extractable private key. */
  exportSeed(privateKey: PrivateKey): Promise<Uint8Array>;
  /**
   * Encapsulates to a 1216-byte public key. `eseed` (64 bytes) makes it
   * deterministic, for test vectors, where the ML-KEM backend allows it.
   * An invalid public key is a `DecryptError`.
   */
  encapsulate(publicKey: Uint8Array, eseed?: Uint8Array): Promise<Encapsulation>;
  /** Decapsulates a 1120-byte ciphertext; a `DecryptError` for a malformed one. */
  decapsulate(privateKey: PrivateKey, ciphertext: Uint8Array): Promise<Uint8Array>;
}

interface XWingSecret {
  seed: Uint8Array | undefined;
  mlKem: PrivateKey;
  x25519: PrivateKey;
  publicKeyX: Uint8Array;
}

function combine(ssM: Uint8Array, ssX: Uint8Array, ctX: Uint8Array, pkX: Uint8Array): Uint8Array {
  return sha3_256(concat(ssM, ssX, ctX, pkX, LABEL));
}

/**
 * Builds X-Wing on an ML-KEM-768 and an X25519 implementation.
 *
 * @example
 * ```ts
 * import { createXWing, nobleMlKem768, nobleX25519 } from "@spores/spores/crypto";
 * const xwing = createXWing(nobleMlKem768, nobleX25519);
 * const { publicKey } = await xwing.keyPairFromSeed(new Uint8Array(32));
 * console.assert(publicKey.length === 1216);
 * ```
 */
export function createXWing(kem: Kem, dh: KeyAgreement): XWing {
  return {
    algorithm: "X-Wing",
    backend: kem.backend,
    generateKeyPair(options) {
      return this.keyPairFromSeed(randomBytes(XWING_SEED_LENGTH), options);
    },
    async keyPairFromSeed(seed, options) {
      expectLength(seed, XWING_SEED_LENGTH, "X-Wing seed");
      const expanded = shake256(seed, { dkLen: 96 });
      const [m, x] = await Promise.all([
        kem.keyPairFromSeed(expanded.subarray(0, 64)),
        dh.keyPairFromSecret(expanded.subarray(64, 96)),
      ]);
      expanded.fill(0);
      const extractable = options?.extractable ?? false;
      const secret: XWingSecret = {
        seed: extractable ? copyBytes(seed) : undefined,
        mlKem: m.privateKey,
        x25519: x.privateKey,
        publicKeyX: x.publicKey,
      };
      return {
        publicKey: concat(m.publicKey, x.publicKey),
        privateKey: PrivateKey.wrap("X-Wing", kem.backend, extractable, secret),
      };
    },
    exportSeed(privateKey) {
      const { seed } = unwrapKey<XWingSecret>(privateKey, "X-Wing", kem.backend);
      if (seed === undefined) return Promise.reject(new ConfigError("this X-Wing key is not extractable"));
      return Promise.resolve(copyBytes(seed));
    },
    async encapsulate(publicKey, eseed) {
      if (publicKey.length !== XWING_PUBLIC_KEY_LENGTH) throw new DecryptError();
      const pkM = publicKey.subarray(0, ML_KEM_PUBLIC);
      const pkX = publicKey.subarray(ML_KEM_PUBLIC);
      if (eseed !== undefined) expectLength(eseed, 64, "X-Wing encapsulation seed");
      const [m, ephemeral] = await Promise.all([
        kem.encapsulate(pkM, eseed?.subarray(0, 32)),
        eseed === undefined ? dh.generateKeyPair() : dh.keyPairFromSecret(eseed.subarray(32, 64)),
      ]);
      const ssX = await dh.deriveSharedSecret(ephemeral.privateKey, pkX);
      const ctX = ephemeral.publicKey;
      return {
        ciphertext: concat(m.ciphertext, ctX),
        sharedSecret: combine(m.sharedSecret, ssX, ctX, pkX),
      };
    },
    async decapsulate(privateKey, ciphertext) {
      const secret = unwrapKey<XWingSecret>(privateKey, "X-Wing", kem.backend);
      if (ciphertext.length !== XWING_CIPHERTEXT_LENGTH) throw new DecryptError();
      const ctM = ciphertext.subarray(0, ML_KEM_CIPHERTEXT);
      const ctX = ciphertext.subarray(ML_KEM_CIPHERTEXT);
      const [ssM, ssX] = await Promise.all([
        kem.decapsulate(secret.mlKem, ctM),
        dh.deriveSharedSecret(secret.x25519, ctX),
      ]);
      return combine(ssM, ssX, ctX, secret.publicKeyX);
    },
  };
}
