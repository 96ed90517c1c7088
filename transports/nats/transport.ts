/**
 * The NATS transport on JetStream: one stream holds every subject under the
 * prefix; each agent reads through a durable pull consumer of its own, each
 * channel member through one filtered on the channel, so an away member
 * catches up. Publication waits for the PubAck and sets `Nats-Msg-Id` to the
 * spore id (the stream's duplicate window drops a republished spore).
 * Deliveries are acknowledged after the handler, `nak`ed for redelivery, kept
 * with in-progress acks while a slow handler runs, and moved to a dead-letter
 * subject (then `term`ed) after the redelivery limit. TTL is checked at read.
 * Subject names: see `subjects.ts`.
 *
 * @module
 */
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { headers, type MsgHdrs, nanos, type NatsConnection } from "@nats-io/transport-node";
import { ConfigError, TransportError } from "../../crypto/errors.ts";
import { checkId } from "../../spore/limits.ts";
import {
  type Address,
  checkMessageSize,
  type Delivery,
  type DeliveryHandler,
  type PublishOptions,
  type PurgeOptions,
  type PurgeReport,
  type SubscribeOptions,
  type Subscription,
  type Transport,
  type TransportCapabilities,
} from "../transport.ts";
import { connectNats, describeNatsUrl, parseNatsUrl } from "./connection.ts";
import { TransportEvents } from "../events.ts";
import { NatsDirectory } from "./directory.ts";
import {
  agentSubject,
  channelSubject,
  type ConsumerNames,
  consumerNames,
  type NatsNames,
  natsNames,
  token,
} from "./subjects.ts";
import type { NatsTransportOptions } from "./options.ts";
export type { NatsTransportOptions } from "./options.ts";

/**
 * Header with the message's expiry (Unix ms), checked when it is read.
 *
 * @example
 * ```ts
 * import { EXPIRES_HEADER } from "@spores/spores/nats";
 * console.assert(EXPIRES_HEADER === "Spores-Expires");
 * ```
 */
export const EXPIRES_HEADER = "Spores-Expires";
/**
 * Header with the message's priority (carried; JetStream does not reorder by it).
 *
 * @example
 * ```ts
 * import { PRIORITY_HEADER } from "@spores/spores/nats";
 * console.assert(PRIORITY_HEADER === "Spores-Priority");
 * ```
 */
export const PRIORITY_HEADER = "Spores-Priority";
const MSG_ID = "Nats-Msg-Id";
// Ids the transport makes up for retries (a spore id never starts with "~").
const OWN_ID = "~";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function apiCode(e: unknown): number | undefined {
  return e instanceof JetStreamApiError ? e.code : undefined;
}

// JetStream API error codes (nats-server errors.json).
const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;

/**
 * A NATS JetStream connection for agents.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/nats";
 * const transport = await createTransport("nats://127.0.0.1:4222");
 * await transport.publish({ agent: "bob" }, new Uint8Array([1]));
 * await transport.close();
 * ```
 */
export class NatsTransport implements Transport {
  /** `"nats"`. */
  readonly name = "nats";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** Agent cards in a JetStream key-value bucket. */
  readonly directory: NatsDirectory;
  /** The NATS connection. */
  readonly connection: NatsConnection;
  /** Link lost and back, and messages dead-lettered after `maxRedeliveries`. */
  readonly events: TransportEvents;
  /** The JetStream client. */
  readonly js: JetStreamClient;
  /** The JetStream manager. */
  readonly jsm: JetStreamManager;
  /** Subject, stream and bucket names. */
  readonly names: NatsNames;
  /** Messages dropped at read time because their TTL had passed. */
  expired = 0;
  /** Messages this transport moved to a dead-letter subject. */
  deadLettered = 0;
  /** Reconnections so far. */
  reconnections = 0;
  /** Publication attempts retried (lost PubAck, reconnection, leader election). */
  publishRetries = 0;
  readonly #o: NatsTransportOptions;
  readonly #stream: StreamSettings;
  readonly #subs = new Set<NatsSubscription>();
  #closed = false;
  #watching: Promise<void>;
  #lost = Promise.withResolvers<void>();
  #stalled = 0;
  #unstalled = Promise.withResolvers<void>();

