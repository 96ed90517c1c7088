/**
 * The handshake (kinds 3 and 4): the hello an initiator sends and the
 * welcome a responder answers with, the pending handshakes of this agent,
 * the welcomes it has given (so a repeated hello gets the same answer), and
 * the installation of the session both derive.
 *
 * @module
 */
import { concat, equalBytes, hex } from "../../crypto/bytes.ts";
import { ConfigError, DecryptError, SessionError } from "../../crypto/errors.ts";
import { sha256Sync } from "../../crypto/kdf.ts";
import type { PrivateKey } from "../../crypto/keys.ts";
import { currentKemKey } from "../card.ts";
import { encodeEnvelope, encodeHeader, type Envelope, Kind } from "../envelope.ts";
import { Budget } from "../budget.ts";
import { checkId } from "../limits.ts";
import { confirmation, LABELS, sessionSecrets, transcriptHash } from "../schedule.ts";
import { createSession, type SessionState } from "../session.ts";
import { switchTo } from "./session.ts";
import type { OpenResult, SessionInfo } from "../types.ts";
import type { EngineContext } from "./context.ts";
import { senderAndKey } from "./sealed.ts";

/** Lifetime of a hello and of a welcome, ms; a longer-lived hello is refused. */
export const HELLO_TTL = 120_000;
/** Unconfirmed sessions kept per peer (a responder's, until the initiator's first spore). */
const UNCONFIRMED_MAX = 4;
/** Peers whose session bookkeeping and hello budget are kept. */
const BOOKS_MAX = 10_000;
/** Hellos answered per peer: a burst, then this many per minute. */
const HELLO_BURST = 8;
const HELLO_PER_MINUTE = 6;
/** Most welcomes kept for repeated hellos. */
const WELCOMES_MAX = 10_000;

interface Pending {
  ref: string;
  peer: string;
  hello: Uint8Array;
  ephemeral: PrivateKey;
  ss1: Uint8Array;
  expiresAt: number;
  promise: Promise<SessionInfo>;
  resolve: (s: SessionInfo) => void;
  reject: (e: unknown) => void;
}

/** This agent's handshakes: both roles. */
export class Handshakes {
  readonly #ctx: EngineContext;
  readonly #pending = new Map<string, Pending>();
  readonly #pendingByPeer = new Map<string, Pending>();
  /** Hellos of this agent that lost a simultaneous open (by ref): their welcomes are expected, and ignored. */
  readonly #superseded = new Map<string, { peer: string; until: number }>();
  readonly #welcomes = new Map<string, { bytes: Uint8Array; until: number; peer: string }>();
  readonly #books = new Map<string, { unconfirmed: string[] }>();
  readonly #hellos = new Budget(HELLO_BURST, HELLO_PER_MINUTE, BOOKS_MAX);

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /**
   * Starts a handshake with `peer` and returns the hello to send. While one
   * is in progress the same hello (and promise) is returned; `force` starts
   * a fresh one.
   */
  async hello(
    peer: string,
    options: { force?: boolean } = {},
  ): Promise<{ bytes: Uint8Array; established: Promise<SessionInfo> }> {
    const ctx = this.#ctx;
    checkId(peer, "peer");
    if (peer === ctx.id) throw new ConfigError("an agent cannot open a session with itself");
    const now = ctx.now();
    const existing = this.#pendingByPeer.get(peer);
    if (existing && existing.expiresAt > now && !options.force) {
      return { bytes: existing.hello, established: existing.promise };
    }
    if (existing) this.#drop(existing, new SessionError(`handshake with ${peer} superseded`));
    const { card } = await ctx.trusted(peer);
    const kem = currentKemKey(card, now, ctx.skew);
    const suite = ctx.suite;
    const header = ctx.header(Kind.HELLO, suite, peer, { type: "spores.hello", ttlMs: HELLO_TTL }, now);
    header.keyId = kem.keyId;
    const headerBytes = encodeHeader(header);
    const [ephemeral, enc] = await Promise.all([
      ctx.crypto.xwing.generateKeyPair(),
      ctx.crypto.xwing.encapsulate(kem.publicKey),
    ]);
    const sigs = await ctx.sign(
      suite,
      concat(LABELS.helloSig, headerBytes, ephemeral.publicKey, enc.ciphertext),
    );
    const bytes = encodeEnvelope(headerBytes, [ephemeral.publicKey, enc.ciphertext, ...sigs]);
    const { promise, resolve, reject } = Promise.withResolvers<SessionInfo>();
    promise.catch(() => {}); // a superseded handshake is not an unhandled rejection
    const pending: Pending = {
      ref: hex.encode(sha256Sync(bytes).subarray(0, 16)),
      peer,
      hello: bytes,
      ephemeral: ephemeral.privateKey,
      ss1: enc.sharedSecret,
      expiresAt: header.expiresAt,
      promise,
      resolve,
      reject,
    };
    this.#pending.set(pending.ref, pending);
    this.#pendingByPeer.set(peer, pending);
    return { bytes, established: promise };
  }

