/**
 * Classic spores (kind 1, suite 3): a NaCl box (X25519 + XSalsa20-Poly1305)
 * and an Ed25519 signature over the header, byte-compatible with PyNaCl's
 * `Box` for agents of the Praval design. Off unless `allowClassic`.
 *
 * @module
 */
import { concat, randomBytes } from "../../crypto/bytes.ts";
import { ConfigError } from "../../crypto/errors.ts";
import { naclBox } from "../../crypto/nacl.ts";
import { encodeEnvelope, encodeHeader, type Envelope, Kind, Suite } from "../envelope.ts";
import { outgoingPayload } from "../payload.ts";
import { LABELS } from "../schedule.ts";
import type { OpenResult, OutgoingSpore } from "../types.ts";
import { type EngineContext, sealed, type SealedSpore } from "./context.ts";

/** Seals `msg` for `to` with the classic NaCl suite. */
export async function sealClassic(ctx: EngineContext, to: string, msg: OutgoingSpore): Promise<SealedSpore> {
  if (!ctx.allowClassic) {
    throw new ConfigError("the classic NaCl suite is disabled (allowClassic: false)");
  }
  const now = ctx.now();
  const payload = outgoingPayload(msg, ctx.limits.maxPayloadBytes);
  const { card } = await ctx.trusted(to);
  const header = ctx.header(Kind.SEALED, Suite.NACL_ED25519, to, msg, now);
  const headerBytes = encodeHeader(header);
  const nonce = randomBytes(24);
  const box = naclBox.seal(payload, nonce, card.box, ctx.identity.boxKey.privateKey);
  const sig = await ctx.identity.sign(concat(LABELS.classicSig, headerBytes, nonce, box));
  return sealed(header, encodeEnvelope(headerBytes, [nonce, box, sig]));
}

/** Opens a classic spore whose envelope passed the common checks. */
export async function openClassic(ctx: EngineContext, env: Envelope, _now: number): Promise<OpenResult> {
  const h = env.header;
  ctx.checkOneShot(h, ctx.maxOneShotTtl);
  const { card } = await ctx.trusted(h.from);
  ctx.checkSuite(card, h.suite);
  const [nonce, box, sig] = env.sections as [Uint8Array, Uint8Array, Uint8Array];
  await ctx.verify(card, Suite.NACL_ED25519, concat(LABELS.classicSig, env.headerBytes, nonce, box), [
    sig,
  ], "classic spore");
  const payload = naclBox.open(box, nonce, card.box, ctx.identity.boxKey.privateKey);
  return ctx.result(h, payload, "sealed", await ctx.once(h, "c"));
}
