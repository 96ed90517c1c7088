/**
 * Session state and its epoch ratchet, and the `SessionStore` that holds it.
 *
 * Each direction has a chain key; epoch e's AEAD key is
 * `HKDF-Expand(chain_e, "epoch key")` and `chain_{e+1} = HKDF-Expand(chain_e, "epoch next")`,
 * after which `chain_e` is erased. A sender moves to the next epoch after N
 * messages or T ms; a receiver keeps a superseded epoch's key for a grace
 * window (so reordered spores still open) and then erases it.
 *
 * @module
 */
import { hex } from "../crypto/bytes.ts";
import { ConfigError, ReplayError, SessionError } from "../crypto/errors.ts";
import type { SuiteId } from "./envelope.ts";
import { type ReplayVerdict, ReplayWindow, SeenCache } from "./replay.ts";
import { epochKey, nextChain, type SessionSecrets } from "./schedule.ts";
import type { StateSealer } from "./state_seal.ts";

/** When keys rotate and how long old ones live. */
export interface SessionPolicy {
  /** Move to the next epoch after this many messages. Default 10,000. */
  rotateAfterMessages: number;
  /** Move to the next epoch after this many ms. Default 1 hour. */
  rotateAfterMs: number;
  /**
   * Keep a superseded epoch (or session) open for receiving at least this
   * long. Default 60 s. It stays open longer when spores sealed before the
   * switch can still be valid: until the longest lifetime seen on the session,
   * plus the clock skew tolerated, has passed (see `receiveGrace`).
   */
  graceMs: number;
  /** Run a fresh handshake after this many epochs. Default 24. */
  rehandshakeAfterEpochs: number;
  /** Most epochs a receiver ratchets forward for one spore. Default 8. */
  maxEpochSkip: number;
  /** Replay window per (session, epoch), a multiple of 32. Default 4,096. */
  replayWindow: number;
}

/** The defaults: 10,000 messages / 1 h per epoch, 60 s grace, re-handshake every 24 epochs. */
export const DEFAULT_SESSION_POLICY: Readonly<SessionPolicy> = Object.freeze({
  rotateAfterMessages: 10_000,
  rotateAfterMs: 3_600_000,
  graceMs: 60_000,
  rehandshakeAfterEpochs: 24,
  maxEpochSkip: 8,
  replayWindow: 4096,
});

/** Merges and validates a session policy. */
export function resolveSessionPolicy(policy: Partial<SessionPolicy> | undefined): SessionPolicy {
  const p = { ...DEFAULT_SESSION_POLICY, ...policy };
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isInteger(v) || v < (k === "graceMs" ? 0 : 1)) {
      throw new ConfigError(`session policy ${k} is invalid`);
    }
  }
  if (p.replayWindow % 32 !== 0) throw new ConfigError("replayWindow must be a multiple of 32");
  return p;
}

/** A receive epoch's key, and when it is erased. */
export interface EpochKey {
  /** The epoch. */
  epoch: number;
  /** Its AEAD key. */
  key: Uint8Array;
  /** Erase after (Unix ms); absent while it is the newest. */
  retireAt?: number;
}

/** Everything a session is. Plain data, so that a shared store can hold it. */
export interface SessionState {
  /** Session id, hex. */
  id: string;
  /** The peer's agent id. */
  peer: string;
  /** The peer's identity fingerprint at handshake time. */
  peerFingerprint: string;
  /** Which side this agent played. */
  role: "initiator" | "responder";
  /** The suite of the handshake, used for data spores. */
  suite: SuiteId;
  /** Creation time (Unix ms). */
  createdAt: number;
  /** Whether the peer has proved it holds the keys (welcome or first data spore). */
  confirmed: boolean;
  /** Sending side. */
  send: { epoch: number; counter: number; startedAt: number; chain: Uint8Array; key: Uint8Array };
  /** Receiving side. */
  recv: {
    epochs: EpochKey[];
    chain: Uint8Array;
    nextEpoch: number;
    /** The longest lifetime (expiry − creation, ms) of a spore that opened on this session. */
    lifetime?: number;
  };
  /** Set when a newer session replaced this one: receive only, until then. */
  retireAt?: number;
}

