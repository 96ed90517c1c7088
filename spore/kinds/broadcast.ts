/**
 * Broadcast spores (kind 5): one AEAD per message under a key from the
 * sender's chain for the channel, a commitment to that key, and the sender's
 * signature. This module holds the channels this agent joined, their
 * membership (explicit, deny by default), its own sender chains and those
 * its peers granted it.
 *
 * ```text
 * chain_0        = 32 random bytes, per (sender, channel, generation)
 * key_id         = SHA-256("spores/v1 sender key id" ‖ chain_0)[0..8]
 * k_i            = HKDF-Expand(chain_i, "spores/v1 broadcast key", 32)
 * chain_{i+1}    = HKDF-Expand(chain_i, "spores/v1 broadcast next", 32)
 * commit_i       = SHA-256("spores/v1 broadcast commit" ‖ k_i)
 * sections       = commit_i ‖ AEAD(k_i, u32 generation ‖ u64 i, payload, aad = H) ‖ sig(s)
 * sig            = Sign("spores/v1 broadcast sig" ‖ H ‖ commit_i ‖ ciphertext)
 * ```
 *
 * @module
 */
import { concat, equalBytes, hex, randomBytes, utf8 } from "../../crypto/bytes.ts";
import {
  ConfigError,
  DecryptError,
  ProtocolError,
  ReplayError,
  SessionError,
  TrustError,
} from "../../crypto/errors.ts";
import { sha256Sync } from "../../crypto/kdf.ts";
import { encodeEnvelope, encodeHeader, type Envelope, Kind } from "../envelope.ts";
import { checkId } from "../limits.ts";
import { outgoingPayload } from "../payload.ts";
import { counterNonce, LABELS } from "../schedule.ts";
import type { OpenResult, OutgoingSpore } from "../types.ts";
import { aeadKey, type EngineContext, sealed, type SealedSpore } from "./context.ts";
import { expand } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";

const KEY_ID_LABEL = utf8("spores/v1 sender key id");
const MSG_KEY_LABEL = utf8("spores/v1 broadcast key");
const NEXT_LABEL = utf8("spores/v1 broadcast next");
const COMMIT_LABEL = utf8("spores/v1 broadcast commit");

/** A sender key as it travels, inside a direct spore of type `spores.sender-key`. */
export interface SenderKeyGrant {
  /** The channel. */
  channel: string;
  /** 8-byte key id: `SHA-256("spores/v1 sender key id" ‖ key)[0..8]`. */
  keyId: Uint8Array;
  /** 32-byte chain key at message 0 of the generation. */
  key: Uint8Array;
  /** Key generation. */
  generation: number;
}

/** Who belongs to a channel, as this agent is told. */
export interface ChannelMembers {
  /** Agents that may receive this agent's sender key (and so read its broadcasts). */
  members: string[];
  /** Agents whose broadcasts this agent accepts; default the members. */
  posters?: string[];
}

interface OwnKey {
  channel: string;
  keyId: Uint8Array;
  chain0: Uint8Array;
  chain: Uint8Array;
  generation: number;
  counter: number;
  createdAt: number;
}

interface PeerKey {
  channel: string;
  generation: number;
  /** Chain at message `next`. */
  chain: Uint8Array;
  next: number;
  /** Message keys below `next` not yet used (reordering), and used ones kept for the grace window. */
  keys: Map<number, { key: Uint8Array; usedUntil?: number; hash?: Uint8Array }>;
}

/** Most sender keys a channel keeps (the current one and the recent ones still in flight). */
const SENDER_KEYS_KEPT = 4;
/** Most peer sender keys held, in total and per sender. */
const PEER_KEYS_MAX = 10_000;
const PEER_KEYS_PER_SENDER = 16;
/** Most message keys derived ahead of, or kept behind, a peer chain. */
const MAX_SKIP = 2048;

function keyIdOf(chain0: Uint8Array): Uint8Array {
  return sha256Sync(concat(KEY_ID_LABEL, chain0)).subarray(0, 8);
}
function step(chain: Uint8Array): { key: Uint8Array; next: Uint8Array } {
  return { key: expand(sha256, chain, MSG_KEY_LABEL, 32), next: expand(sha256, chain, NEXT_LABEL, 32) };
}
function commitOf(key: Uint8Array): Uint8Array {
  return sha256Sync(concat(COMMIT_LABEL, key));
}

/** This agent's channels, their membership, and sender keys. */
export class Broadcasts {
  readonly #ctx: EngineContext;
  readonly #channels = new Set<string>();
  readonly #members = new Map<string, { members: Set<string>; posters: Set<string> }>();
  readonly #own = new Map<string, OwnKey[]>();
  readonly #peers = new Map<string, PeerKey>();
  readonly #perSender = new Map<string, string[]>();

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /** Receives broadcasts of `channel` from now on. */
  join(channel: string): void {
    this.#channels.add(checkId(channel, "channel"));
  }

  /** Stops accepting broadcasts of `channel`. */
  leave(channel: string): void {
    this.#channels.delete(channel);
  }