  private constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    names: NatsNames,
    stream: StreamSettings,
    options: NatsTransportOptions,
    url: string,
  ) {
    this.#stream = stream;
    this.events = new TransportEvents(
      "nats",
      describeNatsUrl(url),
      parseNatsUrl(url).servers.join(",") || "the NATS servers",
    );
    this.connection = nc;
    this.jsm = jsm;
    this.js = jetstream(nc, { timeout: 5000 });
    this.names = names;
    this.#o = options;
    const serverMax = nc.info?.max_payload ?? 1 << 20;
    this.capabilities = Object.freeze({
      durable: true,
      ordered: true,
      priority: false,
      ttl: true,
      maxMessageBytes: Math.min(options.maxMessageBytes ?? Infinity, serverMax - 1024),
      broadcast: true,
    });
    this.directory = new NatsDirectory(nc, names.bucket, { replicas: options.replicas ?? 1 });
    const events = this.events;
    this.#watching = (async () => {
      let lastError: unknown;
      for await (const s of nc.status()) {
        if (s.type === "error") lastError = (s as { error?: unknown }).error;
        if (s.type === "reconnect") {
          this.reconnections++;
          events.linkUp();
        }
        if (s.type === "disconnect") {
          // nats.js reconnects by itself, to any server of the cluster: one outage until "reconnect".
          events.linkDown(lastError);
          lastError = undefined;
          // Publications waiting for a PubAck on the lost connection are retried now, not after their timeout.
          this.#lost.resolve();
          this.#lost = Promise.withResolvers<void>();
        }
      }
    })().catch(() => {});
  }

  /** Connects and makes sure the stream exists. */
  static async connect(url: string, options: NatsTransportOptions = {}): Promise<NatsTransport> {
    const names = natsNames(options.prefix ?? "spores", options.stream);
    const replicas = options.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
      throw new ConfigError("replicas must be an integer from 1 to 5");
    }
    const ackWait = options.ackWaitMs ?? 30_000;
    if (!(ackWait >= 100)) throw new ConfigError("ackWaitMs must be at least 100");
    const maxRe = options.maxRedeliveries ?? 16;
    if (!Number.isInteger(maxRe) || maxRe < 0) {
      throw new ConfigError("maxRedeliveries must be an integer ≥ 0");
    }
    const nc = await connectNats(url, options);
    try {
      const jsm = await jetstreamManager(nc, { timeout: 5000 });
      const stream: StreamSettings = {
        name: names.stream,
        subjects: [`${names.prefix}.>`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        num_replicas: replicas,
        max_age: nanos(options.maxAgeMs ?? 7 * 24 * 3600_000),
        max_bytes: options.maxBytes ?? -1,
        duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
      };
      await ensureStream(jsm, stream);
      return new NatsTransport(nc, jsm, names, stream, options, url);
    } catch (cause) {
      await nc.close().catch(() => {});
      if (cause instanceof ConfigError) throw cause;
      throw new TransportError(`cannot set up the JetStream stream at ${describeNatsUrl(url)}`, { cause });
    }
  }

  #check(): void {
    if (this.#closed) throw new TransportError("nats transport is closed");
  }

  /**
   * Publishes to JetStream and waits for the PubAck. A lost answer, a leader
   * election or a reconnection is retried with the same `Nats-Msg-Id`, so the
   * stream keeps one copy.
   */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    this.#check();
    checkMessageSize(bytes, this.capabilities.maxMessageBytes);
    const type = options.type ?? "spore";
    const subject = "agent" in to
      ? agentSubject(this.names.prefix, to.agent, type)
      : channelSubject(this.names.prefix, to.channel, type);
    const h = headers();
    h.set(PRIORITY_HEADER, String(options.priority ?? 4));
    if (options.ttlMs !== undefined) h.set(EXPIRES_HEADER, String(Date.now() + Math.max(1, options.ttlMs)));
    const msgID = options.dedupId ?? `${OWN_ID}${crypto.randomUUID()}`;
    await this.send(subject, bytes, h, msgID);
  }

  /**
   * @internal A JetStream publish that waits for the PubAck, retried with the same `Nats-Msg-Id` (so the
   * stream keeps one copy) while the failure may pass, up to `publishTimeoutMs`.
   */
  async send(subject: string, bytes: Uint8Array, h: MsgHdrs, msgID: string): Promise<void> {
    // While a publication is being retried, new ones wait for it: a failover does not let later spores of a
    // session overtake a stalled one by more than what was already in flight (a receiver refuses a spore that
    // falls behind its replay window).
    while (this.#stalled > 0) await this.#unstalled.promise;
    const deadline = Date.now() + (this.#o.publishTimeoutMs ?? 30_000);
    let stalled = false;
    try {
      await this.#attempts(subject, bytes, h, msgID, deadline, () => {
        if (!stalled) {
          stalled = true;
          this.#stalled++;
        }
      });
    } finally {
      if (stalled && --this.#stalled === 0) {
        this.#unstalled.resolve();
        this.#unstalled = Promise.withResolvers<void>();
      }
    }
  }

  async #attempts(
    subject: string,
    bytes: Uint8Array,
    h: MsgHdrs,
    msgID: string,
    deadline: number,
    onRetry: () => void,
  ): Promise<void> {
    for (let attempt = 0;; attempt++) {
      try {
        const pending = this.js.publish(subject, bytes, {
          msgID,
          headers: h,
          timeout: this.#o.pubAckTimeoutMs ?? 2000,
        });
        pending.catch(() => {}); // abandoned when the connection drops first
        await Promise.race([
          pending,
          this.#lost.promise.then(() =>
            Promise.reject(new TransportError("connection lost before the PubAck"))
          ),
        ]);
        return;
      } catch (cause) {
        if (this.#closed) throw new TransportError("nats transport closed during a publish", { cause });
        if (Date.now() > deadline || !retriable(cause)) {
          throw new TransportError(`JetStream did not acknowledge a publish to ${subject}`, { cause });
        }
        this.publishRetries++;
        onRetry();
        await sleep(Math.min(50 * 2 ** Math.min(attempt, 5), 1000) * (0.5 + Math.random()));
      }
    }
  }

  /** Reads an agent's consumer, or a channel member's. */
  async subscribe(
    from: Address,
    handler: DeliveryHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    this.#check();
    const names = await consumerNames(this.names.prefix, from, options.member);
    const maxRe = this.#o.maxRedeliveries ?? 16;
    const ackWaitMs = this.#o.ackWaitMs ?? 30_000;
    const settings = {
      ackWaitMs,
      maxDeliver: maxRe + 2,
      maxAckPending: this.#o.maxAckPending ?? 1000,
      deliverNew: "channel" in from,
    };
    // Also used when reading keeps failing: the stream or the consumer may have been deleted. A consumer made
    // again resumes where this reader was (not from the start of the stream, which would replay it all).
    const open = async (resume?: { seq: number } | { time: Date }) => {
      // A stream made again starts its sequence anew: read it from its start.
      const fresh = resume !== undefined && await ensureStream(this.jsm, this.#stream);
      await ensureConsumer(this.jsm, this.names.stream, names, settings, fresh ? undefined : resume);
      return await this.js.consumers.get(this.names.stream, names.durable);
    };
    let consumer: Consumer;
    try {
      consumer = await open();
    } catch (cause) {
      throw new TransportError(`cannot create the JetStream consumer ${names.durable}`, { cause });
    }
    const sub = new NatsSubscription(this, consumer, open, names, handler, {
      address: from,
      member: options.member,
      prefetch: Math.max(1, options.prefetch ?? 64),
      maxRedeliveries: maxRe,
      ackWaitMs,
      maxHandlerMs: this.#o.maxHandlerMs ?? 600_000,
      expiresMs: Math.max(1000, this.#o.fetchExpiresMs ?? 5000),
    });
    this.#subs.add(sub);
    sub.onClose = () => this.#subs.delete(sub);
    sub.start();
    return sub;
  }

  /**
   * Closes: subscriptions stop, deliveries whose handler has not finished are
   * handed back (`nak`, redelivered at once to another reader), and the
   * connection drains (pending acks are flushed).
   */
  /**
   * Removes what `agent` created in JetStream (see
   * {@linkcode Transport.purge}): its durable consumer (`agent_<id>`), the
   * spores to it still in the stream (`{prefix}.agent.<id>.>`), its dead
   * letters (`{prefix}.dead.agent.<id>`), every revision of its card in the
   * card bucket, and, for each of `options.channels`, its member consumer
   * and its dead letters there. The stream itself, and the broadcasts in it,
   * are shared and stay.
   */
  async purge(agent: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    this.#check();
    const id = checkId(agent, "agent");
    const report: PurgeReport = { removed: [], kept: [] };
    const consumers = [await consumerNames(this.names.prefix, { agent: id })];
    for (const c of options.channels ?? []) {
      consumers.push(await consumerNames(this.names.prefix, { channel: checkId(c, "channel") }, id));
    }
    const stream = this.names.stream;
    try {
      for (const [i, names] of consumers.entries()) {
        try {
          await this.jsm.consumers.delete(stream, names.durable);
          report.removed.push(`consumer ${stream}/${names.durable}`);
        } catch (e) {
          if (apiCode(e) !== CONSUMER_NOT_FOUND) throw e;
        }
        // An agent's spores are its own; a channel's are read by every member and stay.
        const subjects = i === 0 ? [names.filter, names.dead] : [names.dead];
        for (const filter of subjects) {
          const { purged } = await this.jsm.streams.purge(stream, { filter });
          if (purged > 0) report.removed.push(`${purged} message(s) on ${filter}`);
        }
      }
      const cards = await this.directory.remove(id);
      if (cards > 0) report.removed.push(`card ${this.directory.bucket}/${token(id)}`);
      // Its trust pins (natsTrust), under every identity it had.
      const pins = `${this.names.bucket}_pins`;
      try {
        const { purged } = await this.jsm.streams.purge(`KV_${pins}`, {
          filter: `$KV.${pins}.${token(id)}.>`,
        });
        if (purged > 0) report.removed.push(`${purged} trust pin(s) in ${pins}`);
      } catch (e) {
        if (apiCode(e) !== STREAM_NOT_FOUND) throw e;
      }
    } catch (cause) {
      throw new TransportError(`cannot purge agent ${id} from JetStream`, { cause });
    }
    return report;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.events.close();
    await Promise.all([...this.#subs].map((s) => s.close(true)));
    await this.directory.close();
    try {
      await this.connection.drain();
    } catch {
      await this.connection.close().catch(() => {});
    }
    await this.#watching;
  }

  /** Async disposal closes the transport. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Runs an ack-like call; one on a closed connection fails as a `TransportError` (the broker redelivers). */
function settle(f: () => void): Promise<void> {
  try {
    f();
    return Promise.resolve();
  } catch (cause) {
    return Promise.reject(
      new TransportError("cannot settle a delivery: the connection is closed", { cause }),
    );
  }
}

/**
 * Whether a failed publish may have met a passing condition: a timeout, a lost connection, or no responder
 * (nats.js reports one as "jetstream is not enabled"; JetStream was checked at connect, so here it means the
 * stream has no leader for a moment, as during an election).
 */
function retriable(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x && depth < 4; x = (x as { cause?: unknown }).cause, depth++) {
    if (x instanceof JetStreamApiError) return x.code === 503 || x.code === 10008; // no responders, not leader
    const text = `${(x as Error).name ?? ""} ${(x as Error).message ?? ""}`.toLowerCase();
    if (/timeout|timed out|no ?responders|not ?enabled|disconnect|reconnect|connection|503/.test(text)) {
      return true;
    }
  }
  return false;
}

type StreamSettings = Partial<StreamConfig> & { name: string; subjects: string[] };

/** Makes sure the stream exists; true if this call made it. */
async function ensureStream(jsm: JetStreamManager, config: StreamSettings): Promise<boolean> {
  try {
    const info = await jsm.streams.info(config.name);
    const subjects = info.config.subjects ?? [];
    if (!config.subjects.every((s) => subjects.includes(s))) {
      throw new ConfigError(
        `stream ${config.name} exists without the subjects ${
          config.subjects!.join(", ")
        }; choose another prefix or stream`,
      );
    }
    return false;
  } catch (e) {
    if (apiCode(e) !== STREAM_NOT_FOUND) throw e;
  }
  try {
    await jsm.streams.add(config);
    return true;
  } catch (e) {
    // Another process created it at the same moment.
    await jsm.streams.info(config.name).catch(() => Promise.reject(e));
    return false;
  }
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  names: ConsumerNames,
  o: { ackWaitMs: number; maxDeliver: number; maxAckPending: number; deliverNew: boolean },
  resume?: { seq: number } | { time: Date },
): Promise<void> {
  const config = {
    durable_name: names.durable,
    filter_subject: names.filter,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(o.ackWaitMs),
    max_deliver: o.maxDeliver,
    max_ack_pending: o.maxAckPending,
    deliver_policy: o.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
    ...(resume === undefined
      ? {}
      : "seq" in resume
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: resume.seq }
      : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: resume.time.toISOString() }),
  };
  try {
    const info = await jsm.consumers.info(stream, names.durable);
    const c = info.config;
    if (c.filter_subject !== names.filter) {
      throw new ConfigError(`consumer ${names.durable} exists with another filter`);
    }
    if (c.ack_wait !== config.ack_wait || c.max_deliver !== config.max_deliver) {
      await jsm.consumers.update(stream, names.durable, {
        ack_wait: config.ack_wait,
        max_deliver: config.max_deliver,
        max_ack_pending: config.max_ack_pending,
      });
    }
    return;
  } catch (e) {
    if (apiCode(e) !== CONSUMER_NOT_FOUND) throw e;
  }
  try {
    await jsm.consumers.add(stream, config);
  } catch (e) {
    await jsm.consumers.info(stream, names.durable).catch(() => Promise.reject(e));
  }
}

interface SubscriptionSettings {
  address: Address;
  member: string | undefined;
  prefetch: number;
  maxRedeliveries: number;
  ackWaitMs: number;
  maxHandlerMs: number;
  expiresMs: number;
}

/**
 * A delivery of the NATS transport: it can also say that its handler is still working.
 *
 * @example
 * ```ts ignore
 * import { createTransport, type NatsDelivery } from "@spores/spores/nats";
 * const transport = await createTransport("nats://127.0.0.1:4222");
 * await transport.subscribe({ agent: "bob" }, async (d) => {
 *   (d as NatsDelivery).working(); // the transport also does this by itself while a handler runs
 *   await d.ack();
 * });
 * ```
 */
export interface NatsDelivery extends Delivery {
  /** Resets the redelivery timer (`ack_wait`) of this message. */
  working(): void;
}

/** One reader of one durable consumer. */
class NatsSubscription implements Subscription {
  onClose: (() => void) | undefined;
  readonly #t: NatsTransport;
  #consumer: Consumer;
  readonly #reopen: (resume: { seq: number } | { time: Date }) => Promise<Consumer>;
  readonly #started = new Date();
  #lastSeq = 0;
  readonly #names: ConsumerNames;
  readonly #handler: DeliveryHandler;
  readonly #s: SubscriptionSettings;
  readonly #inFlight = new Map<JsMsg, { done: () => void; since: number }>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #batch: ConsumerMessages | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  #space: (() => void) | undefined;

  constructor(
    t: NatsTransport,
    consumer: Consumer,
    reopen: (resume: { seq: number } | { time: Date }) => Promise<Consumer>,
    names: ConsumerNames,
    handler: DeliveryHandler,
    s: SubscriptionSettings,
  ) {
    this.#t = t;
    this.#consumer = consumer;
    this.#reopen = reopen;
    this.#names = names;
    this.#handler = handler;
    this.#s = s;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      while (this.#inFlight.size >= this.#s.prefetch && !this.#closed) {
        await new Promise<void>((r) => this.#space = r);
      }
      if (this.#closed) break;
      try {
        const batch = await this.#consumer.fetch({
          max_messages: this.#s.prefetch - this.#inFlight.size,
          expires: this.#s.expiresMs,
        });
        this.#batch = batch;
        if (this.#closed) batch.stop();
        for await (const m of batch) {
          if (this.#closed) m.nak(); // fetched as the subscription closed: back to the stream at once
          else this.#dispatch(m);
        }
        failures = 0;
      } catch {
        if (this.#closed) break;
        failures++;
        await sleep(Math.min(100 * 2 ** Math.min(failures, 5), 2000) * (0.5 + Math.random()));
        // Failing again and again: the consumer (or the stream) may be gone; make it again.
        if (failures % 3 === 0 && !this.#closed) {
          const held = [...this.#inFlight.keys()].map((m) => m.info.streamSequence);
          const from = Math.min(this.#lastSeq + 1, ...held);
          const resume = this.#lastSeq > 0 ? { seq: from } : { time: this.#started };
          this.#consumer = await this.#reopen(resume).catch(() => this.#consumer);
        }
      } finally {
        this.#batch = undefined;
      }
    }
  }

  #dispatch(m: JsMsg): void {
    const deliveries = m.info.deliveryCount;
    this.#lastSeq = Math.max(this.#lastSeq, m.info.streamSequence);
    const expires = Number(m.headers?.get(EXPIRES_HEADER) || 0);
    if (expires > 0 && Date.now() > expires) {
      this.#t.expired++;
      m.ack();
      return;
    }
    if (deliveries > this.#s.maxRedeliveries + 1) {
      void this.#deadLetterOrNak(m, true).catch(() => {});
      return;
    }
    let settled = false;
    const done = () => {
      settled = true;
      this.#inFlight.delete(m);
      if (this.#inFlight.size === 0) {
        // Nothing left to keep alive: no interval may outlive the work (it would keep the process running).
        clearInterval(this.#heartbeat);
        this.#heartbeat = undefined;
      }
      this.#space?.();
      this.#space = undefined;
      if (this.#closed && this.#inFlight.size === 0) this.onClose?.(); // the transport may forget it now
    };
    // While the handler runs, in-progress acks keep the message here (see #keepAlive).
    this.#inFlight.set(m, { done, since: Date.now() });
    this.#heartbeat ??= setInterval(() => this.#keepAlive(), Math.max(50, Math.floor(this.#s.ackWaitMs / 2)));
    const id = m.headers?.get(MSG_ID) ?? "";
    const priority = Number(m.headers?.get(PRIORITY_HEADER) || 4);
    const delivery: NatsDelivery = {
      bytes: new Uint8Array(m.data),
      redeliveries: Math.max(0, deliveries - 1),
      dedupId: id && !id.startsWith(OWN_ID) ? id : undefined,
      priority: Number.isInteger(priority) && priority >= 0 && priority <= 9 ? priority : 4,
      ack: () => {
        if (settled) return Promise.resolve();
        done();
        return settle(() => m.ack());
      },
      nack: () => {
        if (settled) return Promise.resolve();
        done();
        // The last allowed delivery failed: dead-letter now rather than after one more round trip.
        if (deliveries >= this.#s.maxRedeliveries + 1) return this.#deadLetterOrNak(m, true);
        return settle(() => m.nak());
      },
      deadLetter: async () => {
        if (settled) return;
        done();
        await this.#deadLetterOrNak(m);
      },
      working: () => {
        if (!settled) m.working();
      },
    };
    queueMicrotask(async () => {
      try {
        await this.#handler(delivery);
      } catch {
        await delivery.nack().catch(() => {});
      }
    });
  }

  /**
   * Sends an in-progress ack for every message whose handler has run for a while (up to `maxHandlerMs`), so
   * a slow handler keeps it; one timer per subscription, stopped when nothing is in flight.
   */
  #keepAlive(): void {
    const now = Date.now();
    const due = now - Math.floor(this.#s.ackWaitMs / 2);
    for (const [m, { since }] of this.#inFlight) {
      if (since <= due && now - since <= this.#s.maxHandlerMs) {
        try {
          m.working();
        } catch {
          // the connection is closed: the server redelivers after ack_wait
        }
      }
    }
    if (this.#inFlight.size === 0) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  }

  /** Copies `m` to the dead-letter subject (awaiting the PubAck), then ends its delivery (`term`). */
  async #deadLetter(m: JsMsg): Promise<void> {
    const h = headers();
    h.set("Spores-Subject", m.subject);
    h.set("Spores-Deliveries", String(m.info.deliveryCount));
    const expires = m.headers?.get(EXPIRES_HEADER);
    if (expires) h.set(EXPIRES_HEADER, expires);
    const id = m.headers?.get(MSG_ID);
    if (id) h.set("Spores-Id", id);
    await this.#t.send(this.#names.dead, m.data, h, `dead-${this.#t.names.stream}-${m.info.streamSequence}`);
    this.#t.deadLettered++;
    m.term(); // no reason: nats-server 2.9 ignores "+TERM <reason>" (the reason came with 2.10)
  }

  /**
   * Dead-letters `m`; if JetStream cannot take the copy, `m` goes back (`nak`) and the failure is thrown.
   * `own`: the transport decided it (its redelivery limit), not the agent: reported as a transport event.
   */
  async #deadLetterOrNak(m: JsMsg, own = false): Promise<void> {
    try {
      await this.#deadLetter(m);
    } catch (e) {
      await settle(() => m.nak()).catch(() => {});
      throw e;
    }
    if (own) {
      const deliveries = m.info.deliveryCount;
      this.#t.events.deadLettered({
        address: this.#s.address,
        member: this.#s.member,
        size: m.data.length,
        attempts: deliveries,
        reason: `delivered ${deliveries} times (limit ${
          this.#s.maxRedeliveries + 1
        }) without an acknowledgement`,
        store: this.#names.dead,
      });
    }
  }

  /**
   * Stops fetching. Running handlers still settle their messages; with
   * `handBack` (the transport closes), their messages are `nak`ed now.
   */
  async close(handBack = false): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#batch?.stop();
      this.#space?.();
      await this.#loop?.catch(() => {});
      // Until its running handlers finish, the transport keeps it (to hand their messages back on close).
      if (this.#inFlight.size === 0) this.onClose?.();
    }
    if (handBack) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
      for (const [m, { done }] of [...this.#inFlight]) {
        done();
        try {
          m.nak();
        } catch {
          // the connection is gone: the server redelivers after ack_wait
        }
      }
    }
  }
}
