/**
 * The agent runtime: an agent with an identity, on a transport, that sends
 * and receives spores and runs handlers with at-least-once delivery and
 * exactly-once handling of redeliveries.
 *
 * @module
 */
import { hex } from "../crypto/bytes.ts";
import {
  BeforeMemoryError,
  ConfigError,
  ProtocolError,
  ReplayError,
  SessionError,
  SporeError,
  type SporeErrorCode,
  TransportError,
  TrustError,
  UnknownSenderError,
  UnknownSessionError,
} from "../crypto/errors.ts";
import { Identity } from "../crypto/identity.ts";
import {
  checkMessageSize,
  type Delivery,
  type PurgeReport,
  type Transport,
  type TransportFactory,
} from "../transports/transport.ts";
import type { AnyTransportOptions, TransportOptionsFor } from "../transports/options.ts";
import { checkContent } from "./content.ts";
import { encodeContent } from "./payload.ts";
import type { Directory } from "./directory.ts";
import { type ChannelMembers, newSporeId, SporeEngine } from "./engine.ts";
import { inspect, type SporeInfo, Suite, SUITE_NAMES } from "./envelope.ts";
import { checkId, type Limits } from "./limits.ts";
import { type LogEvent, type Logger, type LogLevel, silentLogger } from "./logger.ts";
import { type AgentMetrics, emptyMetrics, observe, snapshot } from "./metrics.ts";
import { InOrder, MemorySessionStore, type SessionPolicy, type SessionStore } from "./session.ts";
import { unrefTimer } from "./timer.ts";
import { TofuTrust, type TrustPolicy } from "./trust.ts";
import { parseResendRequest, ResendRequests, SentMessages, type SentMessagesOptions } from "./resend.ts";
import type { OpenedSpore, SessionInfo } from "./types.ts";
import { decodePravalSpore, looksLikePravalSpore } from "./praval/codec.ts";
import type { PravalPublicKeys, PravalPublicKeysInput } from "./praval/keys.ts";
import type { Disconnected, Reconnected, TransportDeadLetter } from "../transports/events.ts";
import {
  PRAVAL_SUITE,
  type PravalIncoming,
  PravalProfile,
  type PravalProfileOptions,
} from "./praval/profile.ts";

/** A message as a handler receives it: authenticated, decrypted, fresh, not a replay. */
export interface Message<T = unknown> {
  /** Spore id. */
  id: string;
  /** Message type. */
  type: string;
  /** Sender (authenticated). */
  from: string;
  /** This agent, or the channel of a broadcast. */
  to: string;
  /** The content. */
  content: T;
  /** Creation time stated by the sender (Unix ms). */
  createdAt: number;
  /** Expiry (Unix ms). */
  expiresAt: number;
  /** Priority 0..9. */
  priority: number;
  /** Suite name. */
  suite: string;
  /** How it travelled (`"praval"`: a Praval `SecureSpore` from a declared Praval peer). */
  kind: "sealed" | "session" | "broadcast" | "praval";
  /**
   * `"classic"` for the NaCl suite and for Praval spores (no protection against a
   * quantum adversary; for Praval, header fields are not authenticated: see
   * docs/PROTOCOL.md, "Praval profile"), `"post-quantum"` otherwise.
   */
  security: "post-quantum" | "classic";
  /** For a broadcast: the channel. */
  channel?: string;
  /** For a Praval spore: its signed trace context, if it carried one. */
  traceContext?: Record<string, string>;
  /** How many times the transport delivered it before. */
  redeliveries: number;
  /**
   * Answers this message: sends `content` back to its sender, where the
   * `request()` that sent it resolves with it. Resolves with the reply's spore
   * id once the transport has it.
   */
  reply(content?: unknown, options?: { signal?: AbortSignal }): Promise<string>;
}

/** Options of {@linkcode Agent.on} and {@linkcode Agent.onAny}. */
export interface HandlerOptions {
  /**
   * Also receive classic-security messages from declared Praval peers
   * (`message.kind === "praval"`). Default `false`: such messages are not
   * given to this handler (they are counted as unhandled).
   */
  classic?: boolean;
  /** Replace the handler already registered for this type. Default `false`: registering twice is a `ConfigError`. */
  replace?: boolean;
}

/** Options of {@linkcode Agent.send} and {@linkcode Agent.broadcast}. */
export interface SendControl {
  /**
   * Gives up waiting when aborted (the promise rejects with the signal's
   * reason). A spore already handed to the transport may still arrive.
   */
  signal?: AbortSignal;
}

/** Options of {@linkcode Agent.request}. */
export interface RequestOptions extends SendControl {
  /** How long to wait for the reply, ms. Default 30,000. */
  timeoutMs?: number;
}

/** Options of {@linkcode Agent.destroy}. */
export interface DestroyOptions extends CloseOptions {
  /**
   * Further channels whose membership of this agent to remove (joined by an
   * earlier run, and not joined in this one). The channels joined in this
   * run are always included.
   */
  channels?: readonly string[];
}

/** Options of {@linkcode Agent.close}. */
export interface CloseOptions {
  /**
   * Longest wait for running handlers, ms. Past it the agent closes anyway;
   * the spores of handlers still running stay with the broker (they were not
   * acknowledged) and come back to the next start. Default: no limit.
   */
  timeoutMs?: number;
}

/** Options of {@linkcode Agent.join}. */
export interface JoinOptions extends Partial<ChannelMembers> {
  /** Also receive this agent's own broadcasts on the channel. Default `true`. */
  echo?: boolean;
}

/** A handler; the spore is acknowledged when it resolves, redelivered when it throws. */
export type Handler<T = unknown> = (message: Message<T>) => void | Promise<unknown>;

/** A map from message type to content type, for typed agents. */
export type MessageTypes = Record<string, unknown>;

/** What to send. */
export interface SendOptions<K extends string = string, T = unknown> {
  /** Message type (not starting with `spores.`, which is reserved). */
  type: K;
  /** The content: JSON-like values and `Uint8Array`. */
  content?: T;
  /** 0 (lowest) to 9 (highest). Default 4. */
  priority?: number;
  /** Time to live, ms. Default 300,000. */
  ttlMs?: number;
  /** Spore id (unique per sender); default 32 random hex digits. Lets a caller register a reply before sending. */
  id?: string;
}

/** Options of {@linkcode Agent.start}. */
export interface AgentOptions<Types extends MessageTypes = MessageTypes, Url extends string = string> {
  /** Agent id: 1..128 characters of `[A-Za-z0-9._:-]`. */
  id: string;
  /** A transport URL (`memory://`, `redis://...`) or a transport instance (not closed by the agent). */
  transport: Url | Transport;
  /**
   * Options of the transport a URL names, typed by its scheme
   * ({@linkcode TransportOptionsFor}): with the URL written out, a misspelt
   * option is a type error; at run time the transport refuses an unknown one
   * with a `ConfigError`. The options of each scheme are listed in
   * `docs/TRANSPORTS.md`.
   */
  transportOptions?: TransportOptionsFor<Url>;
  /** Keys; default a fresh, non-extractable identity. */
  identity?: Identity;
  /** Card directory; default the transport's. */
  directory?: Directory;
  /** Trust policy; default trust on first use. */
  trust?: TrustPolicy;
  /** Session store; default in memory. */
  store?: SessionStore;
  /** Structured events; default silent. */
  logger?: Logger;
  /** Handler failures before a spore is dead-lettered. Default 5. */
  maxRedeliveries?: number;
  /** How long a handler may hold a message before another process of this agent may take it over, ms. Default 60,000. */
  handlerLeaseMs?: number;
  /** How long `connect` waits for the handshake, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** Deliveries in flight at once. Default 64. */
  prefetch?: number;
  /**
   * A further check on who may receive this agent's sender key for a
   * channel, on top of the channel's membership (`setMembers`), which is
   * always required: a non-member never gets a key.
   */
  channelAccess?: (channel: string, agent: string) => boolean | Promise<boolean>;
  /** Format limits. */
  limits?: Partial<Limits>;
  /** Key rotation and replay settings. */
  session?: Partial<SessionPolicy>;
  /** Clock skew tolerated, ms. Default 300,000. */
  skewMs?: number;
  /** Allow the classic NaCl suite. Default `false`. */
  allowClassic?: boolean;
  /**
   * Unix ms from which the replay memory is complete (see
   * `EngineOptions.replayMemorySince`). Default: the start, with the memory
   * store, so one-shot spores sent while this agent was down are refused
   * (use a persistent store such as `RedisSessionStore` to accept them).
   */
  replayMemorySince?: number;
  /**
   * Talk to Praval agents in their own `SecureSpore` v1.0 format: this
   * agent's Praval keys and the Praval peers it trusts (pinned by name). With
   * an `amqp://` URL, the transport uses Praval's exchange `praval.spores`
   * unless `transportOptions.exchange` says otherwise.
   */
  praval?: PravalProfileOptions;
  /** Closes the agent when aborted. */
  signal?: AbortSignal;
  /**
   * What this agent remembers of the messages it sent, so that a recipient
   * that lost the state to open them (it restarted with a volatile store) can
   * ask for them again (docs/PROTOCOL.md, "Recovery"). Default 16 MiB and
   * 65,536 messages, each until its spore expires; `false` remembers nothing
   * (a recipient's request then ends in a `lost` event here).
   */
  resend?: SentMessagesOptions | false;
  /**
   * Message handlers by type, registered before the agent reads its queue, so
   * that no message waiting in the broker arrives before its handler.
   */
  handlers?: { [K in keyof Types & string]?: Handler<Types[K]> };
  /**
   * Where refusals go when no `logger` is given: `"warn-once"` (default) writes
   * one line to stderr per refusal code, the first time it happens; `"silent"`
   * writes nothing (refusals are still counted and sent as `rejected` events).
   */
  refusals?: "warn-once" | "silent";
}