  /** Whether `channel` is joined. */
  has(channel: string): boolean {
    return this.#channels.has(channel);
  }

  /** Channels joined. */
  get channels(): string[] {
    return [...this.#channels];
  }

  /**
   * Sets who belongs to `channel`. A change of members starts a new sender
   * key at this agent's next broadcast, so a removed member cannot read on.
   */
  setMembers(channel: string, policy: ChannelMembers): void {
    checkId(channel, "channel");
    const members = new Set(policy.members.map((m) => checkId(m, "member")));
    const posters = new Set((policy.posters ?? policy.members).map((m) => checkId(m, "poster")));
    const old = this.#members.get(channel);
    this.#members.set(channel, { members, posters });
    const changed = !old || old.members.size !== members.size ||
      [...old.members].some((m) => !members.has(m));
    if (changed) this.#retire(channel);
  }

  /** The membership of `channel`, if set. */
  members(channel: string): ChannelMembers | undefined {
    const m = this.#members.get(channel);
    return m && { members: [...m.members], posters: [...m.posters] };
  }

  /** Whether `agent` may receive this agent's sender key of `channel` (deny by default). */
  isMember(channel: string, agent: string): boolean {
    return this.#members.get(channel)?.members.has(agent) ?? false;
  }

  /** Whether this agent accepts broadcasts of `channel` from `agent` (deny by default). */
  mayPost(channel: string, agent: string): boolean {
    return this.#members.get(channel)?.posters.has(agent) ?? false;
  }

  /** Ends the current sender key of `channel`: the next broadcast starts a new generation. */
  #retire(channel: string): void {
    const current = this.#own.get(channel)?.at(-1);
    if (current) current.counter = Number.MAX_SAFE_INTEGER;
  }

