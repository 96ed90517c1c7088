/**
 * What every spore kind shares: this agent's keys and settings, the trusted
 * cards of its peers, signing and verification in the spore's suite, header
 * construction and the shape of an opened message. Each kind's module
 * (`sealed`, `classic`, `session`, `handshake`, `broadcast`) seals and opens
 * its spores with one of these.
 *
 * @module
 */
import { AeadKey } from "../../crypto/aead.ts";
import { hex, randomBytes } from "../../crypto/bytes.ts";
import {
  ConfigError,
  ProtocolError,
  ReplayError,
  SignatureError,
  UnknownSenderError,
  UnsupportedError,
} from "../../crypto/errors.ts";
import { type Identity, identityDigest } from "../../crypto/identity.ts";
import type { CryptoProvider } from "../../crypto/provider.ts";
import type { AgentCard } from "../card.ts";
import { CardLedger, type Directory } from "../directory.ts";
import {
  describeHeader,
  type Header,
  type KindId,
  type SporeInfo,
  Suite,
  SUITE_NAMES,
  type SuiteId,
} from "../envelope.ts";
import { checkId, type Limits } from "../limits.ts";
import { decodePayload } from "../payload.ts";
import type { SessionPolicy, SessionStore } from "../session.ts";
import type { TrustPolicy } from "../trust.ts";
import type { OpenedSpore, OpenResult, OutgoingSpore } from "../types.ts";

/** A spore just sealed, with its public description. */
export interface SealedSpore {
  /** The spore. */
  bytes: Uint8Array;
  /** Its public header, as `inspect` would describe it. */
  info: SporeInfo;
  /** Whether the session it went on has run long enough that a fresh handshake is due. */
  rekeyDue: boolean;
}

/** A sealed spore's bytes with its description. */
export function sealed(header: Header, bytes: Uint8Array, rekeyDue = false): SealedSpore {
  return { bytes, info: describeHeader(header, bytes.length), rekeyDue };
}

/** A new spore id: 32 random hex digits. */
export function newSporeId(): string {
  return hex.encode(randomBytes(16));
}

/** Most retiring sessions kept per peer. */
const RETIRED_MAX = 4;
/** Closed session ids remembered (16 bytes each, as hex). */
const CLOSED_REMEMBERED = 65_536;
/** Most trusted cards cached (least recently looked up first out). */
const CARDS_CACHED = 10_000;
/** Most recently accepted one-shot spores whose keys are kept for cheap replay detection. */
const RECENT_MAX = 4096;

/** Default spore lifetime, ms. */
export const DEFAULT_TTL = 300_000;

const aeadKeys = new WeakMap<Uint8Array, AeadKey>();
/** The AEAD key object for raw key bytes, made once per byte array. */
export function aeadKey(bytes: Uint8Array): AeadKey {
  let k = aeadKeys.get(bytes);
  if (!k) {
    k = AeadKey.from(bytes);
    aeadKeys.set(bytes, k);
  }
  return k;
}

/** A trusted card and its identity digest. */
export interface TrustedCard {
  /** The card. */
  card: AgentCard;
  /** `identityDigest` of its identity keys. */
  digest: Uint8Array;
}

/** Settings of a {@linkcode EngineContext}. */
export interface ContextOptions {
  id: string;
  identity: Identity;
  crypto: CryptoProvider;
  directory: Directory;
  trust: TrustPolicy;
  store: SessionStore;
  limits: Limits;
  policy: SessionPolicy;
  skewMs: number;
  maxTtlMs: number;
  allowClassic: boolean;
  cardCacheMs: number;
  maxOneShotTtlMs: number;
  replayMemorySince?: number;
  clock: () => number;
}

/** One agent's keys, settings and trusted cards, shared by every spore kind. */
export class EngineContext {
  readonly id: string;
  readonly identity: Identity;
  readonly crypto: CryptoProvider;
  readonly directory: Directory;
  readonly trust: TrustPolicy;
  readonly store: SessionStore;
  readonly limits: Limits;
  readonly policy: SessionPolicy;
  readonly skew: number;
  readonly maxTtl: number;
  readonly allowClassic: boolean;
  readonly cardCacheMs: number;
  readonly now: () => number;
  /** This agent's identity digest. */
  readonly digest: Uint8Array;
  /** The suite this agent seals with. */
  readonly suite: SuiteId;
  /** Key rotations made: sending epochs after the first, and KEM key rotations. */
  readonly stats: { rotations: number } = { rotations: 0 };
  /** When this engine started (Unix ms). */
  readonly startedAt: number;
  /** One-shot spores and hellos created before this are refused (replay memory incomplete). */
  readonly replayMemorySince: number;
  /** Longest lifetime of a one-shot spore, ms. */
  readonly maxOneShotTtl: number;
  readonly #cards = new Map<string, TrustedCard & { until: number }>();
  readonly #lookups = new Map<string, Promise<TrustedCard>>();
  /** The card trusted for each peer: a directory serving an older or discontinuous card does not replace it. */
  readonly #known = new CardLedger(10_000);