/** Builds a fresh session from handshake secrets. */
export function createSession(
  secrets: SessionSecrets,
  role: "initiator" | "responder",
  peer: string,
  peerFingerprint: string,
  suite: SuiteId,
  now: number,
): SessionState {
  const sendChain = role === "initiator" ? secrets.chainI2R : secrets.chainR2I;
  const recvChain = role === "initiator" ? secrets.chainR2I : secrets.chainI2R;
  return {
    id: hex.encode(secrets.sessionId),
    peer,
    peerFingerprint,
    role,
    suite,
    createdAt: now,
    confirmed: role === "initiator",
    send: { epoch: 0, counter: 0, startedAt: now, chain: nextChain(sendChain), key: epochKey(sendChain) },
    recv: { epochs: [{ epoch: 0, key: epochKey(recvChain) }], chain: nextChain(recvChain), nextEpoch: 1 },
  };
}

/**
 * How long a superseded epoch or session of `state` keeps its receive keys:
 * the policy's grace, or longer if a spore sealed before the switch could
 * still be valid then. A spore sealed before the switch was created at most
 * `skewMs` later by this agent's clock and lives at most the longest lifetime
 * seen on the session, so its keys go only once every such spore expired.
 *
 * @example
 * ```ts
 * import { DEFAULT_SESSION_POLICY, receiveGrace, type SessionState } from "@spores/spores";
 * const state = { recv: { lifetime: 300_000 } } as SessionState;
 * console.assert(receiveGrace(state, DEFAULT_SESSION_POLICY, 60_000) === 360_000);
 * ```
 */
export function receiveGrace(state: SessionState, policy: SessionPolicy, skewMs: number): number {
  return Math.max(policy.graceMs, (state.recv.lifetime ?? 0) + skewMs);
}

/** The next (epoch, counter, key) to send with, rotating the epoch when due. Mutates `state`. */
export function nextSend(
  state: SessionState,
  policy: SessionPolicy,
  now: number,
): { epoch: number; counter: number; key: Uint8Array; rotated: boolean } {
  const s = state.send;
  let rotated = false;
  if (s.counter >= policy.rotateAfterMessages || now - s.startedAt >= policy.rotateAfterMs) {
    s.key.fill(0);
    s.key = epochKey(s.chain);
    const next = nextChain(s.chain);
    s.chain.fill(0);
    s.chain = next;
    s.epoch += 1;
    s.counter = 0;
    s.startedAt = now;
    rotated = true;
  }
  // A copy: the epoch key is erased at the next rotation, while seals that took a counter of this epoch may
  // still be on their way to the cipher (they await the store first).
  return { epoch: s.epoch, counter: s.counter++, key: s.key.slice(), rotated };
}

/** Whether this session has run enough epochs that a fresh handshake is due. */
export function rehandshakeDue(state: SessionState, policy: SessionPolicy): boolean {
  return state.send.epoch >= policy.rehandshakeAfterEpochs;
}

/** Erases receive epochs whose grace window has passed. Mutates `state`. */
export function pruneEpochs(state: SessionState, now: number): void {
  const keep: EpochKey[] = [];
  for (const e of state.recv.epochs) {
    if (e.retireAt !== undefined && e.retireAt < now) e.key.fill(0);
    else keep.push(e);
  }
  state.recv.epochs = keep;
}

/** A forward derivation of receive epochs, shared by every spore of those epochs that opens meanwhile. */
interface Derivation {
  derived: EpochKey[];
  chain: Uint8Array;
}

/** Pending derivations per receive side, by epoch: one per epoch however many spores open concurrently. */
const derivations = new WeakMap<SessionState["recv"], Map<number, Derivation>>();

function derivation(r: SessionState["recv"], epoch: number): Derivation {
  let pending = derivations.get(r);
  if (pending === undefined) {
    pending = new Map();
    derivations.set(r, pending);
  }
  let d = pending.get(epoch);
  if (d === undefined) {
    // Derivations for epochs that were committed meanwhile, or that no spore authenticated, go; at most
    // `maxEpochSkip` are held, since only epochs within it are derived.
    for (const [e, old] of pending) {
      if (e < r.nextEpoch) {
        pending.delete(e);
        forget(old, r);
      }
    }
    const derived: EpochKey[] = [];
    let chain = r.chain;
    for (let e = r.nextEpoch; e <= epoch; e++) {
      derived.push({ epoch: e, key: epochKey(chain) });
      chain = nextChain(chain);
    }
    d = { derived, chain };
    pending.set(epoch, d);
  }
  return d;
}