  #senderKey(channel: string, now: number): OwnKey {
    const keys = this.#own.get(channel) ?? [];
    let current = keys[keys.length - 1];
    const policy = this.#ctx.policy;
    if (
      !current || current.counter >= policy.rotateAfterMessages ||
      now - current.createdAt >= policy.rotateAfterMs
    ) {
      const chain0 = randomBytes(32);
      current = {
        channel,
        keyId: keyIdOf(chain0),
        chain0,
        chain: chain0.slice(),
        generation: (current?.generation ?? -1) + 1,
        counter: 0,
        createdAt: now,
      };
      keys.push(current);
      while (keys.length > SENDER_KEYS_KEPT) {
        const gone = keys.shift()!;
        gone.chain0.fill(0);
        gone.chain.fill(0);
      }
      this.#own.set(channel, keys);
    }
    return current;
  }

  /** Seals `msg` for every member of `channel`. */
  async seal(channel: string, msg: OutgoingSpore): Promise<SealedSpore> {
    const ctx = this.#ctx;
    checkId(channel, "channel");
    if (!this.#members.has(channel)) {
      throw new ConfigError(`channel ${channel} has no members set: call setMembers (deny by default)`);
    }
    const now = ctx.now();
    const payload = outgoingPayload(msg, ctx.limits.maxPayloadBytes);
    const sk = this.#senderKey(channel, now);
    const header = ctx.header(Kind.BROADCAST, ctx.suite, channel, msg, now);
    header.keyId = sk.keyId;
    header.epoch = sk.generation;
    header.counter = sk.counter++;
    const { key, next } = step(sk.chain);
    sk.chain.fill(0);
    sk.chain = next;
    const headerBytes = encodeHeader(header);
    const commit = commitOf(key);
    const ciphertext = await ctx.crypto.aead.seal(
      aeadKey(key),
      counterNonce(header.epoch, header.counter),
      payload,
      headerBytes,
    );
    key.fill(0);
    const sigs = await ctx.sign(ctx.suite, concat(LABELS.broadcastSig, headerBytes, commit, ciphertext));
    return sealed(header, encodeEnvelope(headerBytes, [commit, ciphertext, ...sigs]));
  }

  /** This agent's sender key `keyId` (hex) of `channel` for `requester`, if it is a member and the key exists. */
  grant(channel: string, keyId: string, requester: string): SenderKeyGrant | undefined {
    checkId(requester, "requester");
    if (!this.isMember(channel, requester)) return undefined;
    const key = this.#own.get(channel)?.find((k) => hex.encode(k.keyId) === keyId);
    if (!key) return undefined;
    return { channel, keyId: key.keyId, key: key.chain0, generation: key.generation };
  }

  /** Installs a sender key that `from` sent in a direct spore (already authenticated). */
  install(from: string, grant: unknown): void {
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
    if (!equalBytes(g.keyId, keyIdOf(g.key))) {
      throw new ProtocolError("sender key id is not the hash of the key");
    }
    if (!this.mayPost(g.channel, from)) {
      throw new TrustError(`${from} may not post to ${g.channel}: its sender key is refused`);
    }
    const id = `${from}/${hex.encode(g.keyId)}`;
    if (this.#peers.has(id)) return;
    const mine = this.#perSender.get(from) ?? [];
    mine.push(id);
    while (mine.length > PEER_KEYS_PER_SENDER) this.#drop(mine.shift()!);
    this.#perSender.set(from, mine);
    this.#peers.set(id, {
      channel: g.channel,
      generation: g.generation!,
      chain: g.key.slice(),
      next: 0,
      keys: new Map(),
    });
    if (this.#peers.size > PEER_KEYS_MAX) this.#drop(this.#peers.keys().next().value!);
  }

  #drop(id: string): void {
    const k = this.#peers.get(id);
    if (!k) return;
    k.chain.fill(0);
    for (const e of k.keys.values()) e.key.fill(0);
    this.#peers.delete(id);
    // Its replay windows go with it (a spore under a dropped key asks for the key again).
    this.#ctx.store.delete(`b/${id}`).catch(() => {});
  }

  /** Whether a key from `from` with id `keyId` (hex) is held. */
  holds(from: string, keyId: string): boolean {
    return this.#peers.has(`${from}/${keyId}`);
  }

  /**
   * The message key `index` of a peer chain: ratcheting forward (erasing the
   * chain behind), or a key kept for a reordered or redelivered message.
   */
  #messageKey(pk: PeerKey, index: number, now: number): Uint8Array {
    for (const [i, e] of pk.keys) {
      if (e.usedUntil !== undefined && e.usedUntil < now) {
        e.key.fill(0);
        pk.keys.delete(i);
      }
    }
    const held = pk.keys.get(index);
    if (held) return held.key;
    if (index < pk.next) throw new ReplayError("broadcast key already erased (replay or too old)");
    if (index - pk.next > MAX_SKIP) throw new SessionError(`broadcast more than ${MAX_SKIP} messages ahead`);
    let chain = pk.chain;
    for (let i = pk.next; i <= index; i++) {
      const { key, next } = step(chain);
      if (chain !== pk.chain) chain.fill(0);
      chain = next;
      pk.keys.set(i, { key });
    }
    pk.chain.fill(0);
    pk.chain = chain;
    pk.next = index + 1;
    while (pk.keys.size > MAX_SKIP) {
      const [i, e] = pk.keys.entries().next().value!;
      e.key.fill(0);
      pk.keys.delete(i);
    }
    return pk.keys.get(index)!.key;
  }

  /** Opens a broadcast whose envelope passed the common checks. */
  async open(env: Envelope, now: number, earlier: Promise<void> = Promise.resolve()): Promise<OpenResult> {
    const ctx = this.#ctx;
    const h = env.header;
    // Cheap first: posting rights need no lookup and no signature.
    if (!this.mayPost(h.to, h.from)) throw new TrustError(`${h.from} may not post to ${h.to}`);
    const { card } = await ctx.trusted(h.from);
    ctx.checkSuite(card, h.suite);
    const [commit, ciphertext, ...sigs] = env.sections as [Uint8Array, Uint8Array, ...Uint8Array[]];
    const keyId = hex.encode(h.keyId!);
    const pk = this.#peers.get(`${h.from}/${keyId}`);
    // A byte-identical copy of a broadcast opened lately (a redelivery or a replay) skips the signature check.
    const opened = pk?.keys.get(h.counter!);
    if (pk && opened?.hash && pk.channel === h.to && pk.generation === h.epoch) {
      if (equalBytes(opened.hash, sha256Sync(env.bytes))) return await this.#decrypt(pk, env, now, earlier);
    }
    await ctx.verify(
      card,
      h.suite,
      concat(LABELS.broadcastSig, env.headerBytes, commit, ciphertext),
      sigs,
      "broadcast",
    );
    if (!pk) return { status: "pending-key", from: h.from, channel: h.to, keyId };
    if (pk.channel !== h.to || pk.generation !== h.epoch) {
      throw new SessionError("sender key of another channel");
    }
    return await this.#decrypt(pk, env, now, earlier);
  }

  /** Checks the key commitment, opens the AEAD and records the counter; the signature was checked. */
  async #decrypt(pk: PeerKey, env: Envelope, now: number, earlier: Promise<void>): Promise<OpenResult> {
    const ctx = this.#ctx;
    const h = env.header;
    const [commit, ciphertext] = env.sections as [Uint8Array, Uint8Array];
    const keyId = hex.encode(h.keyId!);
    const key = this.#messageKey(pk, h.counter!, now);
    // The signature covers the key commitment: every member derives the same key, or the spore is refused.
    if (!equalBytes(commitOf(key), commit)) throw new DecryptError();
    const payload = await ctx.crypto.aead.open(
      aeadKey(key),
      counterNonce(h.epoch!, h.counter!),
      ciphertext,
      env.headerBytes,
    );
    const entry = pk.keys.get(h.counter!)!;
    entry.usedUntil ??= now + ctx.policy.graceMs;
    entry.hash ??= sha256Sync(env.bytes);
    await earlier; // broadcasts that arrived before this one move the replay window first
    const verdict = await ctx.store.acceptCounter(`b/${h.from}/${keyId}`, h.epoch!, h.counter!);
    if (verdict === "stale") throw new ReplayError("broadcast older than the replay window");
    return ctx.result(h, payload, "broadcast", verdict === "duplicate");
  }
}
