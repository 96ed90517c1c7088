/**
 * Broadcast spores (kind 5): one AEAD under the sender's key for the
 * channel, and the sender's signature. This module holds the channels this
 * agent joined, its own sender keys and those its peers granted it.
 *
 * @module
 */
import { concat, hex, randomBytes } from "../../crypto/bytes.ts";
import { ProtocolError, ReplayError, SessionError } from "../../crypto/errors.ts";
import { encodeEnvelope, encodeHeader, type Envelope, Kind } from "../envelope.ts";
import { checkId } from "../limits.ts";
import { encodePayload } from "../payload.ts";
import { counterNonce, LABELS } from "../schedule.ts";
import type { OpenResult, OutgoingSpore } from "../types.ts";
import { aeadKey, type EngineContext, sealed, type SealedSpore } from "./context.ts";

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

/** This agent's channels and sender keys. */
export class Broadcasts {
  readonly #ctx: EngineContext;
  readonly #channels = new Set<string>();
  readonly #own = new Map<string, SenderKey[]>();
  readonly #peers = new Map<string, SenderKey>();

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

  #senderKey(channel: string): SenderKey {
    const keys = this.#own.get(channel) ?? [];
    let current = keys[keys.length - 1];
    if (!current || current.counter >= this.#ctx.policy.rotateAfterMessages) {
      current = {
        channel,
        keyId: randomBytes(8),
        key: randomBytes(32),
        generation: (current?.generation ?? -1) + 1,
        counter: 0,
      };
      keys.push(current);
      while (keys.length > SENDER_KEYS_KEPT) keys.shift()!.key.fill(0);
      this.#own.set(channel, keys);
    }
    return current;
  }

  /** Seals `msg` for every member of `channel`. */
  async seal(channel: string, msg: OutgoingSpore): Promise<SealedSpore> {
    const ctx = this.#ctx;
    checkId(channel, "channel");
    const now = ctx.now();
    const payload = encodePayload(msg.content ?? null, ctx.limits.maxPayloadBytes);
    const sk = this.#senderKey(channel);
    const header = ctx.header(Kind.BROADCAST, ctx.suite, channel, msg, now);
    header.keyId = sk.keyId;
    header.epoch = sk.generation;
    header.counter = sk.counter++;
    const headerBytes = encodeHeader(header);
    const ciphertext = await ctx.crypto.aead.seal(
      aeadKey(sk.key),
      counterNonce(header.epoch, header.counter),
      payload,
      headerBytes,
    );
    const sigs = await ctx.sign(ctx.suite, concat(LABELS.broadcastSig, headerBytes, ciphertext));
    return sealed(header, encodeEnvelope(headerBytes, [ciphertext, ...sigs]));
  }

  /** This agent's sender key `keyId` (hex) of `channel` for `requester`, if it has one. */
  grant(channel: string, keyId: string, requester: string): SenderKeyGrant | undefined {
    checkId(requester, "requester");
    const key = this.#own.get(channel)?.find((k) => hex.encode(k.keyId) === keyId);
    if (!key) return undefined;
    return { channel, keyId: key.keyId, key: key.key, generation: key.generation };
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
    if (this.#peers.size >= PEER_SENDER_KEYS_MAX) {
      this.#peers.delete(this.#peers.keys().next().value!);
    }
    this.#peers.set(`${from}/${hex.encode(g.keyId)}`, {
      channel: g.channel,
      keyId: g.keyId.slice(),
      key: g.key.slice(),
      generation: g.generation!,
      counter: 0,
    });
  }

  /** Opens a broadcast whose envelope passed the common checks. */
  async open(env: Envelope, _now: number): Promise<OpenResult> {
    const ctx = this.#ctx;
    const h = env.header;
    const { card } = await ctx.trusted(h.from);
    ctx.checkSuite(card, h.suite);
    const [ciphertext, ...sigs] = env.sections as [Uint8Array, ...Uint8Array[]];
    await ctx.verify(
      card,
      h.suite,
      concat(LABELS.broadcastSig, env.headerBytes, ciphertext),
      sigs,
      "broadcast",
    );
    const keyId = hex.encode(h.keyId!);
    const sk = this.#peers.get(`${h.from}/${keyId}`);
    if (!sk) return { status: "pending-key", from: h.from, channel: h.to, keyId };
    if (sk.channel !== h.to || sk.generation !== h.epoch) {
      throw new SessionError("sender key of another channel");
    }
    const payload = await ctx.crypto.aead.open(
      aeadKey(sk.key),
      counterNonce(h.epoch!, h.counter!),
      ciphertext,
      env.headerBytes,
    );
    const verdict = await ctx.store.acceptCounter(`b/${h.from}/${keyId}`, h.epoch!, h.counter!);
    if (verdict === "stale") throw new ReplayError("broadcast older than the replay window");
    return ctx.result(h, payload, "broadcast", verdict === "duplicate");
  }
}
