/**
 * The protocol engine of one agent: it turns messages into spores and spores
 * back into messages, runs handshakes, and applies every receive check in
 * order. It does no I/O: the agent runtime hands it bytes and sends the bytes
 * it returns.
 *
 * Receive checks, in order (the first failure is thrown):
 * size/format → version/suite → recipient is me → not expired, within skew →
 * sender trusted → authentic → not replayed.
 *
 * @module
 */
import { AeadKey } from "../crypto/aead.ts";
import { concat, equalBytes, hex, randomBytes } from "../crypto/bytes.ts";
import {
  ClockSkewError,
  ConfigError,
  DecryptError,
  ExpiredError,
  KeyChangedError,
  ProtocolError,
  RecipientError,
  ReplayError,
  SessionError,
  SignatureError,
  StaleKeyError,
  UnknownSenderError,
  UnsupportedError,
} from "../crypto/errors.ts";
import { type Identity, identityDigest } from "../crypto/identity.ts";
import { sha256Sync } from "../crypto/kdf.ts";
import type { PrivateKey } from "../crypto/keys.ts";
import { naclBox } from "../crypto/nacl.ts";
import { type CryptoProvider, provider } from "../crypto/provider.ts";
import { type AgentCard, createCard, currentKemKey } from "./card.ts";
import type { Directory } from "./directory.ts";
import {
  describeHeader,
  encodeEnvelope,
  encodeHeader,
  type Envelope,
  type Header,
  Kind,
  type KindId,
  parseEnvelope,
  type SporeInfo,
  Suite,
  SUITE_NAMES,
  type SuiteId,
} from "./envelope.ts";
import { checkId, type Limits, resolveLimits } from "./limits.ts";
import { decodePayload, encodePayload } from "./payload.ts";
import { confirmation, counterNonce, LABELS, sealedKey, sessionSecrets, transcriptHash } from "./schedule.ts";
import {
  createSession,
  InOrder,
  MemorySessionStore,
  receiveKey,
  rehandshakeDue,
  resolveSessionPolicy,
  type SessionPolicy,
  type SessionState,
  type SessionStore,
} from "./session.ts";
import type { TrustPolicy } from "./trust.ts";
import type { OpenedSpore, OpenResult, OutgoingSpore, SessionInfo } from "./types.ts";

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
  /** How long a verified, trusted card is reused before it is looked up again, ms. Default 30,000. */
  cardCacheMs?: number;
  /** The clock (Unix ms); for tests. */
  clock?: () => number;
}

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

interface SenderKey {
  channel: string;
  keyId: Uint8Array;
  key: Uint8Array;
  generation: number;
  counter: number;
}

/** A sender key as it travels, inside a direct spore of type `spores.sender-key`. */
export interface SenderKeyGrant {
  /** The channel. */
  channel: string;
  /** 8-byte key id. */
  keyId: Uint8Array;
  /** 32-byte key. */
  key: Uint8Array;
  /** Key generation. */
  generation: number;
}

/** Most sender keys a channel keeps (the current one and the recent ones still in flight). */
const SENDER_KEYS_KEPT = 4;
/** Most peer sender keys held. */
const PEER_SENDER_KEYS_MAX = 10_000;

const DEFAULT_TTL = 300_000;
const HELLO_TTL = 120_000;
const ZERO_NONCE = new Uint8Array(12);

const aeadKeys = new WeakMap<Uint8Array, AeadKey>();
function aeadKey(bytes: Uint8Array): AeadKey {
  let k = aeadKeys.get(bytes);
  if (!k) {
    k = AeadKey.from(bytes);
    aeadKeys.set(bytes, k);
  }
  return k;
}

/** A spore just sealed, with its public description. */
export interface SealedSpore {
  /** The spore. */
  bytes: Uint8Array;
  /** Its public header, as `inspect` would describe it. */
  info: SporeInfo;
  /** Whether the session it went on has run long enough that a fresh handshake is due. */
  rekeyDue: boolean;
}

function sealed(header: Header, bytes: Uint8Array, rekeyDue = false): SealedSpore {
  return { bytes, info: describeHeader(header, bytes.length), rekeyDue };
}

