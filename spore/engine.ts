/**
 * The protocol engine of one agent: it turns messages into spores and spores
 * back into messages, runs handshakes, and applies every receive check in
 * order. It does no I/O: the agent runtime hands it bytes and sends the bytes
 * it returns. Each spore kind seals and opens in its own module under
 * `kinds/`; the engine runs the checks common to all kinds and dispatches.
 *
 * Receive checks, in order (the first failure is thrown):
 * size/format → version/suite → recipient is me → not expired, within skew →
 * sender trusted → authentic → not replayed.
 *
 * @module
 */
import {
  ClockSkewError,
  ConfigError,
  ExpiredError,
  ProtocolError,
  RecipientError,
  RollbackError,
  UnsupportedError,
} from "../crypto/errors.ts";
import { hex } from "../crypto/bytes.ts";
import type { Identity } from "../crypto/identity.ts";
import { provider } from "../crypto/provider.ts";
import { createCard, DEFAULT_CARD_LIFETIME_MS } from "./card.ts";
import type { Directory } from "./directory.ts";
import { Kind, parseEnvelope, Suite, SUITE_NAMES } from "./envelope.ts";
import { checkId, type Limits, resolveLimits } from "./limits.ts";
import {
  InOrder,
  MemorySessionStore,
  rehandshakeDue,
  resolveSessionPolicy,
  type SessionPolicy,
  type SessionStore,
} from "./session.ts";
import { StateSealer } from "./state_seal.ts";
import type { TrustPolicy } from "./trust.ts";
import type { OpenResult, OutgoingSpore, SessionInfo } from "./types.ts";
import { Broadcasts, type ChannelMembers, type SenderKeyGrant } from "./kinds/broadcast.ts";
import { openClassic, sealClassic } from "./kinds/classic.ts";
import { EngineContext, type SealedSpore } from "./kinds/context.ts";
import { Handshakes } from "./kinds/handshake.ts";
import { openSealed, sealOneShot } from "./kinds/sealed.ts";
import { openSession, sealSession } from "./kinds/session.ts";

export type { ChannelMembers, SenderKeyGrant } from "./kinds/broadcast.ts";
export { newSporeId, type SealedSpore } from "./kinds/context.ts";

/** Options of a {@linkcode SporeEngine}. */
export interface EngineOptions {
  /** This agent's id. */
  id: string;
  /** This agent's keys. */
  identity: Identity;
  /** Where cards are found (and this agent's is published). */
  directory: Directory;
  /** Which cards are trusted. */
  trust: TrustPolicy;
  /** Where sessions and replay state live; default in memory. */
  store?: SessionStore;
  /** Format limits; default 1 MiB payload, 4 KiB header. */
  limits?: Partial<Limits>;
  /** Key rotation and replay settings. */
  session?: Partial<SessionPolicy>;
  /** Clock skew tolerated on `created_at`, ms. Default 300,000. */
  skewMs?: number;
  /** Largest accepted `expires_at - created_at`, ms. Default 7 days. */
  maxTtlMs?: number;
  /** Accept and allow the classic NaCl suite (Praval compatibility). Default `false`. */
  allowClassic?: boolean;
  /** Longest lifetime of a one-shot (sealed or classic) spore, ms: its replay memory lasts that long. Default 1 day. */
  maxOneShotTtlMs?: number;
  /** How long a verified, trusted card is reused before it is looked up again, ms. Default 30,000. */
  cardCacheMs?: number;
  /**
   * Unix ms from which the replay memory is complete: one-shot spores and
   * hellos created earlier are refused, since a replay of them could not be
   * told apart. Default: this engine's start with a volatile store (the
   * memory store), no limit with a persistent one. `0` accepts them anyway,
   * for a tool that only looks at spores and runs no handler.
   */
  replayMemorySince?: number;
  /** The clock (Unix ms); for tests. */
  clock?: () => number;
}