/** Details of a `rejected` event: a spore refused before any handler saw it, and why. */
export interface Rejection {
  /** The refusal's code (`ERR_REPLAY`, `ERR_SIGNATURE`, ...); `ERR_INTERNAL` for an unexpected failure. */
  code: SporeErrorCode | "ERR_INTERNAL";
  /** The typed error. */
  error: unknown;
  /** Size of the refused bytes. */
  size: number;
  /** The sender its header claims (not authenticated), if it could be read. */
  claimedFrom?: string;
  /** The spore id its header claims (not authenticated), if it could be read. */
  claimedId?: string;
}

/** Details of a `connected` event: a session with a peer is ready. */
export interface Connected {
  /** The peer. */
  peer: string;
  /** The session id. */
  session: string;
  /** Which side started the handshake. */
  role: "initiator" | "responder";
}

/** Details of a `key-changed` event: a known agent's keys changed, and its spores are refused. */
export interface KeyChanged {
  /** The agent whose card changed (as claimed by the refused spore). */
  agent: string | undefined;
  /** The refusal. */
  error: unknown;
}

/**
 * The lifecycle events of an agent, for `addEventListener`. Message handlers
 * are registered with `on`; these are separate.
 */
export interface AgentEventMap {
  /** A spore was refused before any handler saw it. */
  rejected: CustomEvent<Rejection>;
  /**
   * A message was given up on: by the agent after `maxRedeliveries` (or with no handler that long;
   * `detail.source` is `"agent"` and `detail.message` the message), or by the transport itself after its
   * own delivery limit, without a handler having finished (`detail.source` is `"transport"`: the
   * queue, size and attempts; the message stays sealed in the broker's dead-letter store).
   */
  "dead-letter": CustomEvent<DeadLetter>;
  /** A session is ready (either side). */
  connected: CustomEvent<Connected>;
  /** A known agent's keys changed (trust on first use refuses it). */
  "key-changed": CustomEvent<KeyChanged>;
  /** Broadcasts given up on: their sender key did not arrive. */
  undeliverable: CustomEvent<Undeliverable>;
  /**
   * The transport lost its link to the broker (once per outage): sends fail or wait, and nothing is
   * received until `reconnected`. Messages stay with the broker. The in-process broker never raises it.
   */
  disconnected: CustomEvent<Disconnected>;
  /** The link lost earlier is back (after `disconnected`, once per outage), with how long it was down. */
  reconnected: CustomEvent<Reconnected>;
  /** Messages a recipient could not open and asked for again, which this agent no longer held. */
  lost: CustomEvent<Lost>;
}

/**
 * Details of a `lost` event: messages whose `send` had resolved, that their
 * recipient could not open (it lost its session state) and asked for again,
 * and that this agent could not send again (forgotten: past the `resend`
 * memory bound, or expired).
 */
export interface Lost {
  /** The recipient. */
  to: string;
  /** The spore ids it asked for. */
  ids: string[];
  /** Why they could not be sent again. */
  reason: "no longer held" | "sending again failed";
}

const EVENT_NAMES: ReadonlySet<string> = new Set([
  "rejected",
  "dead-letter",
  "connected",
  "key-changed",
  "undeliverable",
  "lost",
  "disconnected",
  "reconnected",
]);

/**
 * Details of a `dead-letter` event: given up on by the agent (`source: "agent"`, with the message) or by
 * the transport on its own (`source: "transport"`, with where it was and how often it was delivered).
 *
 * @example
 * ```ts
 * import type { DeadLetter } from "@spores/spores";
 * function describe(d: DeadLetter): string {
 *   return d.source === "agent"
 *     ? `${d.message.type} from ${d.message.from} after ${d.attempts} attempts`
 *     : `${d.size} bytes moved by ${d.transport} after ${d.attempts} deliveries: ${d.reason}`;
 * }
 * ```
 */
export type DeadLetter = HandlerDeadLetter | TransportDeadLetter;

/** A message the agent gave up on after `maxRedeliveries` failed (or handler-less) deliveries. */
export interface HandlerDeadLetter {
  /** Tells it apart from a dead letter the transport decided on. */
  source: "agent";
  /** The message given up on. */
  message: Message;
  /** Deliveries made. */
  attempts: number;
  /** What the last handler attempt threw. */
  error: unknown;
}

const TRANSPORT_MODULES: Readonly<Record<string, string>> = Object.freeze({
  "memory:": "memory",
  "redis:": "redis",
  "rediss:": "redis",
  "amqp:": "amqp",
  "amqps:": "amqp",
  "sqs:": "sqs",
  "mqtt:": "mqtt",
  "mqtts:": "mqtt",
  "mqtt+ws:": "mqtt",
  "mqtt+wss:": "mqtt",
  "stomp:": "stomp",
  "stomp+ssl:": "stomp",
  "stomp+ws:": "stomp",
  "stomp+wss:": "stomp",
  "nats:": "nats",
  "tls:": "nats",
});

/**
 * Opens the transport for `url` by importing only its module.
 *
 * @example
 * ```ts
 * import { openTransport } from "@spores/spores";
 * const t = await openTransport("memory://docs");
 * await t.close();
 * ```
 */
export async function openTransport<Url extends string>(
  url: Url,
  options?: TransportOptionsFor<Url>,
): Promise<Transport> {
  let scheme: string;
  try {
    scheme = new URL(url).protocol;
  } catch (cause) {
    throw new ConfigError(`transport must be a URL such as memory:// (got ${JSON.stringify(url)})`, {
      cause,
    });
  }
  const name = TRANSPORT_MODULES[scheme];
  if (!name) {
    const known = Object.keys(TRANSPORT_MODULES).map((s) => `${s}//`).join(", ");
    throw new ConfigError(`unknown transport scheme ${scheme}// (known: ${known})`);
  }
  // The in-process broker is pure, so its import can be analysed (and needs no
  // permission). Broker transports use a computed specifier: the module graph of
  // mod.ts holds none of them, so only the transport a URL names (and its broker
  // client) is ever loaded. Loading one from local files needs --allow-read for it.
  const module: { createTransport: TransportFactory } = name === "memory"
    ? await import("../transports/memory.ts")
    : await import(new URL(`../transports/${name}${MODULE_EXTENSION}`, import.meta.url).href);
  return await module.createTransport(url, options as Record<string, unknown> | undefined);
}

/**
 * The extension of this module's own file: `.ts` from source, `.js` once
 * compiled (as JSR's npm packages are), so the transport modules are found beside it.
 */
const MODULE_EXTENSION = /\.[cm]?js$/.test(new URL(import.meta.url).pathname) ? ".js" : ".ts";

const RESERVED = "spores.";

/** A message type an application may use: a valid id, outside the reserved `spores.` space. */
function checkUserType(type: string): void {
  checkId(type, "message type");
  if (type.startsWith(RESERVED)) {
    throw new ConfigError(`message types starting with ${RESERVED} are reserved`);
  }
}
const KEY_REQUEST = "spores.sender-key-request";
const REPLY = "spores.reply";
const KEY_GRANT = "spores.sender-key";
/** A request to send spores again that this agent could not open for lack of state it lost. */
const RESEND = "spores.resend";
/** Requests to send again answered per peer per minute. */
const RESEND_ANSWERS_PER_MINUTE = 600;
/** The initiator's first spore on a new session: it confirms the session to the responder. */
const CONFIRM = "spores.confirm";
/** How long a broadcast waits, parked, for its sender key. */
const KEY_WAIT_MS = 10_000;
/** Broadcasts parked while their key is requested: per sender and in total. */
const PARKED_PER_SENDER = 256;
const PARKED_MAX = 4096;
/** Key requests: at most one per (sender, key) every 2 s, and this many per sender per minute. */
const KEY_REQUEST_EVERY_MS = 2_000;
const KEY_REQUESTS_PER_MINUTE = 30;
/** Key requests answered per requester per minute. */
const KEY_ANSWERS_PER_MINUTE = 60;

/** Details of an `undeliverable` event: a broadcast whose sender key never came. */
export interface Undeliverable {
  /** The sender. */
  from: string;
  /** The channel. */
  channel: string;
  /** The sender key id (hex). */
  keyId: string;
  /** Why it was given up. */
  reason: "sender key did not arrive" | "too many broadcasts waiting for keys";
}

