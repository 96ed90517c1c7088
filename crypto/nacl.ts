/**
 * The classic NaCl suite, byte-compatible with PyNaCl: `Box`
 * (X25519 + XSalsa20-Poly1305, `crypto_box`) through `tweetnacl`, and
 * Ed25519 detached signatures (deterministic, so any conforming
 * implementation gives PyNaCl's `SigningKey` bytes; the provider's is used).
 *
 * @module
 */
import nacl from "tweetnacl";
import { concat, copyBytes, randomBytes } from "./bytes.ts";
import { DecryptError } from "./errors.ts";
import { expectLength, PrivateKey, unwrapKey } from "./keys.ts";
import type { KeyPair } from "./signature.ts";

/** Bytes of a `crypto_box` nonce. */
export const BOX_NONCE_LENGTH = 24;
/** Bytes of a `crypto_box` authenticator. */
export const BOX_OVERHEAD = 16;

// tweetnacl checks `instanceof Uint8Array` and rejects subclasses such as
// Buffer from another realm: hand it plain copies.
const plain = (b: Uint8Array): Uint8Array => (b.constructor === Uint8Array ? b : copyBytes(b));

/** `crypto_box` as PyNaCl's `nacl.public.Box` uses it; see {@linkcode naclBox}. */
export interface NaclBox {
  /** A fresh key pair (the private key is an X25519 key of the `noble` backend). */
  generateKeyPair(): KeyPair;
  /** The key pair of a 32-byte secret, as `PrivateKey(secret)` in PyNaCl. */
  keyPairFromSecret(secret: Uint8Array): KeyPair;
  /** `crypto_box`: the authenticator and ciphertext, without the nonce. */
  seal(
    message: Uint8Array,
    nonce: Uint8Array,
    theirPublicKey: Uint8Array,
    myPrivateKey: PrivateKey,
  ): Uint8Array;
  /** `crypto_box_open`; a `DecryptError` for any failure. */
  open(box: Uint8Array, nonce: Uint8Array, theirPublicKey: Uint8Array, myPrivateKey: PrivateKey): Uint8Array;
  /** PyNaCl's `Box.encrypt`: `nonce ‖ box`, with a random nonce unless one is given. */
  encrypt(
    message: Uint8Array,
    theirPublicKey: Uint8Array,
    myPrivateKey: PrivateKey,
    nonce?: Uint8Array,
  ): Uint8Array;
  /** PyNaCl's `Box.decrypt` of `nonce ‖ box`; a `DecryptError` for any failure. */
  decrypt(combined: Uint8Array, theirPublicKey: Uint8Array, myPrivateKey: PrivateKey): Uint8Array;
}

/**
 * `crypto_box` as PyNaCl's `nacl.public.Box` uses it.
 *
 * @example Encrypt like `Box(sk, pk).encrypt(msg)` in PyNaCl
 * ```ts
 * import { naclBox } from "@spores/spores/crypto";
 * const alice = naclBox.generateKeyPair();
 * const bob = naclBox.generateKeyPair();
 * const sealed = naclBox.encrypt(new Uint8Array([1, 2]), bob.publicKey, alice.privateKey);
 * const opened = naclBox.decrypt(sealed, alice.publicKey, bob.privateKey);
 * console.assert(opened[1] === 2);
 * ```
 */
export const naclBox: NaclBox = {
  /** A fresh key pair (the private key is an X25519 key of the `noble` backend). */
  generateKeyPair(): KeyPair {
    return naclBox.keyPairFromSecret(randomBytes(32));
  },

  /** The key pair of a 32-byte secret, as `PrivateKey(secret)` in PyNaCl. */
  keyPairFromSecret(secret: Uint8Array): KeyPair {
    expectLength(secret, 32, "box secret key");
    const own = copyBytes(secret);
    const { publicKey } = nacl.box.keyPair.fromSecretKey(own);
    return { publicKey, privateKey: PrivateKey.wrap("X25519", "noble", true, own) };
  },

  /** `crypto_box`: the authenticator and ciphertext, without the nonce. */
  seal(
    message: Uint8Array,
    nonce: Uint8Array,
    theirPublicKey: Uint8Array,
    myPrivateKey: PrivateKey,
  ): Uint8Array {
    expectLength(nonce, BOX_NONCE_LENGTH, "box nonce");
    expectLength(theirPublicKey, 32, "box public key");
    const secret = unwrapKey<Uint8Array>(myPrivateKey, "X25519", "noble");
    return nacl.box(plain(message), plain(nonce), plain(theirPublicKey), secret);
  },

  /** `crypto_box_open`; a `DecryptError` for any failure. */
  open(box: Uint8Array, nonce: Uint8Array, theirPublicKey: Uint8Array, myPrivateKey: PrivateKey): Uint8Array {
    const secret = unwrapKey<Uint8Array>(myPrivateKey, "X25519", "noble");
    if (nonce.length !== BOX_NONCE_LENGTH || theirPublicKey.length !== 32 || box.length < BOX_OVERHEAD) {
      throw new DecryptError();
    }
    const opened = nacl.box.open(plain(box), plain(nonce), plain(theirPublicKey), secret);
    if (opened === null) throw new DecryptError();
    return opened;
  },

  /** PyNaCl's `Box.encrypt`: `nonce ‖ box`, with a random nonce unless one is given. */
  encrypt(
    message: Uint8Array,
    theirPublicKey: Uint8Array,
    myPrivateKey: PrivateKey,
    nonce: Uint8Array = randomBytes(BOX_NONCE_LENGTH),
  ): Uint8Array {
    return concat(nonce, naclBox.seal(message, nonce, theirPublicKey, myPrivateKey));
  },

  /** PyNaCl's `Box.decrypt` of `nonce ‖ box`; a `DecryptError` for any failure. */
  decrypt(combined: Uint8Array, theirPublicKey: Uint8Array, myPrivateKey: PrivateKey): Uint8Array {
    if (combined.length < BOX_NONCE_LENGTH + BOX_OVERHEAD) throw new DecryptError();
    return naclBox.open(
      combined.subarray(BOX_NONCE_LENGTH),
      combined.subarray(0, BOX_NONCE_LENGTH),
      theirPublicKey,
      myPrivateKey,
    );
  },
};
