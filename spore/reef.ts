/**
 * The Reef: Praval's call shape on top of secure agents. Every agent named in
 * a call gets its own identity and keys; every spore is sealed, signed and
 * checked exactly as with `Agent`. There is no plaintext mode.
 *
 * @module
 */
import { ConfigError } from "../crypto/errors.ts";
import type { Transport } from "../transports/transport.ts";
import { Agent, type AgentOptions, type Message } from "./agent.ts";
import { checkId } from "./limits.ts";
import type { PravalKeyPair, PravalPublicKeys, PravalPublicKeysInput } from "./praval/keys.ts";

/** Praval's spore types. */
export const SporeType = {
  KNOWLEDGE: "knowledge",
  REQUEST: "request",
  RESPONSE: "response",
  BROADCAST: "broadcast",
  NOTIFICATION: "notification",
} as const;
/** One of the {@linkcode SporeType} values. */
export type SporeTypeValue = typeof SporeType[keyof typeof SporeType];

const TYPES = new Set<string>(Object.values(SporeType));

/** A spore as a Reef subscriber receives it (Praval's fields, in camelCase). */
export interface Spore {
  /** Spore id. */
  id: string;
  /** Its type. */
  sporeType: SporeTypeValue;
  /** Sender (authenticated). */
  fromAgent: string;
  /** Recipient, or `null` for a broadcast. */
  toAgent: string | null;
  /** The knowledge carried. */
  knowledge: Record<string, unknown>;
  /** Creation time. */
  createdAt: Date;
  /** Expiry time. */
  expiresAt: Date;
  /** Priority: Praval's 1..10 scale. */
  priority: number;
  /** `"classic"` for a spore from a Praval agent (see `Message.security`). */
  security: "post-quantum" | "classic";
}

/** The Praval profile of a reef: its agents also talk to these Praval agents, in Praval's format. */
export interface ReefPravalOptions {
  /** Praval agents to trust, pinned by name. */
  peers?: Iterable<PravalPublicKeys | PravalPublicKeysInput>;
  /** Praval keys of the reef's own agents (matched by `agentName`); others get fresh keys. */
  keys?: Iterable<PravalKeyPair>;
  /** Nonces remembered per Praval peer. Default 100,000. */
  replayMemory?: number;
  /** AMQP exchange for `amqp://` URLs. Default `"praval.spores"`. */
  exchange?: string;
}

/** Options of `send` and `broadcast`. */
export interface ReefSendOptions {
  /** Default `"knowledge"` for `send`, `"broadcast"` for `broadcast`. */
  sporeType?: SporeTypeValue;
  /** Praval's 1 (lowest) .. 10 (highest). Default 5. */
  priority?: number;
  /** Lifetime in seconds. Default 300. */
  expiresInSeconds?: number;
}

/** Options of {@linkcode Reef.start}. */
export interface ReefOptions extends Omit<AgentOptions, "id" | "transport" | "identity" | "praval"> {
  /** A transport URL or instance shared by the Reef's agents. Default `memory://`. */
  transport?: string | Transport;
  /** The channel broadcasts go to. Default `"reef"`. */
  channel?: string;
  /**
   * Talk to Praval agents: `send` to a Praval peer uses Praval's format,
   * `broadcast` also reaches each Praval peer (sealed to each: Praval's own
   * broadcasts are plaintext), and subscribers receive Praval spores too.
   */
  praval?: ReefPravalOptions;
}

/** Praval's options as an agent message: 1..10 priority to 0..9, seconds to ms. */
function toMessage(
  knowledge: Record<string, unknown>,
  options: ReefSendOptions,
  defaultType: SporeTypeValue,
): { type: SporeTypeValue; content: Record<string, unknown>; priority: number; ttlMs: number } {
  const type = options.sporeType ?? defaultType;
  if (!TYPES.has(type)) throw new ConfigError(`unknown spore type ${type}`);
  const priority = options.priority ?? 5;
  if (!Number.isInteger(priority) || priority < 1 || priority > 10) {
    throw new ConfigError("priority must be an integer 1..10");
  }
  return {
    type,
    content: knowledge,
    priority: priority - 1,
    ttlMs: Math.round((options.expiresInSeconds ?? 300) * 1000),
  };
}

/**
 * A Praval-style reef of agents in one process.
 *
 * @example
 * ```ts
 * import { Reef } from "@spores/spores";
 * const reef = await Reef.start({ transport: "memory://doc-reef" });
 * const got = Promise.withResolvers<string>();
 * await reef.subscribe("analyst", (spore) => got.resolve(`${spore.fromAgent}: ${spore.knowledge.topic}`));
 * await reef.send("researcher", "analyst", { topic: "tides" }, { sporeType: "request", priority: 8 });
 * console.assert((await got.promise) === "researcher: tides");
 * await reef.close();
 * ```
 */
export class Reef {
  readonly #options: ReefOptions;
  readonly #agents = new Map<string, Promise<Agent>>();
  readonly #names = new Set<string>();
  readonly #started = new Map<string, Promise<Agent>>();
  readonly #channel: string;
  readonly #transport: Transport | undefined;
  readonly #url: string;
  readonly #pravalPeers: (PravalPublicKeys | PravalPublicKeysInput)[];
  readonly #pravalNames = new Set<string>();
  readonly #pravalKeys = new Map<string, PravalKeyPair>();