/** A sliding count of events per key over the last minute, bounded in keys. */
class RateLimit {
  readonly #hits = new Map<string, number[]>();
  readonly #perMinute: number;
  constructor(perMinute: number) {
    this.#perMinute = perMinute;
  }
  allow(key: string, now: number): boolean {
    const hits = (this.#hits.get(key) ?? []).filter((t) => t > now - 60_000);
    this.#hits.delete(key);
    this.#hits.set(key, hits);
    if (this.#hits.size > 10_000) this.#hits.delete(this.#hits.keys().next().value!);
    if (hits.length >= this.#perMinute) return false;
    hits.push(now);
    return true;
  }
}

/**
 * An agent.
 *
 * @example Two agents on the in-process broker
 * ```ts
 * import { Agent } from "@spores/spores";
 * const alice = await Agent.start({ id: "alice", transport: "memory://doc-agent" });
 * const bob = await Agent.start({ id: "bob", transport: "memory://doc-agent" });
 * const got = Promise.withResolvers<string>();
 * bob.on("chat", (msg) => got.resolve(`${msg.from}: ${msg.content}`));
 * await alice.connect("bob");
 * await alice.send("bob", { type: "chat", content: "hello" });
 * console.assert((await got.promise) === "alice: hello");
 * await alice.close();
 * await bob.close();
 * ```
 */
export class Agent<Types extends MessageTypes = MessageTypes> extends EventTarget {
  /** The agent id. */
  readonly id: string;
  /** The agent's identity. */
  readonly identity: Identity;
  /** The transport in use. */
  readonly transport: Transport;
  readonly #engine: SporeEngine;
  readonly #store: SessionStore;
  readonly #ownsTransport: boolean;
  readonly #leaseMs: number;
  readonly #logger: Logger;
  readonly #maxRedeliveries: number;
  readonly #connectTimeout: number;
  readonly #prefetch: number;
  readonly #channelAccess: (channel: string, agent: string) => boolean | Promise<boolean>;
  readonly #handlers = new Map<string, Handler<never>>();
  #anyHandler: Handler | undefined;
  readonly #classicTypes = new Set<string>();
  #anyClassic = false;
  #praval: PravalProfile | undefined;
  readonly #subscriptions = new Map<string, { close(): Promise<void> }>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Broadcasts waiting for their sender key, by `from/keyId`, aside from the broker's delivery slots. */
  readonly #parked = new Map<
    string,
    { from: string; channel: string; keyId: string; spores: Delivery[]; timer: ReturnType<typeof setTimeout> }
  >();
  #parkedCount = 0;
  readonly #lastRequest = new Map<string, number>();
  readonly #requestLimit = new RateLimit(KEY_REQUESTS_PER_MINUTE);
  readonly #answerLimit = new RateLimit(KEY_ANSWERS_PER_MINUTE);
  readonly #sendOrder = new InOrder();
  readonly #sent: SentMessages | undefined;
  readonly #resendAnswerLimit = new RateLimit(RESEND_ANSWERS_PER_MINUTE);
  readonly #resendRequests = new ResendRequests(async (to, content) => {
    await this.#send(to, { type: RESEND, content, priority: 9 });
  });
  /** Sessions peers said they lost (peer, session → until), whose later requests are still answered. */
  readonly #lostSessions = new Map<string, number>();
  /** Spores already asked for again (sender/id → until), so a redelivered copy is not asked for twice. */
  readonly #askedAgain = new Map<string, number>();
  readonly #rekeying = new Map<string, Promise<void>>();
  readonly #requests = new Map<string, { peer: string; resolve(m: Message): void; type: string }>();
  readonly #iterators = new Set<() => void>();
  readonly #noEcho = new Set<string>();
  /** Every channel joined in this run, left since or not: its membership stays on the broker until a purge. */
  readonly #joined = new Set<string>();
  readonly #warnOnce: boolean;
  readonly #warned = new Set<string>();
  readonly #metrics: AgentMetrics = emptyMetrics();
  #rotationsSeen = 0;
  #renewal: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #closingStarted = Promise.withResolvers<void>();
  /** Ends the listeners on the transport's events. */
  readonly #unlisten = new AbortController();

  private constructor(
    id: string,
    identity: Identity,
    engine: SporeEngine,
    store: SessionStore,
    transport: Transport,
    ownsTransport: boolean,
    options: Omit<AgentOptions, "handlers">,
  ) {
    super();
    this.id = id;
    this.identity = identity;
    this.#engine = engine;
    this.#store = store;
    this.transport = transport;
    this.#ownsTransport = ownsTransport;
    this.#logger = options.logger ?? silentLogger;
    this.#maxRedeliveries = options.maxRedeliveries ?? 5;
    this.#sent = options.resend === false ? undefined : new SentMessages(options.resend);
    this.#leaseMs = options.handlerLeaseMs ?? 60_000;
    this.#connectTimeout = options.connectTimeoutMs ?? 10_000;
    this.#prefetch = options.prefetch ?? 64;
    this.#channelAccess = options.channelAccess ?? (() => true);
    this.#warnOnce = options.logger === undefined && options.refusals !== "silent";
    if (!Number.isInteger(this.#maxRedeliveries) || this.#maxRedeliveries < 0) {
      throw new ConfigError("maxRedeliveries must be a non-negative integer");
    }
  }

  /** Starts an agent: opens the transport, publishes its card, subscribes to its queue. */
  static async start<T extends MessageTypes = MessageTypes, Url extends string = string>(
    options: AgentOptions<T, Url>,
  ): Promise<Agent<T>> {
    const id = checkId(options.id, "agent id");
    options.signal?.throwIfAborted();
    const owns = typeof options.transport === "string";
    const praval = options.praval
      ? await PravalProfile.create(id, options.praval, {
        skewMs: options.skewMs,
        maxPayloadBytes: options.limits?.maxPayloadBytes,
      })
      : undefined;
    const transport = typeof options.transport === "string"
      ? await openTransport<string>(options.transport, pravalTransportOptions(options, praval))
      : options.transport;
    try {
      const directory = options.directory ?? transport.directory;
      if (!directory) throw new ConfigError(`transport ${transport.name} has no directory: pass one`);
      const identity = options.identity ?? await Identity.generate();
      const store = options.store ?? new MemorySessionStore({ replayWindow: options.session?.replayWindow });
      const engine = await SporeEngine.create({
        id,
        identity,
        directory,
        trust: options.trust ?? new TofuTrust(),
        store,
        limits: options.limits,
        session: options.session,
        skewMs: options.skewMs,
        allowClassic: options.allowClassic,
        replayMemorySince: options.replayMemorySince,
      });
      const agent = new Agent<T>(id, identity, engine, store, transport, owns, options);
      agent.#praval = praval;
      agent.#listenToTransport();
      for (const [type, handler] of Object.entries(options.handlers ?? {})) {
        if (handler) agent.on(type, handler as Handler<T[string]>);
      }
      await engine.publishCard();
      const sub = await transport.subscribe({ agent: id }, (d) => agent.#track(agent.#receive(d)), {
        prefetch: agent.#prefetch,
      });
      agent.#subscriptions.set("", sub);
      // Cards expire (30 days): a new one, with a greater version, is published past half its lifetime.
      const renewal = setInterval(() => {
        if (engine.cardRenewalDue) {
          engine.publishCard().catch((e) =>
            agent.#log("warn", "card-renewal-failed", {
              code: e instanceof SporeError ? e.code : "ERR_INTERNAL",
            })
          );
        }
      }, 3_600_000);
      unrefTimer(renewal);
      agent.#renewal = renewal;
      options.signal?.addEventListener("abort", () => void agent.close(), { once: true });
      agent.#log("info", "started", {
        suite: engine.suite,
        transport: transport.name,
        fingerprint: identity.fingerprint,
      });
      return agent;
    } catch (e) {
      if (owns) await transport.close();
      throw e;
    }
  }

  /** Re-emits the transport's link and dead-letter events as the agent's own, counting them. */
  #listenToTransport(): void {
    const events = this.transport.events;
    if (!events) return;
    const signal = this.#unlisten.signal;
    events.addEventListener("disconnected", (e) => {
      this.#metrics.disconnections++;
      this.#log("warn", "disconnected", {
        transport: e.detail.transport,
        broker: e.detail.broker,
        reason: e.detail.reason,
      });
      this.dispatchEvent(new CustomEvent<Disconnected>("disconnected", { detail: e.detail }));
    }, { signal });
    events.addEventListener("reconnected", (e) => {
      this.#log("info", "reconnected", {
        transport: e.detail.transport,
        broker: e.detail.broker,
        downMs: e.detail.downMs,
      });
      this.dispatchEvent(new CustomEvent<Reconnected>("reconnected", { detail: e.detail }));
    }, { signal });
    events.addEventListener("dead-letter", (e) => {
      const d = e.detail;
      // A transport shared by several agents reports every queue it reads: count this agent's own.
      const mine = "agent" in d.address ? d.address.agent === this.id : d.member === this.id;
      if (!mine) return;
      this.#metrics.deadLetters++;
      this.#metrics.transportDeadLetters++;
      this.#log("error", "dead-letter", {
        source: "transport",
        transport: d.transport,
        size: d.size,
        attempts: d.attempts,
        reason: d.reason,
      });
      this.dispatchEvent(new CustomEvent<DeadLetter>("dead-letter", { detail: d }));
    }, { signal });
  }

  #log(
    level: LogLevel,
    event: string,
    fields: Record<string, string | number | boolean | undefined> = {},
  ): void {
    if (this.#logger === silentLogger) return;
    const e: LogEvent = { level, event, agent: this.id, time: Date.now(), ...fields };
    try {
      this.#logger.log(e);
    } catch {
      // A logger must not break the agent.
    }
  }

  #track(p: Promise<void>): Promise<void> {
    this.#inFlight.add(p);
    return p.finally(() => this.#inFlight.delete(p));
  }

  #check(): void {
    if (this.#closed) throw new ConfigError(`agent ${this.id} is closed`);
  }

  /**
   * Listens for a lifecycle event (`rejected`, `dead-letter`, `connected`,
   * `key-changed`, `undeliverable`, `lost`, `disconnected`, `reconnected`); message
   * handlers are registered with `on`.
   */
  override addEventListener<K extends keyof AgentEventMap>(
    type: K,
    listener: (event: AgentEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Listens for any event. */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ((event: never) => void) | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /**
   * Registers the handler of message type `type`. A second handler for one
   * type is a `ConfigError` unless `options.replace`; lifecycle events are not
   * message types (use `addEventListener`).
   */
  on<K extends keyof Types & string>(
    type: K,
    handler: Handler<Types[K]>,
    options: HandlerOptions = {},
  ): this {
    if (EVENT_NAMES.has(type)) {
      throw new ConfigError(
        `"${type}" is an agent event, not a message type: use agent.addEventListener("${type}", listener)`,
      );
    }
    checkUserType(type);
    if (this.#handlers.has(type) && !options.replace) {
      throw new ConfigError(
        `a handler for "${type}" is registered already: pass { replace: true } or call off()`,
      );
    }
    this.#handlers.set(type, handler as Handler<never>);
    if (options.classic) this.#classicTypes.add(type);
    else this.#classicTypes.delete(type);
    return this;
  }

  /** Removes the handler of `type` (its messages then wait with the broker; see `on`). */
  off(type: string): this {
    this.#handlers.delete(type);
    this.#classicTypes.delete(type);
    return this;
  }

  /**
   * The messages of `type` as an async iterable: each message is acknowledged
   * when the loop asks for the next one, so the loop body is the handler. A
   * `break` stops the iteration; messages delivered but not yet reached go
   * back to the broker.
   *
   * @example
   * ```ts
   * import { Agent } from "@spores/spores";
   * const bob = await Agent.start({ id: "bob", transport: "memory://doc-messages" });
   * const alice = await Agent.start({ id: "alice", transport: "memory://doc-messages" });
   * await alice.send("bob", { type: "chat", content: "hi" });
   * for await (const msg of bob.messages("chat")) {
   *   console.assert(msg.content === "hi");
   *   break;
   * }
   * await alice.close();
   * await bob.close();
   * ```
   */
  messages<K extends keyof Types & string>(
    type: K,
    options: HandlerOptions = {},
  ): AsyncIterableIterator<Message<Types[K]>> {
    type Item = { message: Message<Types[K]>; resolve(): void; reject(e: unknown): void };
    const waiting: Item[] = [];
    let current: Item | undefined;
    let pull: ((r: IteratorResult<Message<Types[K]>>) => void) | undefined;
    let ended = false;
    const ending = () => new ConfigError(`iteration over "${type}" ended`);
    const finish = () => {
      if (ended) return;
      ended = true;
      this.#iterators.delete(finish);
      this.off(type);
      current?.resolve();
      current = undefined;
      for (const w of waiting.splice(0)) w.reject(ending());
      pull?.({ value: undefined, done: true });
      pull = undefined;
    };
    this.on(type, (message) =>
      new Promise<void>((resolve, reject) => {
        if (ended) return reject(ending());
        const item: Item = { message, resolve, reject };
        if (pull) {
          const p = pull;
          pull = undefined;
          current = item;
          p({ value: message, done: false });
        } else waiting.push(item);
      }), options);
    this.#iterators.add(finish);
    const iterator: AsyncIterableIterator<Message<Types[K]>> = {
      next: () => {
        current?.resolve();
        current = undefined;
        if (ended) return Promise.resolve({ value: undefined, done: true });
        const w = waiting.shift();
        if (w) {
          current = w;
          return Promise.resolve({ value: w.message, done: false });
        }
        return new Promise((r) => pull = r);
      },
      return: () => {
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Registers a handler for every type that has no handler of its own. */
  onAny(handler: Handler, options: HandlerOptions = {}): this {
    this.#anyHandler = handler;
    this.#anyClassic = options.classic === true;
    return this;
  }

  /**
   * Declares `keys` (Praval's `get_public_keys()` shape) as a Praval peer:
   * sends to it use Praval's format, and its spores are accepted, checked
   * against these pinned keys. Needs `AgentOptions.praval`.
   */
  declarePravalPeer(
    keys: PravalPublicKeys | PravalPublicKeysInput,
    options: { replace?: boolean } = {},
  ): PravalPublicKeys {
    this.#check();
    if (!this.#praval) throw new ConfigError("this agent has no Praval profile (AgentOptions.praval)");
    return this.#praval.declare(keys, options);
  }

  /** This agent's Praval public keys (to register with Praval agents), if it has a Praval profile. */
  pravalPublicKeys(): PravalPublicKeys | undefined {
    return this.#praval?.keys.publicKeys();
  }

  /** Counters and latency histograms (a snapshot). */
  metrics(): AgentMetrics {
    this.#syncRotations();
    return snapshot(this.#metrics);
  }

  #syncRotations(): void {
    const r = this.#engine.stats.rotations;
    this.#metrics.rotations += r - this.#rotationsSeen;
    this.#rotationsSeen = r;
  }

  /**
   * Rotates this agent's X-Wing key and publishes the new card; spores sealed
   * to the old key still open for `overlapMs` (default one hour).
   */
  async rotateKemKey(overlapMs?: number): Promise<void> {
    this.#check();
    await this.#engine.rotateKemKey(overlapMs);
    this.#log("info", "kem-key-rotated", { keyId: hex.encode(this.identity.kemKey.keyId) });
  }

  /** This agent's card (to publish elsewhere, or to pin its fingerprint). */
  card(): Promise<Uint8Array> {
    return this.#engine.card();
  }

  /**
   * Runs the authenticated post-quantum handshake with `peer`, retrying the
   * hello until the welcome arrives or `timeoutMs` passes (`TransportError`).
   */
  async connect(
    peer: string,
    options: { timeoutMs?: number; signal?: AbortSignal; force?: boolean } = {},
  ): Promise<SessionInfo> {
    this.#check();
    const timeout = options.timeoutMs ?? this.#connectTimeout;
    const { bytes, established } = await this.#engine.hello(peer, { force: options.force });
    const deadline = Date.now() + timeout;
    const retryEvery = Math.max(250, Math.floor(timeout / 5));
    let timer: ReturnType<typeof setTimeout> | undefined;
    options.signal?.throwIfAborted();
    const aborted = Promise.withResolvers<never>();
    aborted.promise.catch(() => {}); // settled only while connect() waits on it
    const onAbort = () => aborted.reject(options.signal!.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const abort = aborted.promise;
    try {
      for (;;) {
        await this.transport.publish({ agent: peer }, bytes, { priority: 9, ttlMs: 120_000 });
        const left = deadline - Date.now();
        if (left <= 0) throw new TransportError(`handshake with ${peer} timed out after ${timeout} ms`);
        const wait = new Promise<"retry">((resolve) =>
          timer = setTimeout(() => resolve("retry"), Math.min(left, retryEvery))
        );
        const r = await Promise.race([established, wait, abort]);
        clearTimeout(timer);
        if (r !== "retry") {
          this.#log("info", "connected", { peer, session: r.id, role: r.role });
          this.dispatchEvent(
            new CustomEvent<Connected>("connected", { detail: { peer, session: r.id, role: r.role } }),
          );
          return r;
        }
        if (Date.now() >= deadline) {
          throw new TransportError(`handshake with ${peer} timed out after ${timeout} ms`);
        }
      }
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Sends a message to `peer`: on the session if one exists (see
   * `connect`), otherwise as a one-shot sealed spore. Resolves with the spore
   * id when the transport has accepted it.
   */
  async send<K extends keyof Types & string>(
    peer: string,
    message: SendOptions<K, Types[K]>,
    options: SendControl = {},
  ): Promise<string> {
    this.#check();
    checkUserType(message.type);
    checkContent(message.content);
    return await abortable(this.#sendChecked(peer, message), options.signal);
  }

  async #sendChecked(peer: string, message: SendOptions): Promise<string> {
    if (this.#praval?.isPeer(peer)) {
      const { bytes, id, expiresAt, priority } = await this.#praval.seal(peer, message);
      await this.#publish({ agent: peer }, bytes, {
        id,
        type: message.type,
        to: peer,
        expiresAt,
        priority,
        kind: "praval",
      });
      return id;
    }
    return await this.#send(peer, message);
  }

  /**
   * Sends `message` to `peer` and resolves with the message `peer` answers it
   * with (`message.reply(...)` in its handler). A `TransportError` if no reply
   * came in `timeoutMs` (default 30,000).
   *
   * @example
   * ```ts
   * import { Agent } from "@spores/spores";
   * const alice = await Agent.start({ id: "alice", transport: "memory://doc-request" });
   * const bob = await Agent.start({ id: "bob", transport: "memory://doc-request" });
   * bob.on("add", (m) => void m.reply((m.content as number[]).reduce((a, b) => a + b, 0)));
   * const answer = await alice.request("bob", { type: "add", content: [1, 2, 3] });
   * console.assert(answer.content === 6);
   * await alice.close();
   * await bob.close();
   * ```
   */
  async request<K extends keyof Types & string>(
    peer: string,
    message: SendOptions<K, Types[K]>,
    options: RequestOptions = {},
  ): Promise<Message> {
    this.#check();
    checkUserType(message.type);
    checkContent(message.content);
    options.signal?.throwIfAborted();
    const id = message.id === undefined ? newSporeId() : checkId(message.id, "spore id");
    if (this.#requests.has(id)) throw new ConfigError(`a request with id ${id} is waiting already`);
    const timeout = options.timeoutMs ?? 30_000;
    const answered = Promise.withResolvers<Message>();
    this.#requests.set(id, { peer, resolve: answered.resolve, type: message.type });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await abortable(this.#sendChecked(peer, { ...message, id }), options.signal);
      const timedOut = new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new TransportError(`no reply from ${peer} to ${message.type} within ${timeout} ms`)),
          timeout,
        )
      );
      return await abortable(
        Promise.race([answered.promise, timedOut, this.#closedWhileWaiting()]),
        options.signal,
      );
    } finally {
      clearTimeout(timer);
      this.#requests.delete(id);
    }
  }

  /**
   * Waits `ms`, or less if `until` settles first or the agent starts closing; the timer never outlives the
   * wait (so a closed agent leaves none behind).
   */
  async #pause(ms: number, until?: Promise<unknown>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waits: Promise<unknown>[] = [
      new Promise((r) => timer = setTimeout(r, ms)),
      this.#closingStarted.promise,
    ];
    if (until) waits.push(until);
    await Promise.race(waits);
    clearTimeout(timer);
  }

  /** Rejects once the agent starts closing (so nothing waits on a closed agent). */
  #closedWhileWaiting(): Promise<never> {
    return this.#closingStarted.promise.then(() => {
      throw new TransportError(`agent ${this.id} closed while waiting`);
    });
  }

  async #reply(to: string, re: string, content: unknown, options: SendControl): Promise<string> {
    this.#check();
    checkContent(content);
    return await abortable(
      this.#send(to, { type: REPLY, content: { re, content }, priority: 7 }),
      options.signal,
    );
  }

  /**
   * Seals and publishes `message` to `peer`. `again`: it is a message sent
   * before, asked for again, and keeps its spore id; brokers that drop
   * publications by id (NATS, SQS FIFO) must not take it for the first.
   */
  async #send(
    peer: string,
    message: SendOptions & { payload?: Uint8Array },
    again = false,
  ): Promise<string> {
    // Content reaches here checked (send, request, reply) or made by this agent: encoded once, without another
    // walk, and remembered encoded for a resend request.
    const payload = message.payload ??
      encodeContent(message.content ?? null, this.#engine.limits.maxPayloadBytes);
    // Spores to one peer reach the transport in the order they were sent (their session counters' order), however
    // the sealing of each finished: a receiver's replay window then sees them only as far apart as the broker puts them.
    const { earlier, leave } = this.#sendOrder.enter(peer);
    let sealed, published;
    try {
      try {
        sealed = await this.#engine.sealSpore(peer, { ...message, payload });
      } catch (e) {
        // Sending, the unknown agent is the recipient: say so.
        if (e instanceof UnknownSenderError) {
          throw new UnknownSenderError(`unknown recipient ${peer}: no agent card for it in the directory`, {
            cause: e,
          });
        }
        throw e;
      }
      await earlier;
      published = this.#publish({ agent: peer }, sealed.bytes, sealed.info, again ? "again" : undefined);
    } finally {
      leave();
    }
    await published;
    const { info, rekeyDue } = sealed;
    // Every message but a request to send again (internal ones too: a sender key granted on a session the
    // member lost comes again as well).
    if (this.#sent && message.type !== RESEND) {
      this.#sent.add(peer, info.id, {
        type: message.type,
        payload,
        priority: info.priority,
        expiresAt: info.expiresAt,
        size: sealed.bytes.length,
      });
    }
    if (rekeyDue) this.#rekey(peer);
    return info.id;
  }

  /** Starts a fresh handshake with `peer`, unless one is under way (one re-key per peer at a time). */
  #rekey(peer: string): void {
    if (!this.#rekeying.has(peer)) {
      // The sends that find a re-key due meanwhile go on the current session.
      const rekey = this.connect(peer, { force: true }).then(
        () => {},
        (e) =>
          this.#log("warn", "rekey-failed", {
            peer,
            code: e instanceof SporeError ? e.code : "ERR_INTERNAL",
          }),
      ).finally(() => this.#rekeying.delete(peer));
      this.#rekeying.set(peer, rekey);
    }
  }

  async #publish(
    to: { agent: string } | { channel: string },
    bytes: Uint8Array,
    info: Pick<SporeInfo, "id" | "type" | "to" | "expiresAt" | "priority"> & { kind: string },
    dedupSuffix?: string,
  ): Promise<void> {
    checkMessageSize(bytes, this.transport.capabilities.maxMessageBytes);
    await this.transport.publish(to, bytes, {
      priority: info.priority,
      ttlMs: Math.max(1, info.expiresAt - Date.now()),
      dedupId: dedupSuffix === undefined ? info.id : `${info.id}.${dedupSuffix}`,
      type: info.type,
    });
    this.#metrics.sent++;
    this.#log("debug", "sent", {
      to: info.to,
      id: info.id,
      type: info.type,
      kind: info.kind,
      size: bytes.length,
    });
  }

  /** Publishes a message to every member of `channel`, under this agent's sender key. */
  async broadcast<K extends keyof Types & string>(
    channel: string,
    message: SendOptions<K, Types[K]>,
    options: SendControl = {},
  ): Promise<string> {
    this.#check();
    checkUserType(message.type);
    checkContent(message.content);
    return await abortable(this.#broadcastInOrder(channel, message), options.signal);
  }

  async #broadcastInOrder(channel: string, message: SendOptions): Promise<string> {
    // In counter order, as for sends to a peer (see #send).
    const { earlier, leave } = this.#sendOrder.enter(`#${channel}`);
    let sealed, published;
    try {
      sealed = await this.#engine.sealBroadcastSpore(channel, {
        ...message,
        payload: encodeContent(message.content ?? null, this.#engine.limits.maxPayloadBytes),
      });
      await earlier;
      published = this.#publish({ channel }, sealed.bytes, sealed.info);
    } finally {
      leave();
    }
    await published;
    return sealed.info.id;
  }

  /**
   * Sets the membership of `channel` on this agent: who may receive its
   * sender key (and so read its broadcasts), and whose broadcasts it accepts
   * (`posters`, default the members). Membership is explicit and deny by
   * default: a channel without it is neither readable from this agent nor
   * accepted by it. A change of members starts a new sender key.
   */
  setMembers(channel: string, members: ChannelMembers): void {
    this.#check();
    this.#engine.setMembers(channel, members);
  }

  /**
   * Joins `channel`: this agent receives its broadcasts, including those
   * sent while it was away. `options.members` sets its membership (see
   * `setMembers`); `options.echo: false` keeps this agent's own broadcasts
   * from its handlers.
   */
  async join(channel: string, options: JoinOptions = {}): Promise<void> {
    this.#check();
    checkId(channel, "channel");
    if (options.members) {
      this.#engine.setMembers(channel, { members: options.members, posters: options.posters });
    }
    if (options.echo === false) this.#noEcho.add(channel);
    else this.#noEcho.delete(channel);
    if (this.#subscriptions.has(channel)) return;
    this.#joined.add(channel);
    this.#engine.join(channel);
    const sub = await this.transport.subscribe({ channel }, (d) => this.#track(this.#receive(d)), {
      member: this.id,
      prefetch: this.#prefetch,
    });
    this.#subscriptions.set(channel, sub);
    this.#log("info", "joined", { channel });
  }

  /** Leaves `channel`. */
  async leave(channel: string): Promise<void> {
    const sub = this.#subscriptions.get(channel);
    if (!sub || channel === "") return;
    this.#subscriptions.delete(channel);
    this.#engine.leave(channel);
    await sub.close();
  }

  #reject(error: unknown, bytes: Uint8Array): void {
    const code: SporeErrorCode | "ERR_INTERNAL" = error instanceof SporeError ? error.code : "ERR_INTERNAL";
    this.#metrics.rejected[code] = (this.#metrics.rejected[code] ?? 0) + 1;
    let claimed: { from: string; id: string; kind: string } | undefined;
    try {
      if (looksLikePravalSpore(bytes)) {
        const p = decodePravalSpore(bytes);
        claimed = { from: p.fromAgent, id: p.id, kind: "praval" };
      } else claimed = inspect(bytes, this.#engine.limits);
    } catch {
      claimed = undefined;
    }
    this.#log(code === "ERR_INTERNAL" ? "error" : "warn", "rejected", {
      code,
      size: bytes.length,
      claimedFrom: claimed?.from,
      claimedId: claimed?.id,
      kind: claimed?.kind,
    });
    if (this.#warnOnce && !this.#warned.has(code)) {
      this.#warned.add(code);
      console.warn(
        `spores: agent ${this.id} refused a spore (${code}${
          claimed?.from ? `, claimed sender ${claimed.from}` : ""
        }): ${error instanceof Error ? error.message : String(error)}. ` +
          `Later refusals with this code are counted in agent.metrics().rejected and sent as "rejected" events.`,
      );
    }
    const detail: Rejection = {
      code,
      error,
      size: bytes.length,
      claimedFrom: claimed?.from,
      claimedId: claimed?.id,
    };
    this.dispatchEvent(new CustomEvent<Rejection>("rejected", { detail }));
    if (code === "ERR_KEY_CHANGED") {
      this.dispatchEvent(
        new CustomEvent<KeyChanged>("key-changed", { detail: { agent: claimed?.from, error } }),
      );
    }
  }

  async #receive(d: Delivery, waited = false): Promise<void> {
    if (looksLikePravalSpore(d.bytes)) return await this.#receivePraval(d);
    let result;
    try {
      result = await this.#engine.open(d.bytes);
      if (result.status === "pending-key") {
        // Parked aside (the delivery slot is freed at once) while the key is requested.
        await this.#park(d, result.from, result.channel, result.keyId);
        return;
      }
    } catch (e) {
      if (e instanceof TransportError) {
        // The spore is not at fault (a directory or store is unreachable): keep it for later.
        // Deferrals are bounded like handler failures: after maxRedeliveries the broker's dead letters keep it.
        this.#log("warn", "receive-deferred", {
          code: e.code,
          size: d.bytes.length,
          attempt: d.redeliveries + 1,
        });
        await this.#pause(Math.min(5000, 250 * 2 ** Math.min(d.redeliveries, 5)));
        await this.#redeliverOrDrop(d, undefined, e);
        return;
      }
      if (e instanceof SessionError && !waited && await this.#awaitHandshake(d.bytes)) {
        return await this.#receive(d, true);
      }
      if (
        (e instanceof UnknownSessionError || e instanceof BeforeMemoryError) && await this.#askAgain(d, e)
      ) {
        return;
      }
      this.#reject(e, d.bytes);
      await d.ack();
      return;
    }
    switch (result.status) {
      case "message":
        await this.#dispatch(d, result.spore);
        return;
      case "duplicate": {
        // A copy of a message whose handler did not finish is handled again (its receipt says whether it did).
        // A first delivery of a copy whose receipt is gone (capped) is a duplicate publish or a replay: it is not
        // handled, so receipts need not outlive the replay window.
        if (result.spore && !result.spore.type.startsWith(RESERVED)) {
          await this.#dispatch(d, result.spore, d.redeliveries === 0);
          return;
        }
        if (result.reply) await this.transport.publish({ agent: result.from }, result.reply, { priority: 9 });
        this.#metrics.duplicates++;
        this.#log("debug", "duplicate", { from: result.from, id: result.id });
        await d.ack();
        return;
      }
      case "handshake":
        if (result.reply) await this.transport.publish({ agent: result.peer }, result.reply, { priority: 9 });
        else {
          // The initiator proves its keys at once, so the responder switches to the new session now
          // rather than at the initiator's next message.
          // A handshake step, like the hello and the welcome: not counted as a sent message.
          await this.#engine.sealSpore(result.peer, { type: CONFIRM, priority: 9 }).then(({ bytes }) =>
            this.transport.publish({ agent: result.peer }, bytes, { priority: 9, ttlMs: 300_000 })
          ).catch((e) =>
            this.#log("warn", "confirm-failed", {
              peer: result.peer,
              code: e instanceof SporeError ? e.code : "ERR_INTERNAL",
            })
          );
        }
        this.#metrics.handshakes++;
        this.#log("info", "handshake", { peer: result.peer, session: result.sessionId });
        if (result.reply) {
          this.dispatchEvent(
            new CustomEvent<Connected>("connected", {
              detail: { peer: result.peer, session: result.sessionId, role: "responder" },
            }),
          );
        }
        await d.ack();
        return;
      case "ignored":
        this.#log("debug", "hello-ignored", { from: result.from, reason: result.reason });
        await d.ack();
        return;
    }
  }

  #keyOf(from: string, keyId: string): string {
    return `${from}/${keyId}`;
  }

  async #park(d: Delivery, from: string, channel: string, keyId: string): Promise<void> {
    const key = this.#keyOf(from, keyId);
    let lot = this.#parked.get(key);
    const fromSender = [...this.#parked.values()].filter((l) => l.from === from)
      .reduce((n, l) => n + l.spores.length, 0);
    if (this.#parkedCount >= PARKED_MAX || fromSender >= PARKED_PER_SENDER) {
      await d.ack();
      this.#undeliverable({ from, channel, keyId, reason: "too many broadcasts waiting for keys" }, 1);
      return;
    }
    if (!lot) {
      const timer = setTimeout(() => {
        const gone = this.#parked.get(key);
        if (!gone) return;
        this.#parked.delete(key);
        this.#parkedCount -= gone.spores.length;
        this.#undeliverable(
          { from, channel, keyId, reason: "sender key did not arrive" },
          gone.spores.length,
        );
      }, KEY_WAIT_MS);
      unrefTimer(timer);
      lot = { from, channel, keyId, spores: [], timer };
      this.#parked.set(key, lot);
    }
    lot.spores.push({ bytes: d.bytes, redeliveries: d.redeliveries, priority: d.priority } as Delivery);
    this.#parkedCount++;
    await d.ack();
    const now = Date.now();
    if ((this.#lastRequest.get(key) ?? 0) + KEY_REQUEST_EVERY_MS > now) return;
    if (!this.#requestLimit.allow(from, now)) {
      this.#log("warn", "sender-key-request-limited", { from, channel });
      return;
    }
    this.#lastRequest.set(key, now);
    if (this.#lastRequest.size > 10_000) this.#lastRequest.delete(this.#lastRequest.keys().next().value!);
    try {
      await this.#send(from, { type: KEY_REQUEST, content: { channel, keyId }, priority: 9 });
    } catch (e) {
      this.#log("warn", "sender-key-request-failed", {
        from,
        code: e instanceof SporeError ? e.code : "ERR_INTERNAL",
      });
    }
  }

  #undeliverable(detail: Undeliverable, count: number): void {
    this.#metrics.deadLetters += count;
    this.#log("error", "undeliverable", { ...detail, count });
    this.dispatchEvent(new CustomEvent<Undeliverable>("undeliverable", { detail }));
  }

  /** Runs parked broadcasts whose key has arrived, each as a delivery of its own. */
  #unpark(key: string): void {
    const lot = this.#parked.get(key);
    if (!lot) return;
    this.#parked.delete(key);
    clearTimeout(lot.timer);
    this.#parkedCount -= lot.spores.length;
    for (const p of lot.spores) {
      void this.#track(this.#receive(this.#parkedDelivery(p.bytes, p.redeliveries, p.priority)));
    }
  }

  /** A delivery for a parked spore (already acknowledged to the broker): a failing handler runs it again. */
  #parkedDelivery(bytes: Uint8Array, redeliveries: number, priority: number): Delivery {
    return {
      bytes,
      redeliveries,
      priority,
      ack: () => Promise.resolve(),
      nack: () => {
        if (!this.#closed) {
          const t = setTimeout(
            () => void this.#track(this.#receive(this.#parkedDelivery(bytes, redeliveries + 1, priority))),
            100,
          );
          unrefTimer(t);
        }
        return Promise.resolve();
      },
    };
  }

  async #internal(spore: OpenedSpore): Promise<void> {
    if (spore.type === KEY_REQUEST) {
      const { channel, keyId } = (spore.content ?? {}) as { channel?: unknown; keyId?: unknown };
      if (typeof channel !== "string" || typeof keyId !== "string") return;
      // Answered only for members, within a rate limit per requester.
      if (
        !this.#engine.isMember(channel, spore.from) || !(await this.#channelAccess(channel, spore.from)) ||
        !this.#answerLimit.allow(spore.from, Date.now())
      ) {
        this.#log("warn", "sender-key-refused", { to: spore.from, channel });
        return;
      }
      const grant = this.#engine.grantSenderKey(channel, keyId, spore.from);
      if (grant) await this.#send(spore.from, { type: KEY_GRANT, content: grant, priority: 9 });
    } else if (spore.type === REPLY) {
      const { re, content } = (spore.content ?? {}) as { re?: unknown; content?: unknown };
      const pending = typeof re === "string" ? this.#requests.get(re) : undefined;
      // Only the peer a request went to can answer it.
      if (!pending || pending.peer !== spore.from) {
        this.#metrics.unhandled++;
        this.#log("debug", "reply-unexpected", { from: spore.from, id: spore.id });
        return;
      }
      pending.resolve(this.#message(spore, 0, pending.type, content));
    } else if (spore.type === RESEND) {
      await this.#sendAgain(spore.from, spore.content);
    } else if (spore.type === KEY_GRANT) {
      this.#engine.installSenderKey(spore.from, spore.content);
      const keyId = (spore.content as { keyId: Uint8Array }).keyId;
      this.#unpark(this.#keyOf(spore.from, hex.encode(keyId)));
    }
  }

  async #dispatch(d: Delivery, spore: OpenedSpore, firstCopy = false): Promise<void> {
    const key = `${spore.from}/${spore.id}`;
    if (this.#praval?.isPeer(spore.from)) {
      // A declared Praval peer has no Spores card: a card under its name is someone else's.
      this.#reject(
        new TrustError(`${spore.from} is a Praval peer; a Spores spore in its name is refused`),
        d.bytes,
      );
      await d.ack();
      return;
    }
    if (spore.type.startsWith(RESERVED)) {
      try {
        await this.#internal(spore);
      } catch (e) {
        this.#reject(e, d.bytes);
      }
      await d.ack();
      return;
    }
    if (spore.kind === "broadcast" && spore.from === this.id && this.#noEcho.has(spore.to)) {
      await d.ack(); // this agent's own broadcast, on a channel joined with { echo: false }
      return;
    }
    const message = this.#message(spore, d.redeliveries);
    const handler = this.#handlers.get(spore.type) ?? this.#anyHandler;
    if (!handler) {
      await this.#unhandled(d, message);
      return;
    }
    let receipt = await this.#store.claimReceipt(key, this.#leaseMs);
    while (receipt === "busy") {
      // Another process of this agent is handling it. Wait here, holding the delivery (returning it would spend
      // one of its delivery attempts each time), until that process finishes it or its lease runs out.
      if (this.#closed) {
        await d.nack(); // closing: the broker keeps it
        return;
      }
      await this.#pause(Math.min(1000, Math.max(10, this.#leaseMs / 10)));
      receipt = await this.#store.claimReceipt(key, this.#leaseMs);
    }
    if (receipt === "claimed" && firstCopy) {
      // Nobody holds it and it is no redelivery (a failed handler's message comes back as one): a copy.
      await this.#store.releaseReceipt(key);
      this.#metrics.duplicates++;
      this.#log("debug", "duplicate", { from: spore.from, id: spore.id });
      await d.ack();
      return;
    }
    if (receipt === "done") {
      this.#metrics.duplicates++;
      this.#log("debug", "duplicate", { from: spore.from, id: spore.id });
      await d.ack();
      return;
    }
    const started = performance.now();
    try {
      await (handler as Handler)(message);
    } catch (error) {
      await this.#store.releaseReceipt(key);
      await this.#redeliverOrDrop(d, message, error);
      return;
    }
    await this.#store.completeReceipt(key, spore.expiresAt + 300_000);
    observe(this.#metrics.handlerLatency, performance.now() - started);
    observe(this.#metrics.deliveryLatency, Math.max(0, Date.now() - spore.createdAt));
    this.#metrics.delivered++;
    this.#log("debug", "delivered", { from: spore.from, id: spore.id, type: spore.type });
    await d.ack();
  }

  /** The message a handler receives for `spore`. */
  #message(spore: OpenedSpore, redeliveries: number, type = spore.type, content = spore.content): Message {
    const message: Message = {
      id: spore.id,
      type,
      from: spore.from,
      to: spore.to,
      content,
      createdAt: spore.createdAt,
      expiresAt: spore.expiresAt,
      priority: spore.priority,
      suite: spore.suite,
      kind: spore.kind,
      security: spore.suite === SUITE_NAMES[Suite.NACL_ED25519] ? "classic" : "post-quantum",
      redeliveries,
      reply: (content, options = {}) => this.#reply(spore.from, spore.id, content, options),
    };
    if (spore.kind === "broadcast") message.channel = spore.to;
    return message;
  }

  /**
   * A message no handler takes yet is never acknowledged into oblivion: it
   * goes back to the broker after a pause (100 ms, doubling, at most 2 s), so a
   * handler registered meanwhile gets it; after `maxRedeliveries` such returns
   * it is dead-lettered with a `dead-letter` event.
   */
  async #unhandled(d: Delivery, message: Message): Promise<void> {
    this.#metrics.unhandled++;
    this.#log("warn", "unhandled", { from: message.from, id: message.id, type: message.type });
    const error = new ConfigError(`no handler for message type "${message.type}"`);
    if (d.redeliveries + 1 <= this.#maxRedeliveries && !this.#closed) {
      await this.#pause(Math.min(2000, 100 * 2 ** d.redeliveries));
    }
    await this.#redeliverOrDrop(d, message, error);
  }

  /**
   * A spore this agent cannot open because it lacks state it lost (a session,
   * or the replay memory of before a restart with a volatile store): its
   * sender is asked, in an authenticated request, to send the message again;
   * once that request is published the spore is acknowledged (its content
   * comes again, on a new session). A copy whose twin was handled already is
   * a duplicate. False when no request can be made (the spore is then refused).
   */
  async #askAgain(d: Delivery, error: unknown): Promise<boolean> {
    let info: SporeInfo;
    try {
      info = inspect(d.bytes, this.#engine.limits);
    } catch {
      return false;
    }
    // Only messages a sender remembers: not handshakes, not requests to send again.
    if (info.kind !== "session" && info.kind !== "sealed") return false;
    if (info.type === RESEND || info.type === CONFIRM) return false;
    const key = `${info.from}/${info.id}`;
    const receipt = await this.#store.claimReceipt(key, this.#leaseMs);
    if (receipt === "claimed") await this.#store.releaseReceipt(key);
    if (receipt === "done" || (this.#askedAgain.get(key) ?? 0) > Date.now()) {
      // Its copy sent again was handled already (or is asked for): this one is a duplicate.
      this.#metrics.duplicates++;
      this.#log("debug", "duplicate", { from: info.from, id: info.id });
      await d.ack();
      return true;
    }
    if (receipt === "busy") {
      await this.#pause(250);
      await d.nack();
      return true;
    }
    const outcome = await this.#resendRequests.ask(info.from, info.sessionId, info.id);
    if (outcome === "refused") return false; // a sender claimed by many unknown sessions: forged
    if (outcome === "later") {
      // Over this sender's budget, or the request could not be published: the broker keeps the spore.
      await this.#pause(250);
      await this.#redeliverOrDrop(d, undefined, error);
      return true;
    }
    this.#askedAgain.set(key, info.expiresAt);
    if (this.#askedAgain.size > 100_000) this.#askedAgain.delete(this.#askedAgain.keys().next().value!);
    this.#metrics.resendRequested++;
    this.#log("info", "resend-requested", {
      from: info.from,
      id: info.id,
      code: error instanceof SporeError ? error.code : undefined,
    });
    await d.ack();
    return true;
  }

  /**
   * Answers `peer`'s authenticated request to send again: the session it
   * lost is forgotten here (a new one is set up), and each message it names
   * that this agent still holds goes again with its spore id; the others are
   * reported in a `lost` event.
   */
  async #sendAgain(peer: string, content: unknown): Promise<void> {
    const request = parseResendRequest(content);
    if (!this.#resendAnswerLimit.allow(peer, Date.now())) {
      this.#log("warn", "resend-answer-limited", { peer });
      return;
    }
    if (request.session !== undefined) {
      // Only for a session this agent has, or had until the same peer said it lost it: a request naming any
      // other session (made up, or another pair's) is ignored, so nobody can make this agent report losses.
      const pair = `${peer}\n${request.session}`;
      if (await this.#engine.forgetSession(peer, request.session)) {
        this.#log("info", "session-lost-by-peer", { peer, session: request.session });
        this.#lostSessions.delete(pair);
        this.#lostSessions.set(pair, Date.now() + 600_000);
        if (this.#lostSessions.size > 10_000) {
          this.#lostSessions.delete(this.#lostSessions.keys().next().value!);
        }
        this.#rekey(peer);
      } else if ((this.#lostSessions.get(pair) ?? 0) < Date.now()) {
        this.#log("warn", "resend-request-ignored", { peer, session: request.session });
        return;
      }
    }
    const forgotten: string[] = [];
    const failed: string[] = [];
    for (const id of request.ids) {
      const m = this.#sent?.take(peer, id);
      if (!m) {
        forgotten.push(id);
        continue;
      }
      try {
        await this.#send(peer, {
          type: m.type,
          payload: m.payload,
          priority: m.priority,
          id,
          ttlMs: Math.max(1, m.expiresAt - Date.now()),
        }, true);
        this.#metrics.resent++;
      } catch (e) {
        this.#log("warn", "resend-failed", {
          peer,
          id,
          code: e instanceof SporeError ? e.code : "ERR_INTERNAL",
        });
        failed.push(id);
      }
    }
    for (const [ids, reason] of [[forgotten, "no longer held"], [failed, "sending again failed"]] as const) {
      if (ids.length === 0) continue;
      this.#metrics.lost += ids.length;
      this.#log("error", "lost", { to: peer, count: ids.length, reason });
      this.dispatchEvent(new CustomEvent<Lost>("lost", { detail: { to: peer, ids: [...ids], reason } }));
    }
  }

  /**
   * A session spore for a session this agent does not know yet, from a peer
   * its own handshake is under way with: the peer answered the hello and sends
   * on the new session before the welcome was opened here. Waits (at most the
   * connect timeout) for that handshake; true if there was one to wait for.
   */
  async #awaitHandshake(bytes: Uint8Array): Promise<boolean> {
    let from: string;
    try {
      from = inspect(bytes, this.#engine.limits).from;
    } catch {
      return false;
    }
    const underway = this.#engine.handshakeUnderway(from);
    if (!underway) return false;
    await this.#pause(this.#connectTimeout, underway.catch(() => {}));
    return !this.#closed;
  }

  /**
   * A Praval spore: opened against the pinned keys of a declared Praval peer,
   * refused if its signed nonce was seen before (a broker redelivery of a
   * handled one is a duplicate), then given to a handler marked `classic`.
   */
  async #receivePraval(d: Delivery): Promise<void> {
    const profile = this.#praval;
    let m: PravalIncoming;
    try {
      if (!profile) {
        throw new ProtocolError(
          "a Praval SecureSpore arrived, but this agent has no Praval profile (AgentOptions.praval)",
        );
      }
      m = await profile.open(d.bytes);
    } catch (e) {
      this.#reject(e, d.bytes);
      await d.ack();
      return;
    }
    const claim = profile.guard.claim(m.from, m.nonce);
    if (claim !== "new") {
      if (d.redeliveries === 0) {
        this.#reject(new ReplayError(`a Praval spore from ${m.from} was replayed`), d.bytes);
        await d.ack();
        return;
      }
      this.#metrics.duplicates++;
      this.#log("debug", "duplicate", { from: m.from, id: m.id });
      if (claim === "busy") {
        await new Promise((r) => setTimeout(r, 250)); // its first copy is still being handled here
        await d.nack();
      } else await d.ack();
      return;
    }
    const handler = this.#classicTypes.has(m.type)
      ? this.#handlers.get(m.type) as Handler | undefined
      : this.#anyClassic && !this.#handlers.has(m.type)
      ? this.#anyHandler
      : undefined;
    const message: Message = {
      id: m.id,
      type: m.type,
      from: m.from,
      to: m.to,
      content: m.content,
      createdAt: m.createdAt,
      expiresAt: m.expiresAt,
      priority: m.priority,
      suite: PRAVAL_SUITE,
      kind: "praval",
      security: "classic",
      redeliveries: d.redeliveries,
      reply: (content, options = {}) => this.#reply(m.from, m.id, content, options),
    };
    if (m.traceContext) message.traceContext = m.traceContext;
    if (!handler) {
      profile.guard.release(m.from, m.nonce);
      await this.#unhandled(d, message);
      return;
    }
    const started = performance.now();
    try {
      await handler(message);
    } catch (error) {
      profile.guard.release(m.from, m.nonce);
      await this.#redeliverOrDrop(d, message, error);
      return;
    }
    profile.guard.complete(m.from, m.nonce);
    observe(this.#metrics.handlerLatency, performance.now() - started);
    observe(this.#metrics.deliveryLatency, Math.max(0, Date.now() - m.createdAt));
    this.#metrics.delivered++;
    this.#log("debug", "delivered", { from: m.from, id: m.id, type: m.type, security: "classic" });
    await d.ack();
  }

  async #redeliverOrDrop(
    d: Delivery,
    message: Message | undefined,
    error: unknown,
  ): Promise<void> {
    const attempts = d.redeliveries + 1;
    const code = error instanceof SporeError ? error.code : undefined;
    if (attempts <= this.#maxRedeliveries) {
      this.#metrics.redeliveries++;
      this.#log("warn", "handler-failed", { id: message?.id, from: message?.from, attempt: attempts, code });
      await d.nack();
      return;
    }
    if (message) {
      await this.#store.completeReceipt(`${message.from}/${message.id}`, message.expiresAt + 300_000);
    }
    this.#metrics.deadLetters++;
    this.#log("error", "dead-letter", {
      id: message?.id,
      from: message?.from,
      type: message?.type,
      attempts,
    });
    if (message) {
      this.dispatchEvent(
        new CustomEvent<DeadLetter>("dead-letter", { detail: { source: "agent", message, attempts, error } }),
      );
    }
    if (d.deadLetter) await d.deadLetter();
    else await d.ack();
  }

  /**
   * Closes the agent: stops new deliveries, waits for running handlers (their
   * spores are acknowledged or returned to the broker), then closes the
   * transport if the agent opened it.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#shutdown(options, undefined);
  }

  /**
   * Closes the agent for good and removes from the broker what it created
   * there, so that its id can start afresh (with new keys, and none of the
   * spores sent to it before): first as `close` does (handlers finish, the
   * transport stays open for the purge), then `transport.purge(id)`, then
   * the transport closes if the agent opened it.
   *
   * Removed: this agent's queue (stream, consumer, session) and the spores
   * waiting there, its dead letters, its card in the transport's directory,
   * its session state where the transport keeps it (the Redis transport:
   * `{prefix}:state:{<id>}…` and `{prefix}:pins:{<id>}:…`, the keys of a
   * `RedisSessionStore` and a `RedisPinStore` with the same prefix), and its
   * membership of every channel joined in this run (left since or not) and
   * of `options.channels`. Not touched: any other agent's queues, cards and
   * state; a channel's own stream or topic; spores already delivered to
   * other agents; a trust file, a file directory, or a session store kept
   * elsewhere. What each transport removes, and what it keeps and why, is in
   * the report (and in `docs/TRANSPORTS.md`).
   *
   * Only this agent's own names are removed, and only when called here: no
   * spore can trigger it. Close the agent's other processes first (a running
   * one re-creates its queue). A transport without `purge` is a
   * `ConfigError`, before anything is closed.
   *
   * @example
   * ```ts
   * import { Agent } from "@spores/spores";
   * const worker = await Agent.start({ id: "worker", transport: "memory://destroy-example" });
   * await worker.join("jobs", { members: ["worker"] });
   * const report = await worker.destroy();
   * console.log(report.removed); // [ "agent/worker", "channel/jobs/worker", "card/worker" ]
   * ```
   */
  async destroy(options: DestroyOptions = {}): Promise<PurgeReport> {
    const purge = this.transport.purge;
    if (!purge) throw new ConfigError(`transport ${this.transport.name} cannot purge what an agent created`);
    if (this.#closing) {
      throw new ConfigError(`agent ${this.id} is closed already: destroy it instead of closing it`);
    }
    const channels = new Set(this.#joined);
    for (const c of options.channels ?? []) channels.add(checkId(c, "channel"));
    let report: PurgeReport | undefined;
    await this.#shutdown(options, async () => {
      report = await purge.call(this.transport, this.id, { channels: [...channels] });
      this.#log("info", "destroyed", { removed: report.removed.length, kept: report.kept.length });
    });
    return report!;
  }

  #shutdown(options: CloseOptions, purge: (() => Promise<void>) | undefined): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#resendRequests.close();
      clearInterval(this.#renewal);
      await Promise.all([...this.#subscriptions.values()].map((s) => s.close()));
      this.#subscriptions.clear();
      // No sender key can arrive any more: what waits for one is given up, visibly.
      for (const [key, lot] of this.#parked) {
        clearTimeout(lot.timer);
        this.#parked.delete(key);
        this.#undeliverable(
          { from: lot.from, channel: lot.channel, keyId: lot.keyId, reason: "sender key did not arrive" },
          lot.spores.length,
        );
      }
      this.#parkedCount = 0;
      // No reply can arrive any more either; iterations end.
      this.#closingStarted.resolve();
      for (const finish of [...this.#iterators]) finish();
      const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
      while (this.#inFlight.size > 0) {
        const left = deadline - Date.now();
        if (left <= 0) {
          this.#log("warn", "close-timeout", { running: this.#inFlight.size });
          break;
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.allSettled([...this.#inFlight]),
          new Promise((r) => timer = setTimeout(r, Math.min(left, 2 ** 31 - 1))),
        ]);
        clearTimeout(timer);
      }
      try {
        await purge?.();
      } finally {
        if (this.#ownsTransport) await this.transport.close();
        this.#unlisten.abort();
      }
      this.#log("info", "closed", { sent: this.#metrics.sent, delivered: this.#metrics.delivered });
    })();
    return this.#closing;
  }

  /** `await using agent = await Agent.start(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Praval's MQTT topic root. */
const PRAVAL_MQTT_PREFIX = "praval/spores";

/** Transport options for an agent with a Praval profile: Praval's AMQP exchange unless one is given. */
function pravalTransportOptions(
  options: Pick<AgentOptions, "transport" | "transportOptions">,
  praval: PravalProfile | undefined,
): AnyTransportOptions | undefined {
  const url = options.transport;
  const given = options.transportOptions as Record<string, unknown> | undefined;
  if (!praval || typeof url !== "string") return options.transportOptions;
  if (/^mqtt(s|\+wss?)?:/i.test(url)) {
    // Praval's MQTT topics: praval/spores/agent/{to}/{type}, which the MQTT transport makes from this prefix.
    if (given?.prefix !== undefined) return options.transportOptions;
    return { ...given, prefix: PRAVAL_MQTT_PREFIX };
  }
  if (!/^amqps?:/i.test(url)) return options.transportOptions;
  if (given?.exchange !== undefined) return options.transportOptions;
  return { ...given, exchange: praval.exchange };
}

/** `work`, or the signal's reason as soon as `signal` aborts (the work itself goes on). */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
