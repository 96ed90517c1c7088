/**
 * The key schedule: every HKDF-SHA-256 derivation of the protocol, with its
 * label. `docs/PROTOCOL.md` lists the same labels; change both together.
 *
 * @module
 */
import { concat, utf8 } from "../crypto/bytes.ts";
import { hkdfSync, sha256Sync } from "../crypto/kdf.ts";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { expand, extract } from "@noble/hashes/hkdf.js";

/** Labels, each prefixed by the protocol name and version. */
export const LABELS = {
  sealedKey: utf8("spores/v1 sealed key"),
  sealedSig: utf8("spores/v1 sealed sig"),
  classicSig: utf8("spores/v1 classic sig"),
  helloSig: utf8("spores/v1 hello sig"),
  welcomeSig: utf8("spores/v1 welcome sig"),
  transcript: utf8("spores/v1 transcript"),
  sessionId: utf8("spores/v1 session id"),
  confirm: utf8("spores/v1 confirm"),
  chain: utf8("spores/v1 chain"),
  epochKey: utf8("spores/v1 epoch key"),
  epochNext: utf8("spores/v1 epoch next"),
  broadcastSig: utf8("spores/v1 broadcast sig"),
} as const;

const EMPTY = new Uint8Array(0);
const u8 = (v: number) => new Uint8Array([v]);

/**
 * The AEAD key of a sealed spore:
 * HKDF(ikm = ss, salt = "", info = label ‖ suite ‖ D(sender) ‖ D(recipient) ‖ SHA-256(header), 32).
 */
export function sealedKey(
  sharedSecret: Uint8Array,
  suite: number,
  senderDigest: Uint8Array,
  recipientDigest: Uint8Array,
  headerBytes: Uint8Array,
): Uint8Array {
  const info = concat(LABELS.sealedKey, u8(suite), senderDigest, recipientDigest, sha256Sync(headerBytes));
  return hkdfSync(sharedSecret, EMPTY, info, 32);
}

/** What a completed handshake yields. */
export interface SessionSecrets {
  /** 16-byte session id. */
  sessionId: Uint8Array;
  /** 32-byte key-confirmation key. */
  confirmKey: Uint8Array;
  /** Chain key of the initiator-to-responder direction, epoch 0. */
  chainI2R: Uint8Array;
  /** Chain key of the responder-to-initiator direction, epoch 0. */
  chainR2I: Uint8Array;
}

/**
 * The transcript hash: SHA-256(label ‖ hello ‖ ct2), over the exact hello
 * bytes and the responder's encapsulation to the ephemeral key.
 */
export function transcriptHash(hello: Uint8Array, ct2: Uint8Array): Uint8Array {
  return sha256Sync(concat(LABELS.transcript, hello, ct2));
}

/**
 * Session secrets: prk = HKDF-Extract(salt = transcript hash, ikm = ss1 ‖ ss2), then
 * HKDF-Expand with the labels for the session id, the confirmation key and
 * the two directional chain keys (which also bind both identity digests).
 */
export function sessionSecrets(
  ss1: Uint8Array,
  ss2: Uint8Array,
  transcript: Uint8Array,
  initiatorDigest: Uint8Array,
  responderDigest: Uint8Array,
): SessionSecrets {
  const ikm = concat(ss1, ss2);
  const prk = extract(sha256, ikm, transcript);
  ikm.fill(0);
  const ids = concat(initiatorDigest, responderDigest);
  const secrets = {
    sessionId: expand(sha256, prk, LABELS.sessionId, 16),
    confirmKey: expand(sha256, prk, LABELS.confirm, 32),
    chainI2R: expand(sha256, prk, concat(LABELS.chain, u8(1), ids), 32),
    chainR2I: expand(sha256, prk, concat(LABELS.chain, u8(2), ids), 32),
  };
  prk.fill(0);
  return secrets;
}

/** The responder's key confirmation: HMAC-SHA-256(confirmKey, transcript hash ‖ welcome header). */
export function confirmation(
  confirmKey: Uint8Array,
  transcript: Uint8Array,
  welcomeHeader: Uint8Array,
): Uint8Array {
  return hmac(sha256, confirmKey, concat(transcript, welcomeHeader));
}

/** The AEAD key of an epoch: HKDF-Expand(chain, "epoch key", 32). */
export function epochKey(chain: Uint8Array): Uint8Array {
  return expand(sha256, chain, LABELS.epochKey, 32);
}

/** The next chain key: HKDF-Expand(chain, "epoch next", 32); the caller erases the old one. */
export function nextChain(chain: Uint8Array): Uint8Array {
  return expand(sha256, chain, LABELS.epochNext, 32);
}

/** The 12-byte nonce of a session or broadcast spore: u32 epoch ‖ u64 counter, big-endian. */
export function counterNonce(epoch: number, counter: number): Uint8Array {
  const nonce = new Uint8Array(12);
  const hi = Math.floor(counter / 0x1_0000_0000);
  const lo = counter >>> 0;
  nonce[0] = epoch >>> 24;
  nonce[1] = epoch >>> 16;
  nonce[2] = epoch >>> 8;
  nonce[3] = epoch;
  nonce[4] = hi >>> 24;
  nonce[5] = hi >>> 16;
  nonce[6] = hi >>> 8;
  nonce[7] = hi;
  nonce[8] = lo >>> 24;
  nonce[9] = lo >>> 16;
  nonce[10] = lo >>> 8;
  nonce[11] = lo;
  return nonce;
}