  private constructor(options: ReefOptions, transport: Transport | undefined, url: string) {
    this.#options = options;
    this.#transport = transport;
    this.#url = url;
    this.#channel = checkId(options.channel ?? "reef", "channel");
    this.#pravalPeers = [...options.praval?.peers ?? []];
    for (const p of this.#pravalPeers) {
      this.#pravalNames.add("agentName" in p ? p.agentName : p.agent_name);
    }
    for (const k of options.praval?.keys ?? []) this.#pravalKeys.set(k.agentName, k);
  }

  /** Starts a reef. Agents start on first use. */
  static start(options: ReefOptions = {}): Promise<Reef> {
    const t = options.transport ?? "memory://";
    return Promise.resolve(
      new Reef(options, typeof t === "string" ? undefined : t, typeof t === "string" ? t : ""),
    );
  }

  /** The agent behind `name` (started on first use). */
  agent(name: string): Promise<Agent> {
    checkId(name, "agent name");
    let a = this.#agents.get(name);
    if (!a) {
      const { praval, ...rest } = this.#options;
      const started = Agent.start({
        ...rest,
        id: name,
        transport: this.#transport ?? this.#url,
        praval: praval
          ? {
            keys: this.#pravalKeys.get(name),
            peers: this.#pravalPeers,
            replayMemory: praval.replayMemory,
            exchange: praval.exchange,
          }
          : undefined,
      });
      started.catch(() => {
        this.#agents.delete(name);
        this.#started.delete(name);
        this.#names.delete(name);
      });
      this.#started.set(name, started);
      this.#names.add(name);
      // The reef's channel is explicit like any other: its members are the reef's agents.
      a = started.then(async (agent) => {
        await this.#syncMembers();
        return agent;
      });
      this.#agents.set(name, a);
    }
    return a;
  }

  async #syncMembers(): Promise<void> {
    const members = { members: [...this.#names] };
    const agents = await Promise.allSettled([...this.#started.values()]);
    for (const r of agents) {
      if (r.status === "fulfilled") r.value.setMembers(this.#channel, members);
    }
  }

  /** Sends knowledge from one agent to another; resolves with the spore id. */
  async send(
    fromAgent: string,
    toAgent: string,
    knowledge: Record<string, unknown>,
    options: ReefSendOptions = {},
  ): Promise<string> {
    const message = toMessage(knowledge, options, SporeType.KNOWLEDGE);
    if (this.#pravalNames.has(toAgent)) return await (await this.agent(fromAgent)).send(toAgent, message);
    await this.agent(toAgent); // the recipient must exist to have a card
    return await (await this.agent(fromAgent)).send(toAgent, message);
  }

  /** Broadcasts knowledge from an agent to every subscriber of the reef. */
  async broadcast(
    fromAgent: string,
    knowledge: Record<string, unknown>,
    options: ReefSendOptions = {},
  ): Promise<string> {
    const message = toMessage(knowledge, options, SporeType.BROADCAST);
    const agent = await this.agent(fromAgent);
    const id = await agent.broadcast(this.#channel, message);
    for (const peer of this.#pravalNames) await agent.send(peer, message);
    return id;
  }

  /**
   * Pins a Praval agent for every agent of the reef (started or not); see
   * `Agent.declarePravalPeer`. Needs the `praval` option.
   */
  async declarePravalPeer(keys: PravalPublicKeys | PravalPublicKeysInput): Promise<void> {
    if (!this.#options.praval) throw new ConfigError("this reef has no Praval profile (ReefOptions.praval)");
    const started = await Promise.allSettled([...this.#agents.values()]);
    for (const a of started) if (a.status === "fulfilled") a.value.declarePravalPeer(keys);
    this.#pravalPeers.push(keys);
    this.#pravalNames.add("agentName" in keys ? keys.agentName : keys.agent_name);
  }

  /** The Praval public keys of the reef's agent `name`, to register with Praval agents. */
  async pravalPublicKeys(name: string): Promise<PravalPublicKeys> {
    const keys = (await this.agent(name)).pravalPublicKeys();
    if (!keys) throw new ConfigError("this reef has no Praval profile (ReefOptions.praval)");
    return keys;
  }

  /** Delivers every spore for `agentName` (direct and broadcast) to `handler`. */
  async subscribe(agentName: string, handler: (spore: Spore) => void | Promise<void>): Promise<void> {
    const agent = await this.agent(agentName);
    agent.onAny(
      (m: Message) =>
        handler({
          id: m.id,
          sporeType: m.type as SporeTypeValue,
          fromAgent: m.from,
          toAgent: m.kind === "broadcast" ? null : m.to,
          knowledge: (m.content ?? {}) as Record<string, unknown>,
          createdAt: new Date(m.createdAt),
          expiresAt: new Date(m.expiresAt),
          priority: m.priority + 1,
          security: m.security,
        }),
      { classic: this.#options.praval !== undefined },
    );
    await agent.join(this.#channel);
  }

  /** Closes every agent of the reef. */
  async close(): Promise<void> {
    const agents = await Promise.allSettled([...this.#agents.values()]);
    await Promise.all(agents.map((a) => a.status === "fulfilled" ? a.value.close() : undefined));
    this.#agents.clear();
    this.#started.clear();
    this.#names.clear();
  }

  /** `await using reef = await Reef.start()` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