/** Erases a derivation's keys and chain, except what the session now holds. */
function forget(d: Derivation, r: SessionState["recv"]): void {
  if (d.chain !== r.chain) d.chain.fill(0);
  for (const e of d.derived) if (!r.epochs.includes(e)) e.key.fill(0);
}

/**
 * The receive key for `epoch`, with a `commit` to call once a spore under it
 * authenticated (ratcheting forward is only kept then; it says whether the state changed). A `ReplayError` for
 * an epoch whose key is erased; a `SessionError` for one too far ahead.
 *
 * Spores of a new epoch that open concurrently share one derivation, and
 * each epoch is added once whichever of them commits first.
 */
export function receiveKey(
  state: SessionState,
  epoch: number,
  policy: SessionPolicy,
  now: number,
  graceMs: number = policy.graceMs,
): { key: Uint8Array; commit: () => boolean } {
  pruneEpochs(state, now);
  const r = state.recv;
  const held = r.epochs.find((e) => e.epoch === epoch);
  if (held) return { key: held.key, commit: () => false };
  if (epoch < r.nextEpoch) throw new ReplayError(`epoch ${epoch} of this session is closed`);
  if (epoch - r.nextEpoch >= policy.maxEpochSkip) {
    throw new SessionError(`epoch ${epoch} is more than ${policy.maxEpochSkip} ahead`);
  }
  // Derive forward tentatively; keep it only if the spore authenticates.
  const d = derivation(r, epoch);
  return {
    key: d.derived[d.derived.length - 1]!.key,
    commit: () => {
      // Another spore of this epoch, or of a later one, committed first: the epoch is held already.
      if (epoch < r.nextEpoch) return false;
      const fresh = d.derived.filter((e) => e.epoch >= r.nextEpoch);
      for (const e of d.derived) if (e.epoch < r.nextEpoch) e.key.fill(0);
      for (const e of r.epochs) e.retireAt ??= now + graceMs;
      for (const e of fresh.slice(0, -1)) e.retireAt = now + graceMs;
      r.chain.fill(0);
      r.chain = d.chain;
      r.nextEpoch = epoch + 1;
      r.epochs.push(...fresh);
      const pending = derivations.get(r);
      if (pending) {
        for (const [e, other] of pending) {
          if (e <= epoch) {
            pending.delete(e);
            if (other !== d) forget(other, r);
          }
        }
      }
      return true;
    },
  };
}

/**
 * Keeps the outcome of concurrent work in the order it began, per key. Work
 * that began earlier is awaited before a step that must follow it (a replay
 * window update, a publish); everything before that step runs concurrently.
 *
 * @example
 * ```ts
 * import { InOrder } from "@spores/spores";
 * const order = new InOrder();
 * const done: number[] = [];
 * const slow = order.enter("peer");
 * const fast = order.enter("peer");
 * const second = fast.earlier.then(() => done.push(2));
 * done.push(1);
 * slow.leave();
 * fast.leave();
 * await second;
 * console.assert(done.join() === "1,2");
 * ```
 */
export class InOrder {
  readonly #tails = new Map<string, Promise<void>>();

  /** Keys with work in progress. */
  get size(): number {
    return this.#tails.size;
  }

