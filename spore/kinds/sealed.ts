/**
 * One-shot sealed spores (kind 1, suites 1 and 2): encapsulate to the
 * recipient's X-Wing key, AEAD under a key bound to both identities and the
 * header, sign as the sender. They need no session and reach an offline
 * recipient.
 *
 * @module
 */
import { AeadKey } from "../../crypto/aead.ts";
import { concat, equalBytes } from "../../crypto/bytes.ts";
import { sha256Sync } from "../../crypto/kdf.ts";
import { BeforeMemoryError, ConfigError, StaleKeyError } from "../../crypto/errors.ts";
import { currentKemKey } from "../card.ts";
import { encodeEnvelope, encodeHeader, type Envelope, type Header, Kind } from "../envelope.ts";
import { outgoingPayload } from "../payload.ts";
import { LABELS, sealedKey } from "../schedule.ts";
import type { OpenResult, OutgoingSpore } from "../types.ts";
import { aeadKey, type EngineContext, sealed, type SealedSpore } from "./context.ts";

const ZERO_NONCE = new Uint8Array(12);

/** Seals `msg` for `to` as a one-shot spore. */
export async function sealOneShot(ctx: EngineContext, to: string, msg: OutgoingSpore): Promise<SealedSpore> {
  const now = ctx.now();
  const payload = outgoingPayload(msg, ctx.limits.maxPayloadBytes);
  const { card, digest } = await ctx.trusted(to);
  const kem = currentKemKey(card, now, ctx.skew);
  const header = ctx.header(Kind.SEALED, ctx.suite, to, msg, now);
  if (header.expiresAt - header.createdAt > ctx.maxOneShotTtl) {
    throw new ConfigError(`a one-shot spore lives at most ${ctx.maxOneShotTtl} ms (ttlMs)`);
  }
  header.keyId = kem.keyId;
  const headerBytes = encodeHeader(header);
  const { ciphertext: enc, sharedSecret } = await ctx.crypto.xwing.encapsulate(kem.publicKey);
  const key = AeadKey.from(sealedKey(sharedSecret, ctx.suite, ctx.digest, digest, headerBytes));
  sharedSecret.fill(0);
  const ciphertext = await ctx.crypto.aead.seal(key, ZERO_NONCE, payload, headerBytes);
  key.destroy();
  const sigs = await ctx.sign(ctx.suite, concat(LABELS.sealedSig, headerBytes, enc, ciphertext));
  return sealed(header, encodeEnvelope(headerBytes, [enc, ciphertext, ...sigs]));
}

/** The trusted sender of a spore sealed to one of this agent's KEM keys, and that key. */
export async function senderAndKey(ctx: EngineContext, h: Header, now: number) {
  const { card, digest } = await ctx.trusted(h.from);
  ctx.checkSuite(card, h.suite);
  const kem = ctx.identity.findKemKey(h.keyId!, now);
  if (!kem) throw new StaleKeyError("spore sealed to a KEM key that is rotated out or unknown");
  return { card, digest, kem };
}

/** Opens a one-shot sealed spore whose envelope passed the common checks. */
export async function openSealed(ctx: EngineContext, env: Envelope, now: number): Promise<OpenResult> {
  const h = env.header;
  const beforeMemory = ctx.checkOneShot(h, ctx.maxOneShotTtl, true);
  // The exact bytes of a spore accepted lately: the same AEAD key opens it, with no signature or KEM work.
  // (Looked up by sender and id first, so that a spore never seen costs no hash.)
  const slot = `${h.from}:${h.id}`;
  const known = ctx.recent.get(slot);
  if (known && equalBytes(known.hash, sha256Sync(env.bytes))) {
    const again = await ctx.crypto.aead.open(
      aeadKey(known.key),
      ZERO_NONCE,
      env.sections[1]!,
      env.headerBytes,
    );
    return ctx.result(h, again, "sealed", await ctx.once(h, "s"));
  }
  const { card, digest, kem } = await senderAndKey(ctx, h, now);
  const [enc, ciphertext, ...sigs] = env.sections as [Uint8Array, Uint8Array, ...Uint8Array[]];
  await ctx.verify(
    card,
    h.suite,
    concat(LABELS.sealedSig, env.headerBytes, enc, ciphertext),
    sigs,
    "sealed spore",
  );
  if (beforeMemory) {
    throw new BeforeMemoryError(
      `a spore of ${h.from} (signature checked) created before this agent's replay memory begins (a restart with a volatile store)`,
    );
  }
  const shared = await ctx.identity.decapsulate(enc, kem);
  const raw = sealedKey(shared, h.suite, digest, ctx.digest, env.headerBytes);
  const key = AeadKey.from(raw);
  shared.fill(0);
  let payload: Uint8Array;
  try {
    payload = await ctx.crypto.aead.open(key, ZERO_NONCE, ciphertext, env.headerBytes);
  } finally {
    key.destroy();
  }
  const duplicate = await ctx.once(h, "s");
  ctx.remember(slot, sha256Sync(env.bytes), raw);
  return ctx.result(h, payload, "sealed", duplicate);
}