/** A new spore id: 32 random hex digits. */
export function newSporeId(): string {
  return hex.encode(randomBytes(16));
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
  readonly stats: { rotations: number } = { rotations: 0 };
  readonly #crypto: CryptoProvider;
  readonly #directory: Directory;
  readonly #trust: TrustPolicy;
  readonly #store: SessionStore;
  readonly #skew: number;
  readonly #maxTtl: number;
  readonly #allowClassic: boolean;
  readonly #cardCacheMs: number;
  readonly #now: () => number;
  readonly #digest: Uint8Array;
  readonly #arrivals = new InOrder();
  readonly #suite: SuiteId;
  readonly #cards = new Map<string, { card: AgentCard; digest: Uint8Array; until: number }>();
  readonly #lookups = new Map<string, Promise<{ card: AgentCard; digest: Uint8Array }>>();
  readonly #pending = new Map<string, Pending>();
  readonly #pendingByPeer = new Map<string, Pending>();
  readonly #welcomes = new Map<string, { bytes: Uint8Array; until: number; peer: string }>();
  readonly #channels = new Set<string>();
  readonly #ownSenderKeys = new Map<string, SenderKey[]>();
  readonly #peerSenderKeys = new Map<string, SenderKey>();
  #card: Uint8Array | undefined;

  private constructor(options: EngineOptions, crypto: CryptoProvider) {
    this.id = checkId(options.id, "agent id");
    this.identity = options.identity;
    this.limits = resolveLimits(options.limits);
    this.policy = resolveSessionPolicy(options.session);
    this.#crypto = crypto;
    this.#directory = options.directory;
    this.#trust = options.trust;
    this.#store = options.store ?? new MemorySessionStore({ replayWindow: this.policy.replayWindow });
    this.#skew = options.skewMs ?? 300_000;
    this.#maxTtl = options.maxTtlMs ?? 7 * 86_400_000;
    this.#allowClassic = options.allowClassic ?? false;
    this.#cardCacheMs = options.cardCacheMs ?? 30_000;
    this.#now = options.clock ?? Date.now;
    this.#digest = identityDigest(this.identity.signingKey.publicKey, this.identity.pqSigningKey?.publicKey);
    this.#suite = this.identity.pqSigningKey ? Suite.XWING_ED25519_MLDSA65 : Suite.XWING_ED25519;
    if (!Number.isInteger(this.#skew) || this.#skew < 0) throw new ConfigError("skewMs must be >= 0");
  }

  /** Makes an engine (selects the crypto backend on first use). */
  static async create(options: EngineOptions): Promise<SporeEngine> {
    return new SporeEngine(options, await provider());
  }

  /** The suite this agent seals with. */
  get suite(): string {
    return SUITE_NAMES[this.#suite];
  }

  /** This agent's signed card (made once, and again after a KEM key rotation). */
  async card(): Promise<Uint8Array> {
    this.#card ??= await createCard(this.id, this.identity, { issuedAt: this.#now() });
    return this.#card;
  }

  /** Publishes this agent's card to the directory. */
  async publishCard(): Promise<void> {
    await this.#directory.publish(await this.card());
  }

  /**
   * Rotates this agent's KEM key (the old one stays accepted for
   * `overlapMs`) and publishes the new card.
   */
  async rotateKemKey(overlapMs?: number): Promise<void> {
    await this.identity.rotateKemKey({ overlapMs, now: this.#now() });
    this.stats.rotations++;
    this.#card = undefined;
    await this.publishCard();
  }

  /** Forgets cached cards, so the next use looks them up again. */
  forgetCards(): void {
    this.#cards.clear();
  }

  // ---- trust ----------------------------------------------------------------

  #trusted(id: string): Promise<{ card: AgentCard; digest: Uint8Array }> {
    const cached = this.#cards.get(id);
    if (cached && cached.until > this.#now()) return Promise.resolve(cached);
    // One lookup per id at a time: concurrent spores from one sender share it.
    let pending = this.#lookups.get(id);
    if (!pending) {
      pending = this.#lookup(id).finally(() => this.#lookups.delete(id));
      this.#lookups.set(id, pending);
    }
    return pending;
  }

  async #lookup(id: string): Promise<{ card: AgentCard; digest: Uint8Array }> {
    const now = this.#now();
    const card = await this.#directory.lookup(id);
    if (!card) throw new UnknownSenderError(`no agent card for ${id}`);
    if (card.id !== id) throw new UnknownSenderError(`directory returned the card of ${card.id} for ${id}`);
    await this.#trust.check(card, now);
    const entry = {
      card,
      digest: identityDigest(card.ed25519, card.mlDsa65),
      until: now + this.#cardCacheMs,
    };
    this.#cards.set(id, entry);
    return entry;
  }

  async #sign(suite: SuiteId, message: Uint8Array): Promise<Uint8Array[]> {
    if (suite === Suite.XWING_ED25519_MLDSA65) {
      return await Promise.all([this.identity.sign(message), this.identity.signPostQuantum(message)]);
    }
    return [await this.identity.sign(message)];
  }

  async #verify(card: AgentCard, suite: SuiteId, message: Uint8Array, sigs: Uint8Array[], what: string) {
    const checks = [this.#crypto.ed25519.verify(card.ed25519, sigs[0]!, message)];
    if (suite === Suite.XWING_ED25519_MLDSA65) {
      if (!card.mlDsa65) throw new SignatureError(`${card.id} has no ML-DSA-65 key for a hybrid ${what}`);
      checks.push(this.#crypto.mlDsa65.verify(card.mlDsa65, sigs[1]!, message));
    }
    if (!(await Promise.all(checks)).every(Boolean)) throw new SignatureError(`${what} signature invalid`);
  }

  /** Refuses a downgrade: a sender whose card has an ML-DSA-65 key must sign with it. */
  #checkSuite(card: AgentCard, suite: SuiteId): void {
    if (card.mlDsa65 && suite === Suite.XWING_ED25519) {
      throw new UnsupportedError(`${card.id} has an ML-DSA-65 key: Ed25519-only spores from it are refused`);
    }
  }

  // ---- sending ----------------------------------------------------------------

  #header(kind: KindId, suite: SuiteId, to: string, msg: OutgoingSpore, now: number): Header {
    checkId(to, "recipient");
    checkId(msg.type, "message type");
    const ttl = msg.ttlMs ?? DEFAULT_TTL;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > this.#maxTtl) {
      throw new ConfigError(`ttlMs must be an integer in 1..${this.#maxTtl}`);
    }
    const priority = msg.priority ?? 4;
    if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
      throw new ConfigError("priority must be 0..9");
    }
    return {
      version: 1,
      suite,
      kind,
      id: msg.id === undefined ? newSporeId() : checkId(msg.id, "spore id"),
      type: msg.type,
      from: this.id,
      to,
      createdAt: now,
      expiresAt: now + ttl,
      priority,
    };
  }

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
    if (mode === "classic") return await this.#sealClassic(to, msg);
    if (mode === "auto") {
      const session = await this.#store.current(to);
      if (session && session.retireAt === undefined) return await this.#sealSession(session, msg);
    }
    return await this.#sealOneShot(to, msg);
  }

  async #sealSession(state: SessionState, msg: OutgoingSpore): Promise<SealedSpore> {
    const now = this.#now();
    const payload = encodePayload(msg.content ?? null, this.limits.maxPayloadBytes);
    const header = this.#header(Kind.SESSION, state.suite, state.peer, msg, now);
    const { epoch, counter, key, rotated } = await this.#store.allocateSend(state, this.policy, now);
    if (rotated) this.stats.rotations++;
    header.sessionId = hex.decode(state.id);
    header.epoch = epoch;
    header.counter = counter;
    const headerBytes = encodeHeader(header);
    const ciphertext = await this.#crypto.aead.seal(
      aeadKey(key),
      counterNonce(epoch, counter),
      payload,
      headerBytes,
    );
    return sealed(
      header,
      encodeEnvelope(headerBytes, [ciphertext]),
      epoch >= this.policy.rehandshakeAfterEpochs,
    );
  }

  async #sealOneShot(to: string, msg: OutgoingSpore): Promise<SealedSpore> {
    const now = this.#now();
    const payload = encodePayload(msg.content ?? null, this.limits.maxPayloadBytes);
    const { card, digest } = await this.#trusted(to);
    const kem = currentKemKey(card, now, this.#skew);
    const header = this.#header(Kind.SEALED, this.#suite, to, msg, now);
    header.keyId = kem.keyId;
    const headerBytes = encodeHeader(header);
    const { ciphertext: enc, sharedSecret } = await this.#crypto.xwing.encapsulate(kem.publicKey);
    const key = AeadKey.from(sealedKey(sharedSecret, this.#suite, this.#digest, digest, headerBytes));
    sharedSecret.fill(0);
    const ciphertext = await this.#crypto.aead.seal(key, ZERO_NONCE, payload, headerBytes);
    key.destroy();
    const sigs = await this.#sign(this.#suite, concat(LABELS.sealedSig, headerBytes, enc, ciphertext));
    return sealed(header, encodeEnvelope(headerBytes, [enc, ciphertext, ...sigs]));
  }

  async #sealClassic(to: string, msg: OutgoingSpore): Promise<SealedSpore> {
    if (!this.#allowClassic) {
      throw new ConfigError("the classic NaCl suite is disabled (allowClassic: false)");
    }
    const now = this.#now();
    const payload = encodePayload(msg.content ?? null, this.limits.maxPayloadBytes);
    const { card } = await this.#trusted(to);
    const header = this.#header(Kind.SEALED, Suite.NACL_ED25519, to, msg, now);
    const headerBytes = encodeHeader(header);
    const nonce = randomBytes(24);
    const box = naclBox.seal(payload, nonce, card.box, this.identity.boxKey.privateKey);
    const sig = await this.identity.sign(concat(LABELS.classicSig, headerBytes, nonce, box));
    return sealed(header, encodeEnvelope(headerBytes, [nonce, box, sig]));
  }

  // ---- broadcast (sender keys) ----------------------------------------------------

  /** Receives broadcasts of `channel` from now on. */
  join(channel: string): void {
    this.#channels.add(checkId(channel, "channel"));
  }

  /** Stops accepting broadcasts of `channel`. */
  leave(channel: string): void {
    this.#channels.delete(channel);
  }

  /** Channels joined. */
  get channels(): string[] {
    return [...this.#channels];
  }

  #senderKey(channel: string): SenderKey {
    const keys = this.#ownSenderKeys.get(channel) ?? [];
    let current = keys[keys.length - 1];
    if (!current || current.counter >= this.policy.rotateAfterMessages) {
      current = {
        channel,
        keyId: randomBytes(8),
        key: randomBytes(32),
        generation: (current?.generation ?? -1) + 1,
        counter: 0,
      };
      keys.push(current);
      while (keys.length > SENDER_KEYS_KEPT) keys.shift()!.key.fill(0);
      this.#ownSenderKeys.set(channel, keys);
    }
    return current;
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
  async sealBroadcastSpore(channel: string, msg: OutgoingSpore): Promise<SealedSpore> {
    checkId(channel, "channel");
    const now = this.#now();
    const payload = encodePayload(msg.content ?? null, this.limits.maxPayloadBytes);
    const sk = this.#senderKey(channel);
    const header = this.#header(Kind.BROADCAST, this.#suite, channel, msg, now);
    header.keyId = sk.keyId;
    header.epoch = sk.generation;
    header.counter = sk.counter++;
    const headerBytes = encodeHeader(header);
    const ciphertext = await this.#crypto.aead.seal(
      aeadKey(sk.key),
      counterNonce(header.epoch, header.counter),
      payload,
      headerBytes,
    );
    const sigs = await this.#sign(this.#suite, concat(LABELS.broadcastSig, headerBytes, ciphertext));
    return sealed(header, encodeEnvelope(headerBytes, [ciphertext, ...sigs]));
  }

  /**
   * The sender key `keyId` (hex) of `channel`, for `requester` (an
   * authenticated, trusted agent that asked over a direct spore), or
   * `undefined` if this agent has no such key. Send it back with `seal`.
   */
  grantSenderKey(channel: string, keyId: string, requester: string): SenderKeyGrant | undefined {
    checkId(requester, "requester");
    const key = this.#ownSenderKeys.get(channel)?.find((k) => hex.encode(k.keyId) === keyId);
    if (!key) return undefined;
    return { channel, keyId: key.keyId, key: key.key, generation: key.generation };
  }

  /** Installs a sender key that `from` sent in a direct spore (already authenticated). */
  installSenderKey(from: string, grant: unknown): void {
    const g = grant as Partial<SenderKeyGrant> | null;
    if (
      typeof g !== "object" || g === null || typeof g.channel !== "string" ||
      !(g.keyId instanceof Uint8Array) ||
      g.keyId.length !== 8 || !(g.key instanceof Uint8Array) || g.key.length !== 32 ||
      !Number.isInteger(g.generation) || g.generation! < 0
    ) {
      throw new ProtocolError("malformed sender key grant");
    }
    checkId(g.channel, "channel");
    if (this.#peerSenderKeys.size >= PEER_SENDER_KEYS_MAX) {
      this.#peerSenderKeys.delete(this.#peerSenderKeys.keys().next().value!);
    }
    this.#peerSenderKeys.set(`${from}/${hex.encode(g.keyId)}`, {
      channel: g.channel,
      keyId: g.keyId.slice(),
      key: g.key.slice(),
      generation: g.generation!,
      counter: 0,
    });
  }

  async #openBroadcast(env: Envelope, _now: number, earlier: Promise<void>): Promise<OpenResult> {
    const h = env.header;
    const { card } = await this.#trusted(h.from);
    this.#checkSuite(card, h.suite);
    const [ciphertext, ...sigs] = env.sections as [Uint8Array, ...Uint8Array[]];
    await this.#verify(
      card,
      h.suite,
      concat(LABELS.broadcastSig, env.headerBytes, ciphertext),
      sigs,
      "broadcast",
    );
    const keyId = hex.encode(h.keyId!);
    const sk = this.#peerSenderKeys.get(`${h.from}/${keyId}`);
    if (!sk) return { status: "pending-key", from: h.from, channel: h.to, keyId };
    if (sk.channel !== h.to || sk.generation !== h.epoch) {
      throw new SessionError("sender key of another channel");
    }
    const payload = await this.#crypto.aead.open(
      aeadKey(sk.key),
      counterNonce(h.epoch!, h.counter!),
      ciphertext,
      env.headerBytes,
    );
    await earlier;
    const verdict = await this.#store.acceptCounter(`b/${h.from}/${keyId}`, h.epoch!, h.counter!);
    if (verdict === "stale") throw new ReplayError("broadcast older than the replay window");
    return this.#result(h, payload, "broadcast", verdict === "duplicate");
  }

  // ---- handshake, initiator -------------------------------------------------------

  /**
   * Starts a handshake with `peer` and returns the hello to send. While one
   * is in progress the same hello (and promise) is returned, so a retry
   * resends identical bytes. `force` starts a fresh one (re-key).
   */
  async hello(
    peer: string,
    options: { force?: boolean } = {},
  ): Promise<{ bytes: Uint8Array; established: Promise<SessionInfo> }> {
    checkId(peer, "peer");
    if (peer === this.id) throw new ConfigError("an agent cannot open a session with itself");
    const now = this.#now();
    const existing = this.#pendingByPeer.get(peer);
    if (existing && existing.expiresAt > now && !options.force) {
      return { bytes: existing.hello, established: existing.promise };
    }
    if (existing) this.#dropPending(existing, new SessionError(`handshake with ${peer} superseded`));
    const { card } = await this.#trusted(peer);
    const kem = currentKemKey(card, now, this.#skew);
    const suite = this.#suite;
    const header = this.#header(Kind.HELLO, suite, peer, { type: "spores.hello", ttlMs: HELLO_TTL }, now);
    header.keyId = kem.keyId;
    const headerBytes = encodeHeader(header);
    const [ephemeral, enc] = await Promise.all([
      this.#crypto.xwing.generateKeyPair(),
      this.#crypto.xwing.encapsulate(kem.publicKey),
    ]);
    const sigs = await this.#sign(
      suite,
      concat(LABELS.helloSig, headerBytes, ephemeral.publicKey, enc.ciphertext),
    );
    const bytes = encodeEnvelope(headerBytes, [ephemeral.publicKey, enc.ciphertext, ...sigs]);
    let resolve!: (s: SessionInfo) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<SessionInfo>((res, rej) => {
      resolve = res;
      reject = rej;
    });
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

  #dropPending(p: Pending, reason?: unknown): void {
    this.#pending.delete(p.ref);
    if (this.#pendingByPeer.get(p.peer) === p) this.#pendingByPeer.delete(p.peer);
    p.ss1.fill(0);
    if (reason !== undefined) p.reject(reason);
  }

  /** Whether a session to `peer` is established. */
  async hasSession(peer: string): Promise<boolean> {
    const s = await this.#store.current(peer);
    return s !== undefined && s.retireAt === undefined;
  }

  /** Whether the session to `peer` has run long enough that a fresh handshake is due. */
  async rekeyDue(peer: string): Promise<boolean> {
    const s = await this.#store.current(peer);
    return s !== undefined && rehandshakeDue(s, this.policy);
  }

  async #install(state: SessionState): Promise<void> {
    const now = this.#now();
    const old = await this.#store.current(state.peer);
    if (old && old.id !== state.id) {
      old.retireAt = now + this.policy.graceMs;
      await this.#store.put(old);
    }
    await this.#store.put(state);
    await this.#store.setCurrent(state.peer, state.id);
  }

  // ---- receiving --------------------------------------------------------------

  /**
   * Opens a spore. Returns a message, a duplicate (ack and drop it), a
   * handshake step (send its reply), or an ignored hello; throws a
   * `ProtocolError` or `SecurityError` subclass for anything refused.
   */
  async open(bytes: Uint8Array): Promise<OpenResult> {
    const env = parseEnvelope(bytes, this.limits);
    const h = env.header;
    const now = this.#now();
    if (h.suite === Suite.NACL_ED25519 && !this.#allowClassic) {
      throw new UnsupportedError("the classic NaCl suite is disabled here");
    }
    if (h.kind === Kind.BROADCAST ? !this.#channels.has(h.to) : h.to !== this.id) {
      throw new RecipientError(`spore for ${h.to} reached ${this.id}`);
    }
    if (h.expiresAt - h.createdAt > this.#maxTtl) throw new ProtocolError("spore lifetime over the maximum");
    if (h.createdAt > now + this.#skew) {
      throw new ClockSkewError("spore created in the future beyond the skew");
    }
    if (now > h.expiresAt) throw new ExpiredError("spore expired");
    switch (h.kind) {
      case Kind.SESSION:
        // Replay windows move in the order spores arrived, not the order their decryption finished.
        return await this.#arrivals.run(
          hex.encode(h.sessionId!),
          (earlier) => this.#openSession(env, now, earlier),
        );
      case Kind.SEALED:
        return h.suite === Suite.NACL_ED25519
          ? await this.#openClassic(env, now)
          : await this.#openSealed(env, now);
      case Kind.HELLO:
        return await this.#openHello(env, now);
      case Kind.WELCOME:
        return await this.#openWelcome(env, now);
      case Kind.BROADCAST:
        return await this.#arrivals.run(
          `b/${h.from}/${hex.encode(h.keyId!)}`,
          (earlier) => this.#openBroadcast(env, now, earlier),
        );
    }
  }

  /** A message, or a duplicate that still carries the message (for a handler that did not finish). */
  #result(
    h: Header,
    payload: Uint8Array,
    kind: OpenedSpore["kind"],
    duplicate: boolean,
    sessionId?: string,
  ): OpenResult {
    const spore: OpenedSpore = {
      id: h.id,
      type: h.type,
      from: h.from,
      to: h.to,
      content: decodePayload(payload, this.limits.maxPayloadBytes),
      createdAt: h.createdAt,
      expiresAt: h.expiresAt,
      priority: h.priority,
      suite: SUITE_NAMES[h.suite],
      kind,
    };
    if (sessionId !== undefined) spore.sessionId = sessionId;
    return duplicate ? { status: "duplicate", id: h.id, from: h.from, spore } : { status: "message", spore };
  }

  async #once(h: Header, prefix: string): Promise<boolean> {
    const verdict = await this.#store.acceptOnce(`${prefix}:${h.from}:${h.id}`, h.expiresAt + this.#skew);
    if (verdict === "stale") throw new ReplayError("replay cache is full: refusing rather than forgetting");
    return verdict === "duplicate";
  }

  /** The trusted sender of a spore sealed to one of this agent's KEM keys, and that key. */
  async #senderAndKey(h: Header, now: number) {
    const { card, digest } = await this.#trusted(h.from);
    this.#checkSuite(card, h.suite);
    const kem = this.identity.findKemKey(h.keyId!, now);
    if (!kem) throw new StaleKeyError("spore sealed to a KEM key that is rotated out or unknown");
    return { card, digest, kem };
  }

  async #openSealed(env: Envelope, now: number): Promise<OpenResult> {
    const h = env.header;
    const { card, digest, kem } = await this.#senderAndKey(h, now);
    const [enc, ciphertext, ...sigs] = env.sections as [Uint8Array, Uint8Array, ...Uint8Array[]];
    await this.#verify(
      card,
      h.suite,
      concat(LABELS.sealedSig, env.headerBytes, enc, ciphertext),
      sigs,
      "sealed spore",
    );
    const shared = await this.identity.decapsulate(enc, kem);
    const key = AeadKey.from(sealedKey(shared, h.suite, digest, this.#digest, env.headerBytes));
    shared.fill(0);
    let payload: Uint8Array;
    try {
      payload = await this.#crypto.aead.open(key, ZERO_NONCE, ciphertext, env.headerBytes);
    } finally {
      key.destroy();
    }
    return this.#result(h, payload, "sealed", await this.#once(h, "s"));
  }

  async #openClassic(env: Envelope, _now: number): Promise<OpenResult> {
    const h = env.header;
    const { card } = await this.#trusted(h.from);
    const [nonce, box, sig] = env.sections as [Uint8Array, Uint8Array, Uint8Array];
    await this.#verify(card, Suite.NACL_ED25519, concat(LABELS.classicSig, env.headerBytes, nonce, box), [
      sig,
    ], "classic spore");
    const payload = naclBox.open(box, nonce, card.box, this.identity.boxKey.privateKey);
    return this.#result(h, payload, "sealed", await this.#once(h, "c"));
  }

  async #openSession(env: Envelope, now: number, earlier: Promise<void>): Promise<OpenResult> {
    const h = env.header;
    const id = hex.encode(h.sessionId!);
    const state = await this.#store.get(id);
    if (!state || state.peer !== h.from) {
      throw new SessionError("spore for a session this agent does not have");
    }
    if (state.retireAt !== undefined && now > state.retireAt) {
      throw new SessionError("spore for a closed session");
    }
    if (h.suite !== state.suite) throw new SessionError("spore suite differs from its session's");
    const { card } = await this.#trusted(h.from);
    if (card.fingerprint !== state.peerFingerprint) {
      throw new KeyChangedError(`identity of ${h.from} changed since the session began`);
    }
    const { key, commit } = receiveKey(state, h.epoch!, this.policy, now);
    const payload = await this.#crypto.aead.open(
      aeadKey(key),
      counterNonce(h.epoch!, h.counter!),
      env.sections[0]!,
      env.headerBytes,
    );
    // Write the session back only when it changed: a new epoch, or the peer's first proof of its keys.
    if (commit() || !state.confirmed) {
      state.confirmed = true;
      await this.#store.put(state);
    }
    await earlier;
    const verdict = await this.#store.acceptCounter(id, h.epoch!, h.counter!);
    if (verdict === "stale") throw new ReplayError("spore older than the replay window");
    return this.#result(h, payload, "session", verdict === "duplicate", id);
  }

  async #openHello(env: Envelope, now: number): Promise<OpenResult> {
    const h = env.header;
    const { card, digest, kem } = await this.#senderAndKey(h, now);
    const [epk, ct1, ...sigs] = env.sections as [Uint8Array, Uint8Array, ...Uint8Array[]];
    await this.#verify(card, h.suite, concat(LABELS.helloSig, env.headerBytes, epk, ct1), sigs, "hello");
    const ref = hex.encode(sha256Sync(env.bytes).subarray(0, 16));
    this.#pruneWelcomes(now);
    const answered = this.#welcomes.get(ref);
    if (answered) return { status: "duplicate", id: h.id, from: h.from, reply: answered.bytes };
    if (await this.#once(h, "h")) throw new ReplayError("hello replayed after its answer was forgotten");

    const mine = this.#pendingByPeer.get(h.from);
    if (mine && mine.expiresAt > now && this.id < h.from) {
      return { status: "ignored", from: h.from, reason: "simultaneous open: our hello wins" };
    }

    const ss1 = await this.identity.decapsulate(ct1, kem);
    const { ciphertext: ct2, sharedSecret: ss2 } = await this.#crypto.xwing.encapsulate(epk);
    const th = transcriptHash(env.bytes, ct2);
    const secrets = sessionSecrets(ss1, ss2, th, digest, this.#digest);
    ss1.fill(0);
    ss2.fill(0);
    // The welcome, and the session, use the responder's own suite: it signs with the keys it has.
    const suite = this.#suite;
    const header = this.#header(
      Kind.WELCOME,
      suite,
      h.from,
      { type: "spores.welcome", ttlMs: HELLO_TTL },
      now,
    );
    header.helloRef = hex.decode(ref);
    header.sessionId = secrets.sessionId;
    const headerBytes = encodeHeader(header);
    const confirm = confirmation(secrets.confirmKey, th, headerBytes);
    const sigs2 = await this.#sign(suite, concat(LABELS.welcomeSig, th, headerBytes, ct2, confirm));
    const welcome = encodeEnvelope(headerBytes, [ct2, confirm, ...sigs2]);
    const state = createSession(secrets, "responder", h.from, card.fingerprint, suite, now);
    secrets.confirmKey.fill(0);
    await this.#install(state);
    this.#welcomes.set(ref, { bytes: welcome, until: h.expiresAt + this.#skew, peer: h.from });
    const info: SessionInfo = { id: state.id, peer: h.from, role: "responder" };
    if (mine) {
      // We lost a simultaneous open: our own connect() completes with this session.
      this.#dropPending(mine);
      mine.resolve(info);
    }
    return { status: "handshake", peer: h.from, sessionId: state.id, reply: welcome };
  }

  #pruneWelcomes(now: number): void {
    for (const [ref, w] of this.#welcomes) if (w.until < now) this.#welcomes.delete(ref);
    for (const p of this.#pending.values()) {
      if (p.expiresAt + this.#skew < now) {
        this.#dropPending(p, new SessionError(`handshake with ${p.peer} timed out`));
      }
    }
  }

  async #openWelcome(env: Envelope, now: number): Promise<OpenResult> {
    const h = env.header;
    const pending = this.#pending.get(hex.encode(h.helloRef!));
    const sessionId = hex.encode(h.sessionId!);
    if (!pending) {
      const existing = await this.#store.get(sessionId);
      if (existing && existing.peer === h.from && existing.role === "initiator") {
        return { status: "duplicate", id: h.id, from: h.from };
      }
      throw new SessionError("welcome for no handshake in progress");
    }
    if (pending.peer !== h.from) throw new SessionError("welcome from an agent the hello was not sent to");
    const { card, digest } = await this.#trusted(h.from);
    this.#checkSuite(card, h.suite);
    const [ct2, confirm, ...sigs] = env.sections as [Uint8Array, Uint8Array, ...Uint8Array[]];
    const th = transcriptHash(pending.hello, ct2);
    await this.#verify(
      card,
      h.suite,
      concat(LABELS.welcomeSig, th, env.headerBytes, ct2, confirm),
      sigs,
      "welcome",
    );
    const ss2 = await this.#crypto.xwing.decapsulate(pending.ephemeral, ct2);
    const secrets = sessionSecrets(pending.ss1, ss2, th, this.#digest, digest);
    ss2.fill(0);
    const expected = confirmation(secrets.confirmKey, th, env.headerBytes);
    secrets.confirmKey.fill(0);
    if (!equalBytes(secrets.sessionId, h.sessionId!) || !equalBytes(expected, confirm)) {
      throw new DecryptError();
    }
    const state = createSession(secrets, "initiator", h.from, card.fingerprint, h.suite, now);
    await this.#install(state);
    this.#dropPending(pending);
    const info: SessionInfo = { id: state.id, peer: h.from, role: "initiator" };
    pending.resolve(info);
    return { status: "handshake", peer: h.from, sessionId: state.id };
  }
}