  constructor(o: ContextOptions) {
    this.id = o.id;
    this.identity = o.identity;
    this.crypto = o.crypto;
    this.directory = o.directory;
    this.trust = o.trust;
    this.store = o.store;
    this.limits = o.limits;
    this.policy = o.policy;
    this.skew = o.skewMs;
    this.maxTtl = o.maxTtlMs;
    this.allowClassic = o.allowClassic;
    this.cardCacheMs = o.cardCacheMs;
    this.now = o.clock;
    this.startedAt = o.clock();
    this.replayMemorySince = o.replayMemorySince ?? (o.store.volatile ? this.startedAt : -Infinity);
    this.maxOneShotTtl = o.maxOneShotTtlMs;
    this.digest = identityDigest(o.identity.signingKey.publicKey, o.identity.pqSigningKey?.publicKey);
    this.suite = o.identity.pqSigningKey ? Suite.XWING_ED25519_MLDSA65 : Suite.XWING_ED25519;
  }

  /** Forgets cached cards. */
  forgetCards(): void {
    this.#cards.clear();
  }

  /** The trusted card of `id` (cached for `cardCacheMs`; one lookup per id at a time). */
  trusted(id: string): Promise<TrustedCard> {
    const cached = this.#cards.get(id);
    if (cached && cached.until > this.now()) return Promise.resolve(cached);
    let pending = this.#lookups.get(id);
    if (!pending) {
      pending = this.#lookup(id).finally(() => this.#lookups.delete(id));
      this.#lookups.set(id, pending);
    }
    return pending;
  }

  async #lookup(id: string): Promise<TrustedCard> {
    const now = this.now();
    const served = await this.directory.lookup(id);
    if (served && served.id !== id) {
      throw new UnknownSenderError(`directory returned the card of ${served.id} for ${id}`);
    }
    const card = served ? this.#known.prefer(served, now)! : this.#known.get(id);
    if (!card) throw new UnknownSenderError(`no agent card for ${id}`);
    await this.trust.check(card, now);
    const entry = { card, digest: identityDigest(card.ed25519, card.mlDsa65), until: now + this.cardCacheMs };
    this.#cards.delete(id);
    this.#cards.set(id, entry);
    if (this.#cards.size > CARDS_CACHED) this.#cards.delete(this.#cards.keys().next().value!);
    return entry;
  }

  /** Signs `message` with the keys `suite` calls for. */
  async sign(suite: SuiteId, message: Uint8Array): Promise<Uint8Array[]> {
    if (suite === Suite.XWING_ED25519_MLDSA65) {
      return await Promise.all([this.identity.sign(message), this.identity.signPostQuantum(message)]);
    }
    return [await this.identity.sign(message)];
  }

  /** Verifies the signatures of `suite` over `message` with `card`'s keys; a `SignatureError` if any fails. */
  async verify(card: AgentCard, suite: SuiteId, message: Uint8Array, sigs: Uint8Array[], what: string) {
    if (suite === Suite.XWING_ED25519_MLDSA65 && !card.mlDsa65) {
      throw new SignatureError(`${card.id} has no ML-DSA-65 key for a hybrid ${what}`);
    }
    // Cheapest first: ML-DSA-65 is verified only once Ed25519 has passed.
    if (!(await this.crypto.ed25519.verify(card.ed25519, sigs[0]!, message))) {
      throw new SignatureError(`${what} signature invalid`);
    }
    if (
      suite === Suite.XWING_ED25519_MLDSA65 &&
      !(await this.crypto.mlDsa65.verify(card.mlDsa65!, sigs[1]!, message))
    ) {
      throw new SignatureError(`${what} signature invalid`);
    }
  }

