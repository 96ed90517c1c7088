/**
 * The Praval profile of an agent: its Praval keys, the Praval agents it
 * trusts (each pinned explicitly by name), and the mapping between a Spores
 * message and a Praval spore (priority 0..9 ↔ Praval's 1..10, ms ↔ seconds).
 * The agent runtime routes a send to a declared Praval peer through
 * {@linkcode PravalProfile.seal} and a received Praval spore through
 * {@linkcode PravalProfile.open}; the replay guard sits between opening and
 * the handler.
 *
 * @module
 */
import { ConfigError, KeyChangedError, TooLargeError } from "../../crypto/errors.ts";
import { PRAVAL_SPORE_TYPES } from "./codec.ts";
import { PravalReplayGuard } from "./guard.ts";
import type { PravalJson } from "./json.ts";
import { PravalKeyPair, PravalPublicKeys, type PravalPublicKeysInput } from "./keys.ts";
import { openPravalSpore, sealPravalSpore } from "./seal.ts";

/** The suite name of messages on the Praval profile. */
export const PRAVAL_SUITE = "praval-securespore-1.0";

/** AMQP exchange Praval uses (its routing keys are `agent.{to}.{type}` and `broadcast.{type}`). */
export const PRAVAL_AMQP_EXCHANGE = "praval.spores";

/** Options of the Praval profile of an agent (`AgentOptions.praval`). */
export interface PravalProfileOptions {
  /** This agent's Praval keys; their `agentName` must be the agent id. Default fresh keys. */
  keys?: PravalKeyPair;
  /** Praval agents to trust, pinned by name (more with `Agent.declarePravalPeer`). */
  peers?: Iterable<PravalPublicKeys | PravalPublicKeysInput>;
  /** Nonces remembered per Praval peer for replay defence. Default 100,000. */
  replayMemory?: number;
  /**
   * AMQP exchange used when the agent opens an `amqp://` URL itself and
   * `transportOptions.exchange` is not set. Default `"praval.spores"`.
   */
  exchange?: string;
}

/** A Praval spore opened for a handler. */
export interface PravalIncoming {
  /** Spore id (not signed by Praval). */
  id: string;
  /** Praval spore type (not signed by Praval). */
  type: string;
  /** Sender: its pinned keys verified the signature. */
  from: string;
  /** This agent. */
  to: string;
  /** The knowledge. */
  content: Record<string, PravalJson>;
  /** Stated creation time, Unix ms. */
  createdAt: number;
  /** Stated expiry, Unix ms (creation + skew when the spore has none). */
  expiresAt: number;
  /** Priority 0..9 (Praval's minus one, clamped). */
  priority: number;
  /** The signed nonce, unique per spore: the replay key. */
  nonce: Uint8Array;
  /** The signed trace context, if the spore carried one. */
  traceContext?: Record<string, string>;
}

/**
 * The Praval side of one agent.
 *
 * @example
 * ```ts
 * import { PravalKeyPair, PravalProfile } from "@spores/spores/spore";
 * const researcher = await PravalKeyPair.generate("researcher");
 * const profile = await PravalProfile.create("bridge", { peers: [researcher.publicKeys()] });
 * const { bytes } = await profile.seal("researcher", { type: "request", content: { q: "tide?" } });
 * console.assert(profile.isPeer("researcher") && bytes.length > 100);
 * ```
 */
export class PravalProfile {
  /** This agent's Praval keys. */
  readonly keys: PravalKeyPair;
  /** Replay memory of Praval peers' nonces. */
  readonly guard: PravalReplayGuard;
  /** AMQP exchange for agents that open their own `amqp://` transport. */
  readonly exchange: string;
  readonly #peers = new Map<string, PravalPublicKeys>();
  readonly #skewMs: number;
  readonly #maxKnowledge: number;

  private constructor(
    keys: PravalKeyPair,
    options: PravalProfileOptions,
    skewMs: number,
    maxPayload: number,
  ) {
    this.keys = keys;
    this.guard = new PravalReplayGuard({ perPeer: options.replayMemory });
    this.exchange = options.exchange ?? PRAVAL_AMQP_EXCHANGE;
    this.#skewMs = skewMs;
    this.#maxKnowledge = maxPayload + 16;
    for (const p of options.peers ?? []) this.declare(p);
  }

