/**
 * Session spores (kind 2): AEAD under the session's epoch key, with the
 * (epoch, counter) nonce; no signature, since only the two parties of the
 * handshake hold the keys.
 *
 * @module
 */
import { hex } from "../../crypto/bytes.ts";
import { KeyChangedError, ReplayError, SessionError, UnknownSessionError } from "../../crypto/errors.ts";
import { encodeEnvelope, encodeHeader, type Envelope, Kind } from "../envelope.ts";
import { outgoingPayload } from "../payload.ts";
import { counterNonce } from "../schedule.ts";
import { receiveGrace, receiveKey, type SessionState } from "../session.ts";
import type { OpenResult, OutgoingSpore } from "../types.ts";
import { AeadKey } from "../../crypto/aead.ts";
import { aeadKey, type EngineContext, sealed, type SealedSpore } from "./context.ts";

/** Seals `msg` on the session `state`. */
export async function sealSession(
  ctx: EngineContext,
  state: SessionState,
  msg: OutgoingSpore,
): Promise<SealedSpore> {
  const now = ctx.now();
  const payload = outgoingPayload(msg, ctx.limits.maxPayloadBytes);
  const header = ctx.header(Kind.SESSION, state.suite, state.peer, msg, now);
  const { epoch, counter, key, rotated } = await ctx.store.allocateSend(state, ctx.policy, now);
  if (rotated) ctx.stats.rotations++;
  header.sessionId = hex.decode(state.id);
  header.epoch = epoch;
  header.counter = counter;
  const headerBytes = encodeHeader(header);
  const aead = AeadKey.from(key);
  key.fill(0); // the store hands each seal its own copy of the epoch key
  let ciphertext: Uint8Array;
  try {
    ciphertext = await ctx.crypto.aead.seal(aead, counterNonce(epoch, counter), payload, headerBytes);
  } finally {
    aead.destroy();
  }
  return sealed(
    header,
    encodeEnvelope(headerBytes, [ciphertext]),
    epoch >= ctx.policy.rehandshakeAfterEpochs,
  );
}

/** Opens a session spore whose envelope passed the common checks. */
export async function openSession(
  ctx: EngineContext,
  env: Envelope,
  now: number,
  earlier: Promise<void> = Promise.resolve(),
): Promise<OpenResult> {
  const h = env.header;
  const id = hex.encode(h.sessionId!);
  const state = await ctx.store.get(id);
  if (!state) {
    throw ctx.closed.has(id)
      ? new SessionError("spore for a closed session")
      : new UnknownSessionError("spore for a session this agent does not have");
  }
  if (state.peer !== h.from) throw new SessionError("spore for a session with another agent");
  if (state.retireAt !== undefined && now > state.retireAt) {
    throw new SessionError("spore for a closed session");
  }
  if (h.suite !== state.suite) throw new SessionError("spore suite differs from its session's");
  const { card } = await ctx.trusted(h.from);
  if (card.fingerprint !== state.peerFingerprint) {
    throw new KeyChangedError(`identity of ${h.from} changed since the session began`);
  }
  const { key, commit } = receiveKey(
    state,
    h.epoch!,
    ctx.policy,
    now,
    receiveGrace(state, ctx.policy, ctx.skew),
  );
  const payload = await ctx.crypto.aead.open(
    aeadKey(key),
    counterNonce(h.epoch!, h.counter!),
    env.sections[0]!,
    env.headerBytes,
  );
  // Keys live until the last spore that could use them has expired: an authenticated spore with a longer
  // lifetime lengthens the grace of this session's superseded epochs, and of the session if it is retiring.
  let changed = false;
  const lifetime = h.expiresAt - h.createdAt;
  if (lifetime > (state.recv.lifetime ?? 0)) {
    state.recv.lifetime = lifetime;
    changed = true;
  }
  const held = state.recv.epochs.find((e) => e.epoch === h.epoch);
  if (held?.retireAt !== undefined && h.expiresAt > held.retireAt) {
    held.retireAt = h.expiresAt;
    changed = true;
  }
  if (state.retireAt !== undefined && h.expiresAt > state.retireAt) {
    state.retireAt = h.expiresAt;
    await ctx.retire(state.peer, state.id, state.retireAt);
    changed = true;
  }
  // Write the session back only when it changed: a new epoch, a longer lifetime or grace, or the peer's first
  // proof of its keys.
  const confirming = !state.confirmed;
  if (commit() || confirming || changed) {
    state.confirmed = true;
    await ctx.store.put(state);
  }
  // A responder's session becomes the sending one only now that the initiator has proved its keys.
  if (confirming && state.retireAt === undefined) await switchTo(ctx, state);
  await earlier; // spores that arrived before this one move the replay window first
  const verdict = await ctx.store.acceptCounter(id, h.epoch!, h.counter!);
  if (verdict === "stale") throw new ReplayError("spore older than the replay window");
  return ctx.result(h, payload, "session", verdict === "duplicate", id);
}

/** Makes `state` the session used to send to its peer; the previous one receives for the grace window. */
export async function switchTo(ctx: EngineContext, state: SessionState): Promise<void> {
  const old = await ctx.store.current(state.peer);
  if (old && old.id === state.id) return;
  if (old) {
    old.retireAt = ctx.now() + receiveGrace(old, ctx.policy, ctx.skew);
    await ctx.store.put(old);
    await ctx.retire(old.peer, old.id, old.retireAt);
  }
  await ctx.store.setCurrent(state.peer, state.id);
}