  /** The session this agent's hello to `peer` will establish, while one is under way. */
  underway(peer: string): Promise<SessionInfo> | undefined {
    return this.#pendingByPeer.get(peer)?.promise;
  }

  #drop(p: Pending, reason?: unknown): void {
    this.#pending.delete(p.ref);
    if (this.#pendingByPeer.get(p.peer) === p) this.#pendingByPeer.delete(p.peer);
    p.ss1.fill(0);
    if (reason !== undefined) p.reject(reason);
  }

  /**
   * Stores a new session. The initiator's is confirmed (the welcome proved
   * the responder's keys) and becomes the sending session at once; the
   * responder's does so only if there is no confirmed session to replace,
   * otherwise when the initiator's first spore on it confirms it. At most
   * `UNCONFIRMED_MAX` unconfirmed sessions are kept per peer, and retired
   * ones are deleted once their grace window has passed.
   */
  async #install(state: SessionState, provisional = false): Promise<void> {
    const ctx = this.#ctx;
    await ctx.store.put(state);
    const book = this.#book(state.peer);
    const old = await ctx.store.current(state.peer);
    if (!provisional && (state.confirmed || !old || !old.confirmed || old.retireAt !== undefined)) {
      await switchTo(ctx, state);
    } else {
      book.unconfirmed.push(state.id);
      while (book.unconfirmed.length > UNCONFIRMED_MAX) await ctx.closeSession(book.unconfirmed.shift()!);
    }
  }

  #book(peer: string): { unconfirmed: string[] } {
    let b = this.#books.get(peer);
    if (b) this.#books.delete(peer);
    b ??= { unconfirmed: [] };
    this.#books.set(peer, b);
    if (this.#books.size > BOOKS_MAX) this.#books.delete(this.#books.keys().next().value!);
    return b;
  }

  /** Whether `peer` may have another hello answered now (a token bucket per peer). */
  #prune(now: number): void {
    for (const [ref, w] of this.#welcomes) if (w.until < now) this.#welcomes.delete(ref);
    for (const p of this.#pending.values()) {
      if (p.expiresAt + this.#ctx.skew < now) {
        this.#drop(p, new SessionError(`handshake with ${p.peer} timed out`));
      }
    }
  }

  /** Answers a hello whose envelope passed the common checks. */
  async openHello(env: Envelope, now: number): Promise<OpenResult> {
    const ctx = this.#ctx;
    const h = env.header;
    ctx.checkOneShot(h, HELLO_TTL);
    // Cheap checks first: a hello answered already (same bytes) gets the same welcome, with no further work.
    const ref = hex.encode(sha256Sync(env.bytes).subarray(0, 16));
    this.#prune(now);
    const answered = this.#welcomes.get(ref);
    if (answered) return { status: "duplicate", id: h.id, from: h.from, reply: answered.bytes };
    const { card, digest, kem } = await senderAndKey(ctx, h, now);
    const [epk, ct1, ...sigs] = env.sections as [Uint8Array, Uint8Array, ...Uint8Array[]];
    await ctx.verify(card, h.suite, concat(LABELS.helloSig, env.headerBytes, epk, ct1), sigs, "hello");
    // A simultaneous open this agent wins is decided before the hello is recorded as seen: the loser retries
    // the same hello, and once this agent's own handshake is settled, that retry must still be answered.
    const mine = this.#pendingByPeer.get(h.from);
    if (mine && mine.expiresAt > now && ctx.id < h.from) {
      return { status: "ignored", from: h.from, reason: "simultaneous open: our hello wins" };
    }
    // The rate limit is checked before the hello is recorded as seen: a hello refused for it is answered when
    // its sender retries it within the allowance, not refused as a replay.
    if (!this.#hellos.allows(h.from, 1, now)) {
      throw new SessionError(`too many handshakes from ${h.from}: try again later`);
    }
    // A hello seen before whose welcome this agent no longer holds (it restarted between recording the hello and
    // publishing the answer, or after): answered again, within the same allowance, but the session it makes
    // is provisional, used for sending only once the initiator proves its keys on it. A replay of an old hello
    // thus costs a bounded handshake and can never become the session this agent sends on.
    const seen = await ctx.once(h, "h");
    this.#hellos.take(h.from, 1, now);

    const ss1 = await ctx.identity.decapsulate(ct1, kem);
    const { ciphertext: ct2, sharedSecret: ss2 } = await ctx.crypto.xwing.encapsulate(epk);
    const th = transcriptHash(env.bytes, ct2);
    const secrets = sessionSecrets(ss1, ss2, th, digest, ctx.digest);
    ss1.fill(0);
    ss2.fill(0);
    // The welcome, and the session, use the responder's own suite: it signs with the keys it has.
    const suite = ctx.suite;
    const header = ctx.header(Kind.WELCOME, suite, h.from, { type: "spores.welcome", ttlMs: HELLO_TTL }, now);
    header.helloRef = hex.decode(ref);
    header.sessionId = secrets.sessionId;
    const headerBytes = encodeHeader(header);
    const confirm = confirmation(secrets.confirmKey, th, headerBytes);
    const sigs2 = await ctx.sign(suite, concat(LABELS.welcomeSig, th, headerBytes, ct2, confirm));
    const welcome = encodeEnvelope(headerBytes, [ct2, confirm, ...sigs2]);
    const state = createSession(secrets, "responder", h.from, card.fingerprint, suite, now);
    secrets.confirmKey.fill(0);
    await this.#install(state, seen);
    this.#welcomes.set(ref, { bytes: welcome, until: h.expiresAt + ctx.skew, peer: h.from });
    if (this.#welcomes.size > WELCOMES_MAX) this.#welcomes.delete(this.#welcomes.keys().next().value!);
    const info: SessionInfo = { id: state.id, peer: h.from, role: "responder" };
    if (mine && !seen) {
      // We lost a simultaneous open: our own connect() completes with this session.
      this.#drop(mine);
      this.#superseded.set(mine.ref, { peer: mine.peer, until: mine.expiresAt + ctx.skew });
      while (this.#superseded.size > 1024) this.#superseded.delete(this.#superseded.keys().next().value!);
      mine.resolve(info);
    }
    return { status: "handshake", peer: h.from, sessionId: state.id, reply: welcome };
  }

  /** Completes a handshake with a welcome whose envelope passed the common checks. */
  async openWelcome(env: Envelope, now: number): Promise<OpenResult> {
    const ctx = this.#ctx;
    const h = env.header;
    const pending = this.#pending.get(hex.encode(h.helloRef!));
    const sessionId = hex.encode(h.sessionId!);
    if (!pending) {
      const existing = await ctx.store.get(sessionId);
      if (existing && existing.peer === h.from && existing.role === "initiator") {
        return { status: "duplicate", id: h.id, from: h.from };
      }
      const lost = this.#superseded.get(hex.encode(h.helloRef!));
      if (lost && lost.peer === h.from && lost.until > now) {
        return {
          status: "ignored",
          from: h.from,
          reason: "welcome to a hello that lost a simultaneous open",
        };
      }
      throw new SessionError("welcome for no handshake in progress");
    }
    if (pending.peer !== h.from) throw new SessionError("welcome from an agent the hello was not sent to");
    const { card, digest } = await ctx.trusted(h.from);
    ctx.checkSuite(card, h.suite);
    const [ct2, confirm, ...sigs] = env.sections as [Uint8Array, Uint8Array, ...Uint8Array[]];
    const th = transcriptHash(pending.hello, ct2);
    await ctx.verify(
      card,
      h.suite,
      concat(LABELS.welcomeSig, th, env.headerBytes, ct2, confirm),
      sigs,
      "welcome",
    );
    const ss2 = await ctx.crypto.xwing.decapsulate(pending.ephemeral, ct2);
    if (this.#pending.get(pending.ref) !== pending) {
      // Another copy of this welcome (the answer to a retried hello) completed the handshake meanwhile.
      ss2.fill(0);
      return { status: "duplicate", id: h.id, from: h.from };
    }
    const secrets = sessionSecrets(pending.ss1, ss2, th, ctx.digest, digest);
    ss2.fill(0);
    const expected = confirmation(secrets.confirmKey, th, env.headerBytes);
    secrets.confirmKey.fill(0);
    if (!equalBytes(secrets.sessionId, h.sessionId!) || !equalBytes(expected, confirm)) {
      throw new DecryptError();
    }
    const state = createSession(secrets, "initiator", h.from, card.fingerprint, h.suite, now);
    this.#drop(pending); // claimed before any await: a concurrent copy of this welcome is a duplicate
    try {
      await this.#install(state);
    } catch (e) {
      pending.reject(e);
      throw e;
    }
    const info: SessionInfo = { id: state.id, peer: h.from, role: "initiator" };
    pending.resolve(info);
    return { status: "handshake", peer: h.from, sessionId: state.id };
  }
}