  /** Makes the profile of agent `id`. */
  static async create(
    id: string,
    options: PravalProfileOptions = {},
    limits: { skewMs?: number; maxPayloadBytes?: number } = {},
  ): Promise<PravalProfile> {
    const keys = options.keys ?? await PravalKeyPair.generate(id);
    if (keys.agentName !== id) {
      throw new ConfigError(
        `Praval keys are for ${keys.agentName}, not for agent ${id}: Praval routes by name`,
      );
    }
    return new PravalProfile(keys, options, limits.skewMs ?? 300_000, limits.maxPayloadBytes ?? 1 << 20);
  }

  /**
   * Pins a Praval agent's public keys under its name. Pinning other keys for
   * a name already pinned is a `KeyChangedError` unless `replace` is set.
   */
  declare(
    keys: PravalPublicKeys | PravalPublicKeysInput,
    options: { replace?: boolean } = {},
  ): PravalPublicKeys {
    const pinned = keys instanceof PravalPublicKeys ? keys : PravalPublicKeys.from(keys);
    if (pinned.agentName === this.keys.agentName) {
      throw new ConfigError("an agent cannot be its own Praval peer");
    }
    const known = this.#peers.get(pinned.agentName);
    if (known && !known.equals(pinned) && !options.replace) {
      throw new KeyChangedError(`${pinned.agentName} is already pinned with other keys`);
    }
    if (known && !known.equals(pinned)) this.guard.forget(pinned.agentName);
    this.#peers.set(pinned.agentName, pinned);
    return pinned;
  }

  /** Removes a Praval peer. */
  remove(name: string): void {
    this.#peers.delete(name);
    this.guard.forget(name);
  }

  /** Whether `name` is a declared Praval peer. */
  isPeer(name: string): boolean {
    return this.#peers.has(name);
  }

  /** The pinned keys of `name`, if declared. */
  peer(name: string): PravalPublicKeys | undefined {
    return this.#peers.get(name);
  }

  /** Seals a Spores message for the Praval peer `to`. */
  async seal(
    to: string,
    message: { type: string; content?: unknown; priority?: number; ttlMs?: number; id?: string },
  ): Promise<{ bytes: Uint8Array; id: string; expiresAt: number; priority: number }> {
    const peer = this.#peers.get(to);
    if (!peer) throw new ConfigError(`${to} is not a declared Praval peer`);
    if (!PRAVAL_SPORE_TYPES.includes(message.type)) {
      throw new ConfigError(`a Praval agent understands the types ${PRAVAL_SPORE_TYPES.join(", ")}`);
    }
    const priority = message.priority ?? 4;
    if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
      throw new ConfigError("priority must be an integer 0..9");
    }
    const ttlMs = message.ttlMs ?? 300_000;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new ConfigError("ttlMs must be positive");
    const createdAt = Date.now();
    const expiresAt = createdAt + ttlMs;
    const id = message.id ?? crypto.randomUUID();
    const bytes = await sealPravalSpore(this.keys, peer, {
      sporeType: message.type,
      knowledge: (message.content ?? {}) as Record<string, unknown>,
      priority: priority + 1,
      createdAt,
      expiresAt,
      id,
    });
    if (bytes.length > this.#maxKnowledge + 4096) {
      throw new TooLargeError(`Praval spore of ${bytes.length} bytes is over the payload limit`);
    }
    return { bytes, id, expiresAt, priority };
  }

  /** Opens a Praval spore for this agent (every refusal is a typed error). */
  async open(bytes: Uint8Array, now: number = Date.now()): Promise<PravalIncoming> {
    const { spore, knowledge } = await openPravalSpore(bytes, this.keys, {
      peers: this.#peers,
      skewMs: this.#skewMs,
      now,
      maxKnowledgeBytes: this.#maxKnowledge,
    });
    const createdAt = Math.round(spore.createdAt * 1000);
    return {
      id: spore.id,
      type: spore.sporeType,
      from: spore.fromAgent,
      to: this.keys.agentName,
      content: knowledge,
      createdAt,
      expiresAt: spore.expiresAt === null ? createdAt + this.#skewMs : Math.round(spore.expiresAt * 1000),
      priority: Math.min(9, Math.max(0, spore.priority - 1)),
      nonce: spore.nonce,
      ...(spore.traceContext ? { traceContext: spore.traceContext } : {}),
    };
  }
}