/**
 * One agent's protocol engine.
 *
 * @example Two agents, a handshake and a session spore, with no broker
 * ```ts
 * import { Identity, MemoryDirectory, SporeEngine, TofuTrust } from "@spores/spores";
 * const directory = new MemoryDirectory();
 * const alice = await SporeEngine.create({ id: "alice", identity: await Identity.generate(), directory, trust: new TofuTrust() });
 * const bob = await SporeEngine.create({ id: "bob", identity: await Identity.generate(), directory, trust: new TofuTrust() });
 * await alice.publishCard();
 * await bob.publishCard();
 *
 * const { bytes: hello, established } = await alice.hello("bob");
 * const answer = await bob.open(hello);
 * if (answer.status === "handshake" && answer.reply) await alice.open(answer.reply);
 * await established;
 *
 * const spore = await alice.seal("bob", { type: "chat", content: "hello" });
 * const got = await bob.open(spore);
 * if (got.status === "message") console.assert(got.spore.content === "hello" && got.spore.kind === "session");
 * ```
 */
export class SporeEngine {
  /** This agent's id. */
  readonly id: string;
  /** This agent's keys. */
  readonly identity: Identity;
  /** Format limits in force. */
  readonly limits: Limits;
  /** Session policy in force. */
  readonly policy: SessionPolicy;
  /** Key rotations this engine made: sending epochs after the first, and KEM key rotations. */
  readonly stats: { rotations: number };
  readonly #ctx: EngineContext;
  readonly #handshakes: Handshakes;
  readonly #broadcasts: Broadcasts;
  readonly #arrivals = new InOrder();
  #card: Uint8Array | undefined;
  #cardIssuedAt = 0;
  #cardExpiresAt = 0;

  private constructor(ctx: EngineContext) {
    this.id = ctx.id;
    this.identity = ctx.identity;
    this.limits = ctx.limits;
    this.policy = ctx.policy;
    this.stats = ctx.stats;
    this.#ctx = ctx;
    this.#handshakes = new Handshakes(ctx);
    this.#broadcasts = new Broadcasts(ctx);
  }

  /** Makes an engine (selects the crypto backend on first use). */
  static async create(options: EngineOptions): Promise<SporeEngine> {
    const policy = resolveSessionPolicy(options.session);
    const skewMs = options.skewMs ?? 300_000;
    if (!Number.isInteger(skewMs) || skewMs < 0) throw new ConfigError("skewMs must be >= 0");
    const store: SessionStore = options.store ??
      new MemorySessionStore({ replayWindow: policy.replayWindow });
    store.attach?.(await StateSealer.fromIdentity(options.identity, checkId(options.id, "agent id")));
    const ctx = new EngineContext({
      id: checkId(options.id, "agent id"),
      identity: options.identity,
      crypto: await provider(),
      directory: options.directory,
      trust: options.trust,
      store,
      limits: resolveLimits(options.limits),
      policy,
      skewMs,
      maxTtlMs: options.maxTtlMs ?? 7 * 86_400_000,
      allowClassic: options.allowClassic ?? false,
      cardCacheMs: options.cardCacheMs ?? 30_000,
      maxOneShotTtlMs: options.maxOneShotTtlMs ?? 86_400_000,
      replayMemorySince: options.replayMemorySince,
      clock: options.clock ?? Date.now,
    });
    return new SporeEngine(ctx);
  }