  /**
   * Refuses a downgrade: a sender whose card has an ML-DSA-65 key must sign
   * with it, in every kind (the classic suite included).
   */
  checkSuite(card: AgentCard, suite: SuiteId): void {
    if (card.mlDsa65 && suite !== Suite.XWING_ED25519_MLDSA65) {
      throw new UnsupportedError(`${card.id} has an ML-DSA-65 key: Ed25519-only spores from it are refused`);
    }
  }

  /** A header for a spore of `kind` from this agent. */
  header(kind: KindId, suite: SuiteId, to: string, msg: OutgoingSpore, now: number): Header {
    checkId(to, "recipient");
    checkId(msg.type, "message type");
    const ttl = msg.ttlMs ?? DEFAULT_TTL;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > this.maxTtl) {
      throw new ConfigError(`ttlMs must be an integer in 1..${this.maxTtl}`);
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

  /** A message, or a duplicate that still carries the message (for a handler that did not finish). */
  result(
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

  /**
   * The cheap replay checks of a one-shot spore or hello, before any
   * signature or KEM work: its lifetime is within `maxLifetime`, and with a
   * volatile store (whose replay memory a restart erased) it was created
   * after this engine started. With `authenticateFirst`, a spore created
   * before is not refused here: the caller checks its signature, then refuses
   * it with a `BeforeMemoryError` (true is returned), so that its sender can
   * be asked for it again on good grounds.
   */
  checkOneShot(h: Header, maxLifetime: number, authenticateFirst = false): boolean {
    if (h.expiresAt - h.createdAt > maxLifetime) {
      throw new ProtocolError(`a one-shot spore or hello lives at most ${maxLifetime} ms`);
    }
    if (h.createdAt >= this.replayMemorySince) return false;
    if (authenticateFirst) return true;
    throw new ReplayError(
      "spore created before this agent's replay memory begins (a restart with a volatile store)",
    );
  }

  /** Records a one-shot spore (`prefix`: its kind) in the replay cache; whether it was seen before. */
  async once(h: Header, prefix: string): Promise<boolean> {
    const verdict = await this.store.acceptOnce(`${prefix}:${h.from}:${h.id}`, h.expiresAt + this.skew, {
      sender: h.from,
      createdAt: h.createdAt,
    });
    if (verdict === "stale") {
      throw new ReplayError("spore older than this sender's replay low-water mark");
    }
    return verdict === "duplicate";
  }

  /**
   * Sessions this engine closed (most recent `CLOSED_REMEMBERED`): a spore for one of them is refused as for a
   * closed session, while a spore for a session never seen here may be one this agent lost in a restart.
   */
  readonly closed = new Set<string>();

  /** Deletes session `id` and remembers that it was closed. */
  async closeSession(id: string): Promise<void> {
    await this.store.delete(id);
    this.closed.delete(id);
    this.closed.add(id);
    if (this.closed.size > CLOSED_REMEMBERED) this.closed.delete(this.closed.values().next().value!);
  }

  /** Retired sessions per peer, deleted once their grace window has passed (at most `RETIRED_MAX` kept). */
  readonly #retired = new Map<string, { id: string; until: number }[]>();

  /** Records that session `id` with `peer` retires at `until`; deletes the peer's sessions whose time has come. */
  async retire(peer: string, id: string, until: number): Promise<void> {
    const now = this.now();
    const list = (this.#retired.get(peer) ?? []).filter((r) => r.id !== id);
    this.#retired.delete(peer);
    list.push({ id, until });
    const keep: { id: string; until: number }[] = [];
    for (const r of list) {
      if (r.until < now) await this.closeSession(r.id);
      else keep.push(r);
    }
    while (keep.length > RETIRED_MAX) await this.closeSession(keep.shift()!.id);
    this.#retired.set(peer, keep);
    if (this.#retired.size > CARDS_CACHED) this.#retired.delete(this.#retired.keys().next().value!);
  }

  /**
   * One-shot spores accepted lately, by sender and id: the hash of their exact bytes and their AEAD key, so
   * that a byte-identical replay skips KEM and signatures.
   */
  readonly recent = new Map<string, { hash: Uint8Array; key: Uint8Array }>();
  /** Remembers the hash and AEAD key of an accepted one-shot spore. */
  remember(slot: string, hash: Uint8Array, key: Uint8Array): void {
    this.recent.get(slot)?.key.fill(0);
    this.recent.delete(slot);
    this.recent.set(slot, { hash, key });
    if (this.recent.size > RECENT_MAX) {
      const first = this.recent.keys().next().value!;
      this.recent.get(first)!.key.fill(0);
      this.recent.delete(first);
    }
  }
}