  /**
   * Takes a place behind the work already entered under `key`. `earlier`
   * settles once every earlier entrant has left; `leave` must be called
   * exactly once (in a `finally`).
   */
  enter(key: string): { earlier: Promise<void>; leave: () => void } {
    const earlier = this.#tails.get(key) ?? DONE;
    let leave!: () => void;
    const left = new Promise<void>((resolve) => leave = resolve);
    const tail: Promise<void> = earlier === DONE ? left : Promise.all([earlier, left]).then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    if (earlier === DONE) {
      left.then(() => {
        if (this.#tails.get(key) === tail) this.#tails.delete(key);
      });
    }
    this.#tails.set(key, tail);
    return { earlier, leave };
  }

  /** Runs `work` in place: it gets `earlier` to await before its ordered step, and leaves when it settles. */
  async run<T>(key: string, work: (earlier: Promise<void>) => Promise<T>): Promise<T> {
    const { earlier, leave } = this.enter(key);
    try {
      return await work(earlier);
    } finally {
      leave();
    }
  }
}

const DONE: Promise<void> = Promise.resolve();

/**
 * Where sessions and replay state live. The memory implementation serves one
 * process; a shared one (Redis) lets several processes of one agent share it.
 * `acceptCounter` and `acceptOnce` must be atomic.
 *
 * @example
 * ```ts
 * import { MemorySessionStore } from "@spores/spores";
 * const store = new MemorySessionStore();
 * console.assert(await store.acceptOnce("alice:1", Date.now() + 1000) === "fresh");
 * ```
 */
export interface SessionStore {
  /**
   * Receives the agent's {@linkcode StateSealer}; the engine calls it once,
   * before any other method. A store that keeps state outside this process
   * must seal every session (and every key) with it before writing, and
   * open (authenticate) it when reading.
   */
  attach?(sealer: StateSealer): void;
  /**
   * True for a store whose replay memory does not survive a restart (the
   * memory store): the engine then refuses one-shot spores and hellos
   * created before it started, which it could not tell from replays.
   */
  readonly volatile?: boolean;
  /** The session `id`. */
  get(id: string): Promise<SessionState | undefined>;
  /** Stores (or updates) a session. */
  put(state: SessionState): Promise<void>;
  /** Removes a session and its replay windows. */
  delete(id: string): Promise<void>;
  /** The session used to send to `peer`. */
  current(peer: string): Promise<SessionState | undefined>;
  /** Makes `id` the session used to send to `peer`. */
  setCurrent(peer: string, id: string): Promise<void>;
  /**
   * Allocates the next (epoch, counter) to send on `state`, rotating the
   * epoch when due, and returns the epoch's key. Must be atomic across every
   * process sharing the store: a (key, nonce) pair is never used twice.
   */
  allocateSend(
    state: SessionState,
    policy: SessionPolicy,
    now: number,
  ): Promise<{ epoch: number; counter: number; key: Uint8Array; rotated: boolean }>;
  /** Records a received (session, epoch, counter) after authentication. */
  acceptCounter(id: string, epoch: number, counter: number): Promise<ReplayVerdict>;
  /**
   * Records a one-shot key (sealed spore, handshake) until `until` (Unix ms).
   * `origin` (the authenticated sender and the spore's creation time) lets a
   * store keep a per-sender quota: `"stale"` refuses a spore it can no
   * longer tell from a replay.
   */
  acceptOnce(
    key: string,
    until: number,
    origin?: { sender: string; createdAt: number },
  ): Promise<ReplayVerdict>;
  /**
   * Claims the handling of a message (key: sender and spore id) for
   * `leaseMs`: `"claimed"` if nobody handled it or a previous claim was
   * released or expired, `"busy"` if a live claim exists, `"done"` if it was
   * handled. Several processes of one agent use this to hand each message to
   * exactly one handler, and to hand it to another after a crash.
   */
  claimReceipt(key: string, leaseMs: number): Promise<ReceiptState>;
  /** Marks a claimed message handled, remembered until `until` (Unix ms). */
  completeReceipt(key: string, until: number): Promise<void>;
  /** Gives a claim up (the handler failed), so a redelivery can be handled. */
  releaseReceipt(key: string): Promise<void>;
}

/** What a delivery receipt says; see {@linkcode SessionStore.claimReceipt}. */
export type ReceiptState = "claimed" | "busy" | "done";

/** Epochs after which a receive window is dropped (beyond any grace window and forward skip). */
const STALE_EPOCHS = 64;

/** A `SessionStore` in this process's memory. */
export class MemorySessionStore implements SessionStore {
  /** Its replay memory ends with the process. */
  readonly volatile = true;
  readonly #sessions = new Map<string, SessionState>();
  readonly #current = new Map<string, string>();
  readonly #windows = new Map<string, ReplayWindow>();
  readonly #seen: SeenCache;
  readonly #windowSize: number;
  /** Receipts in the order they were last written: the oldest come first, so pruning stops at the first live one. */
  readonly #receipts = new Map<string, { state: "busy" | "done"; until: number }>();
  readonly #receiptLimit: number;