  /** The suite this agent seals with. */
  get suite(): string {
    return SUITE_NAMES[this.#ctx.suite];
  }

  /**
   * This agent's signed card: made once, and again after a KEM key rotation
   * or when half its lifetime (30 days) has passed. Each new card has a
   * greater `issuedAt` (its version) than the one before.
   */
  async card(): Promise<Uint8Array> {
    const now = this.#ctx.now();
    if (this.#card && now < this.#cardIssuedAt + (this.#cardExpiresAt - this.#cardIssuedAt) / 2) {
      return this.#card;
    }
    const issuedAt = Math.max(now, this.#cardIssuedAt + 1);
    this.#card = await createCard(this.id, this.identity, { issuedAt });
    this.#cardIssuedAt = issuedAt;
    this.#cardExpiresAt = issuedAt + DEFAULT_CARD_LIFETIME_MS;
    return this.#card;
  }

  /** Whether the card is past half its lifetime, so that it should be made and published again. */
  get cardRenewalDue(): boolean {
    const now = this.#ctx.now();
    return this.#card === undefined ||
      now >= this.#cardIssuedAt + (this.#cardExpiresAt - this.#cardIssuedAt) / 2;
  }

  /**
   * Publishes this agent's card to the directory. If the directory holds a
   * newer card of this same identity (another process of this agent, or a
   * clock that went back), a card with a version above it is made and
   * published instead.
   */
  async publishCard(): Promise<void> {
    try {
      await this.#ctx.directory.publish(await this.card());
    } catch (e) {
      if (!(e instanceof RollbackError)) throw e;
      const held = await this.#ctx.directory.lookup(this.id);
      if (!held || held.fingerprint !== this.identity.fingerprint) throw e;
      this.#card = undefined;
      this.#cardIssuedAt = Math.max(this.#cardIssuedAt, held.issuedAt);
      await this.#ctx.directory.publish(await this.card());
    }
  }

  /**
   * Rotates this agent's KEM key (the old one stays accepted for
   * `overlapMs`) and publishes the new card.
   */
  async rotateKemKey(overlapMs?: number): Promise<void> {
    await this.identity.rotateKemKey({ overlapMs, now: this.#ctx.now() });
    this.stats.rotations++;
    this.#card = undefined;
    await this.publishCard();
  }

  /** Forgets cached cards, so the next use looks them up again. */
  forgetCards(): void {
    this.#ctx.forgetCards();
  }

  // ---- sending ----------------------------------------------------------------

  /**
   * Seals `msg` for `to`: on the current session if there is one, otherwise
   * as a one-shot sealed spore (which works for an offline recipient).
   * `mode: "sealed"` forces a one-shot spore, `mode: "classic"` the NaCl suite.
   */
  async seal(
    to: string,
    msg: OutgoingSpore,
    options: { mode?: "auto" | "sealed" | "classic" } = {},
  ): Promise<Uint8Array> {
    return (await this.sealSpore(to, msg, options)).bytes;
  }

  /**
   * As {@linkcode SporeEngine.seal}, with the public description of the spore
   * (what `inspect` would return) and whether the session it went on is due
   * for a fresh handshake, so a caller need not parse it again.
   */
  async sealSpore(
    to: string,
    msg: OutgoingSpore,
    options: { mode?: "auto" | "sealed" | "classic" } = {},
  ): Promise<SealedSpore> {
    const mode = options.mode ?? "auto";
    if (mode === "classic") return await sealClassic(this.#ctx, to, msg);
    if (mode === "auto") {
      const session = await this.#ctx.store.current(to);
      if (session && session.retireAt === undefined) return await sealSession(this.#ctx, session, msg);
    }
    return await sealOneShot(this.#ctx, to, msg);
  }

  // ---- broadcast (sender keys) ----------------------------------------------------

  /** Receives broadcasts of `channel` from now on. */
  join(channel: string): void {
    this.#broadcasts.join(channel);
  }

  /** Stops accepting broadcasts of `channel`. */
  leave(channel: string): void {
    this.#broadcasts.leave(channel);
  }

  /** Channels joined. */
  get channels(): string[] {
    return this.#broadcasts.channels;
  }

  /**
   * Sets the membership of `channel` (explicit, deny by default): who may
   * receive this agent's sender key, and whose broadcasts it accepts. A
   * change of members starts a new sender key at the next broadcast.
   */
  setMembers(channel: string, members: ChannelMembers): void {
    this.#broadcasts.setMembers(channel, members);
  }

  /** The membership of `channel`, if set. */
  members(channel: string): ChannelMembers | undefined {
    return this.#broadcasts.members(channel);
  }

  /** Whether `agent` is a member of `channel` (may receive this agent's sender key). */
  isMember(channel: string, agent: string): boolean {
    return this.#broadcasts.isMember(channel, agent);
  }

  /** Whether a sender key `keyId` (hex) from `from` is held. */
  holdsSenderKey(from: string, keyId: string): boolean {
    return this.#broadcasts.holds(from, keyId);
  }

  /**
   * Seals `msg` for every member of `channel`: one AEAD under this agent's
   * sender key for the channel, and this agent's signature. Members obtain
   * the sender key from this agent (`grantSenderKey`) over a direct spore.
   */
  async sealBroadcast(channel: string, msg: OutgoingSpore): Promise<Uint8Array> {
    return (await this.sealBroadcastSpore(channel, msg)).bytes;
  }

  /** As {@linkcode SporeEngine.sealBroadcast}, with the spore's public description. */
  sealBroadcastSpore(channel: string, msg: OutgoingSpore): Promise<SealedSpore> {
    return this.#broadcasts.seal(channel, msg);
  }

  /**
   * The sender key `keyId` (hex) of `channel`, for `requester` (an
   * authenticated agent that asked over a direct spore), or `undefined` if
   * `requester` is not a member of the channel or this agent has no such
   * key. Send it back with `seal`.
   */
  grantSenderKey(channel: string, keyId: string, requester: string): SenderKeyGrant | undefined {
    return this.#broadcasts.grant(channel, keyId, requester);
  }

  /**
   * Installs a sender key that `from` sent in a direct spore (already
   * authenticated): its id must be the hash of the key, and `from` must be
   * allowed to post to the channel.
   */
  installSenderKey(from: string, grant: unknown): void {
    this.#broadcasts.install(from, grant);
  }

  // ---- handshake ------------------------------------------------------------------

  /**
   * Starts a handshake with `peer` and returns the hello to send. While one
   * is in progress the same hello (and promise) is returned, so a retry
   * resends identical bytes. `force` starts a fresh one (re-key).
   */
  hello(
    peer: string,
    options: { force?: boolean } = {},
  ): Promise<{ bytes: Uint8Array; established: Promise<SessionInfo> }> {
    return this.#handshakes.hello(peer, options);
  }

  /**
   * The session a handshake this agent started with `peer` will establish,
   * while it is under way (its welcome not yet opened); else `undefined`.
   */
  handshakeUnderway(peer: string): Promise<SessionInfo> | undefined {
    return this.#handshakes.underway(peer);
  }

  /** Whether a session to `peer` is established. */
  async hasSession(peer: string): Promise<boolean> {
    const s = await this.#ctx.store.current(peer);
    return s !== undefined && s.retireAt === undefined;
  }

  /**
   * Removes session `id` with `peer` (its peer told this agent, authenticated,
   * that it no longer holds it): spores to `peer` go as one-shots until a new
   * handshake. False if there is no such session with `peer`.
   */
  async forgetSession(peer: string, id: string): Promise<boolean> {
    const s = await this.#ctx.store.get(id);
    if (!s || s.peer !== peer) return false;
    await this.#ctx.closeSession(id);
    return true;
  }

  /** Whether the session to `peer` has run long enough that a fresh handshake is due. */
  async rekeyDue(peer: string): Promise<boolean> {
    const s = await this.#ctx.store.current(peer);
    return s !== undefined && rehandshakeDue(s, this.policy);
  }

  // ---- receiving --------------------------------------------------------------

  /**
   * Opens a spore. Returns a message, a duplicate (ack and drop it), a
   * handshake step (send its reply), or an ignored hello; throws a
   * `ProtocolError` or `SecurityError` subclass for anything refused.
   */
  async open(bytes: Uint8Array): Promise<OpenResult> {
    const ctx = this.#ctx;
    const env = parseEnvelope(bytes, this.limits);
    const h = env.header;
    const now = ctx.now();
    if (h.suite === Suite.NACL_ED25519 && !ctx.allowClassic) {
      throw new UnsupportedError("the classic NaCl suite is disabled here");
    }
    if (h.kind === Kind.BROADCAST ? !this.#broadcasts.has(h.to) : h.to !== this.id) {
      throw new RecipientError(`spore for ${h.to} reached ${this.id}`);
    }
    if (h.expiresAt - h.createdAt > ctx.maxTtl) throw new ProtocolError("spore lifetime over the maximum");
    if (h.createdAt > now + ctx.skew) {
      throw new ClockSkewError("spore created in the future beyond the skew");
    }
    if (now > h.expiresAt) throw new ExpiredError("spore expired");
    switch (h.kind) {
      case Kind.SESSION:
        // Replay windows move in the order spores arrived, not the order their decryption finished.
        return await this.#arrivals.run(
          hex.encode(h.sessionId!),
          (earlier) => openSession(ctx, env, now, earlier),
        );
      case Kind.SEALED:
        return h.suite === Suite.NACL_ED25519
          ? await openClassic(ctx, env, now)
          : await openSealed(ctx, env, now);
      case Kind.HELLO:
        return await this.#handshakes.openHello(env, now);
      case Kind.WELCOME:
        return await this.#handshakes.openWelcome(env, now);
      case Kind.BROADCAST:
        return await this.#arrivals.run(
          `b/${h.from}/${hex.encode(h.keyId!)}`,
          (earlier) => this.#broadcasts.open(env, now, earlier),
        );
    }
  }
}