  /**
   * An empty store.
   *
   * @param options Replay window size, one-shot cache limit, and how many
   * handled-message receipts are kept at most (default 50,000; the oldest
   * go first once the limit is reached, so memory stays flat however long
   * the agent runs).
   */
  constructor(options: { replayWindow?: number; seenLimit?: number; receiptLimit?: number } = {}) {
    this.#windowSize = options.replayWindow ?? DEFAULT_SESSION_POLICY.replayWindow;
    this.#seen = new SeenCache(options.seenLimit);
    this.#receiptLimit = options.receiptLimit ?? 50_000;
    if (!Number.isInteger(this.#receiptLimit) || this.#receiptLimit < 1) {
      throw new ConfigError("receiptLimit must be a positive integer");
    }
  }

  /** Delivery receipts held (claims in progress and handled messages). */
  get receipts(): number {
    return this.#receipts.size;
  }

  /** The session `id`. */
  get(id: string): Promise<SessionState | undefined> {
    return Promise.resolve(this.#sessions.get(id));
  }
  /** Stores a session. */
  put(state: SessionState): Promise<void> {
    this.#sessions.set(state.id, state);
    return Promise.resolve();
  }
  /** Removes a session. */
  delete(id: string): Promise<void> {
    const s = this.#sessions.get(id);
    if (s) {
      s.send.key.fill(0);
      s.send.chain.fill(0);
      s.recv.chain.fill(0);
      for (const e of s.recv.epochs) e.key.fill(0);
    }
    this.#sessions.delete(id);
    for (const key of this.#windows.keys()) if (key.startsWith(`${id}/`)) this.#windows.delete(key);
    return Promise.resolve();
  }
  /** The session used to send to `peer`. */
  current(peer: string): Promise<SessionState | undefined> {
    const id = this.#current.get(peer);
    return Promise.resolve(id === undefined ? undefined : this.#sessions.get(id));
  }
  /** Sets the sending session for `peer`. */
  setCurrent(peer: string, id: string): Promise<void> {
    this.#current.set(peer, id);
    return Promise.resolve();
  }
  /** Allocates the next send position (the session object is this store's own). */
  allocateSend(
    state: SessionState,
    policy: SessionPolicy,
    now: number,
  ): Promise<{ epoch: number; counter: number; key: Uint8Array; rotated: boolean }> {
    return Promise.resolve(nextSend(state, policy, now));
  }
  /** Records a counter. */
  acceptCounter(id: string, epoch: number, counter: number): Promise<ReplayVerdict> {
    const key = `${id}/${epoch}`;
    let w = this.#windows.get(key);
    if (!w) {
      w = new ReplayWindow(this.#windowSize);
      this.#windows.set(key, w);
      // Windows of epochs this far back belong to erased keys: spores of those epochs are refused before
      // the window is consulted, so the windows can go.
      this.#windows.delete(`${id}/${epoch - STALE_EPOCHS}`);
    }
    return Promise.resolve(w.accept(counter));
  }
  /** Records a one-shot key, under its sender's quota. */
  acceptOnce(
    key: string,
    until: number,
    origin?: { sender: string; createdAt: number },
  ): Promise<ReplayVerdict> {
    return Promise.resolve(this.#seen.accept(key, until, Date.now(), origin));
  }
  /** Claims a message's handling. */
  claimReceipt(key: string, leaseMs: number): Promise<ReceiptState> {
    const now = Date.now();
    this.#pruneReceipts(now);
    const r = this.#receipts.get(key);
    if (r && r.until >= now) return Promise.resolve(r.state === "done" ? "done" : "busy");
    this.#receipts.delete(key);
    this.#receipts.set(key, { state: "busy", until: now + leaseMs });
    return Promise.resolve("claimed");
  }
  /** Marks a message handled. */
  completeReceipt(key: string, until: number): Promise<void> {
    this.#receipts.delete(key);
    this.#receipts.set(key, { state: "done", until });
    return Promise.resolve();
  }
  /** Releases a claim. */
  releaseReceipt(key: string): Promise<void> {
    if (this.#receipts.get(key)?.state === "busy") this.#receipts.delete(key);
    return Promise.resolve();
  }
  // Amortised O(1): walks from the oldest and stops at the first receipt that is live and within the limit.
  // A claim in progress is never dropped for the limit (there are at most as many as messages in flight).
  #pruneReceipts(now: number): void {
    let over = this.#receipts.size + 1 - this.#receiptLimit; // room for the claim about to be added
    for (const [k, r] of this.#receipts) {
      if (r.until < now || (over > 0 && r.state === "done")) {
        this.#receipts.delete(k);
        over--;
      } else if (r.state === "done" || over <= 0) {
        return;
      }
    }
  }
}
