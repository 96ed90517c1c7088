/**
 * The MQTT transport (mqtt.js): one persistent session per subscription with
 * a fixed client id (`clean: false`, and a session expiry interval in MQTT
 * v5), so the broker keeps an away agent's messages; QoS 1 (or 2) with the
 * acknowledgement sent only after the handler finished; resubscription on
 * every connection; bounded redelivery, then the agent's dead-letter topic;
 * shared subscriptions for several processes of one agent; v5 message expiry
 * for TTL.
 *
 * See `./topics.ts` for the topic scheme and `docs/TRANSPORTS.md` for what
 * each promise means on MQTT.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import { generate } from "mqtt-packet";
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
import { type BrokerUrl, connectClient, DEFERRED, describeUrl, parseBrokerUrl } from "./connection.ts";
import { TransportEvents } from "../events.ts";
import { MqttDirectory } from "./directory.ts";
import { cardTopic, checkPrefix, deadLetterTopic, sessionOf, type SessionTopics, topicOf } from "./topics.ts";
import type { MqttTransportOptions } from "./options.ts";
export type { MqttTransportOptions } from "./options.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
/** Mosquitto's count of messages it dropped (full session queues). */
const DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped";
/** PUBACK/PUBREC reason "No matching subscribers" (MQTT v5). */
const NO_MATCHING_SUBSCRIBERS = 16;

type UserProperties = Record<string, string | string[]>;
const prop = (p: UserProperties | undefined, k: string): string | undefined => {
  const v = p?.[k];
  return Array.isArray(v) ? v[0] : v;
};

/** Counters of what the transport did on its own. */
export interface MqttTransportStats {
  /** Messages dropped at read time because their TTL had passed. */
  expired: number;
  /** Redeliveries made after a `nack`. */
  redelivered: number;
  /** Messages moved to a dead-letter topic. */
  deadLettered: number;
  /** Connections made by subscriptions after their first (reconnections). */
  reconnections: number;
  /** Sessions closed because another connection took over their client id. */
  takenOver: number;
  /** Renewed subscriptions the broker refused (after a reconnection). */
  subscribeFailures: number;
  /**
   * Messages the broker dropped since this transport connected, for any client (Mosquitto's
   * `$SYS/broker/publish/messages/dropped`, updated every `sys_interval`): a session's queue was full
   * (`max_queued_messages`). Stays 0 where `$SYS` cannot be read.
   */
  brokerDropped: number;
}

/** Details of a `dropped` event of {@linkcode MqttTransport}. */
export interface MqttDropped {
  /** Messages dropped since the last event. */
  readonly dropped: number;
  /** Messages dropped since the transport connected. */
  readonly total: number;
}

/**
 * An MQTT connection for agents. It dispatches a `dropped` event
 * ({@linkcode MqttDropped}) when the broker reports that it dropped messages
 * because a session's queue was full.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/mqtt";
 * const transport = await createTransport("mqtt://127.0.0.1:1883", { prefix: "acme" });
 * await transport.publish({ agent: "bob" }, new Uint8Array([1]));
 * await transport.close();
 * ```
 */
export class MqttTransport extends EventTarget implements Transport {
  /** `"mqtt"`. */
  readonly name = "mqtt";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** Agent cards as retained messages. */
  readonly directory: MqttDirectory;
  /** Link lost and back (the publishing connection's), and messages dead-lettered after `maxDeliveries`. */
  readonly events: TransportEvents;
  /** What the transport did on its own. */
  readonly stats: MqttTransportStats = {
    expired: 0,
    redelivered: 0,
    deadLettered: 0,
    reconnections: 0,
    takenOver: 0,
    subscribeFailures: 0,
    brokerDropped: 0,
  };
  /** The connection that publishes and reads cards (a clean session with a random client id). */
  readonly client: MqttClient;
  readonly #url: BrokerUrl;
  readonly #o: MqttTransportOptions;
  readonly #prefix: string;
  readonly #qos: 1 | 2;
  readonly #subs = new Set<MqttSubscription>();
  readonly #sessions = new Set<string>();
  readonly #unrouted = new Set<number>();
  readonly #deadLetterSessions = new Set<string>();
  #closed = false;

  private constructor(url: BrokerUrl, client: MqttClient, options: MqttTransportOptions, prefix: string) {
    super();
    this.#url = url;
    this.client = client;
    this.#o = options;
    this.#prefix = prefix;
    this.#qos = options.qos ?? 1;
    this.directory = new MqttDirectory(client, prefix);
    const where = new URL(url.href);
    this.events = new TransportEvents(
      "mqtt",
      describeUrl(url.href),
      `${where.hostname}:${where.port || (url.tls ? 443 : 80)}`,
    );
    // mqtt.js reconnects by itself: "close" (again after each failed attempt: one outage) is the link lost,
    // "connect" the link back.
    let lastError: unknown;
    client.on("error", (e: unknown) => {
      if (e !== DEFERRED) lastError = e;
    });
    client.on("close", () => {
      this.events.linkDown(lastError);
      lastError = undefined;
    });
    client.on("connect", () => this.events.linkUp());
    client.on("packetreceive", (packet) => {
      if (
        (packet.cmd === "puback" || packet.cmd === "pubrec") &&
        packet.reasonCode === NO_MATCHING_SUBSCRIBERS && packet.messageId !== undefined
      ) {
        this.#unrouted.add(packet.messageId);
      }
    });
    if (options.watchDrops !== false) this.#watchDrops();
    const v5 = (options.protocolVersion ?? 5) === 5;
    this.capabilities = Object.freeze({
      durable: options.durable ?? false,
      ordered: true,
      priority: false,
      ttl: v5,
      maxMessageBytes: options.maxMessageBytes ?? 16 << 20,
      broadcast: true,
    });
  }

  /** Connects (failing with a `TransportError` if the broker cannot be reached). */
  static async connect(url: string, options: MqttTransportOptions = {}): Promise<MqttTransport> {
    const prefix = checkPrefix(options.prefix ?? "spores");
    const broker = parseBrokerUrl(url);
    const version = options.protocolVersion ?? 5;
    const qos = options.qos ?? 1;
    if (qos !== 1 && qos !== 2) throw new ConfigError("qos must be 1 or 2");
    if (qos === 2 && version !== 5) {
      throw new ConfigError("qos 2 needs MQTT v5 (its PUBREC can only wait for the handler there)");
    }
    if (options.instance !== undefined) checkId(options.instance, "instance");
    const client = await connectClient(broker, options, { persistent: false });
    return new MqttTransport(broker, client, options, prefix);
  }

  #watchDrops(): void {
    let baseline: number | undefined;
    this.client.on("message", (topic, payload) => {
      if (topic !== DROPPED_TOPIC) return;
      const value = Number(new TextDecoder().decode(payload));
      if (!Number.isSafeInteger(value) || value < 0) return;
      if (baseline === undefined || value < baseline) baseline = value; // first reading, or a broker restart
      const total = value - baseline;
      const dropped = total - this.stats.brokerDropped;
      if (dropped <= 0) return;
      this.stats.brokerDropped = total;
      this.dispatchEvent(new CustomEvent<MqttDropped>("dropped", { detail: { dropped, total } }));
    });
    const watch = () => void this.client.subscribeAsync(DROPPED_TOPIC, { qos: 0 }).catch(() => {});
    this.client.on("connect", watch);
    watch();
  }

  /** Topic prefix. */
  get prefix(): string {
    return this.#prefix;
  }

  /** Client ids of the persistent sessions this transport opened (see {@linkcode removeSession}). */
  get sessions(): ReadonlySet<string> {
    return this.#sessions;
  }

  #check(): void {
    if (this.#closed) throw new TransportError("mqtt transport is closed");
  }

  /**
   * Publishes to `{prefix}/agent/{to}/{type}` or `{prefix}/broadcast/{channel}/{type}`; resolves when
   * the broker acknowledged it. On MQTT v5, a direct message that no session is subscribed for is a
   * `TransportError` (the broker would drop it).
   */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    this.#check();
    checkMessageSize(bytes, this.capabilities.maxMessageBytes);
    const topic = topicOf(this.#prefix, to, options.type);
    let properties: IClientOptions["properties"] & Record<string, unknown> | undefined;
    if (this.capabilities.ttl) {
      const user: Record<string, string> = {};
      if (options.ttlMs !== undefined) {
        const ttl = Math.max(1, Math.floor(options.ttlMs));
        user.e = String(Date.now() + ttl);
        properties = { messageExpiryInterval: Math.ceil(ttl / 1000) };
      }
      if (options.dedupId !== undefined) user.i = checkId(options.dedupId, "dedup id");
      if (options.priority !== undefined && options.priority !== 4) user.p = String(options.priority);
      if (Object.keys(user).length > 0) properties = { ...properties, userProperties: user };
    }
    const unrouted = await this.#send(topic, bytes, properties, "agent" in to ? to.agent : to.channel);
    if (unrouted && "agent" in to) {
      throw new TransportError(
        `no session is subscribed for agent ${to.agent}: the broker dropped the message`,
      );
    }
  }

  /** Publishes; resolves true when the broker said no subscription matched (v5). */
  async #send(
    topic: string,
    bytes: Uint8Array,
    properties: Record<string, unknown> | undefined,
    what: string,
  ): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = this.#o.publishTimeoutMs ?? 30_000;
    try {
      const packet = await Promise.race([
        this.client.publishAsync(topic, asBuffer(bytes), { qos: this.#qos, properties }),
        new Promise<never>((_, reject) =>
          timer = setTimeout(() => reject(new Error(`no acknowledgement in ${timeout} ms`)), timeout)
        ),
      ]);
      const id = packet?.messageId;
      return id !== undefined && this.#unrouted.delete(id);
    } catch (cause) {
      throw new TransportError(`the MQTT broker did not acknowledge a publish to ${what}`, { cause });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Subscribes through the persistent session of the agent (or of the channel member). */
  async subscribe(
    from: Address,
    handler: DeliveryHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    this.#check();
    const topics = sessionOf(this.#prefix, from, options.member, this.#o.instance);
    return await this.#open(topics, handler, options.prefetch ?? 64, false, {
      address: from,
      member: options.member,
    });
  }

  /**
   * Reads the dead letters of `agent` (`{prefix}/dlq/{agent}`) through their own persistent session.
   *
   * @example
   * ```ts ignore
   * import { MqttTransport } from "@spores/spores/mqtt";
   * const t = await MqttTransport.connect("mqtt://127.0.0.1:1883");
   * const sub = await t.subscribeDeadLetters("bob", async (d) => {
   *   console.log("dead letter of", d.bytes.length, "bytes after", d.redeliveries, "redeliveries");
   *   await d.ack();
   * });
   * ```
   */
  async subscribeDeadLetters(agent: string, handler: DeliveryHandler): Promise<Subscription> {
    this.#check();
    const topic = deadLetterTopic(this.#prefix, agent);
    return await this.#open({ filter: topic, clientId: topic, owner: agent }, handler, 16, true);
  }

  async #open(
    topics: SessionTopics,
    handler: DeliveryHandler,
    prefetch: number,
    deadLetters = false,
    source?: { address: Address; member?: string },
  ): Promise<Subscription> {
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) {
      throw new ConfigError("prefetch must be an integer in 1..65535");
    }
    const sub = new MqttSubscription(this, topics, handler, prefetch, deadLetters, source);
    this.#sessions.add(topics.clientId);
    this.#subs.add(sub);
    sub.onClose = () => this.#subs.delete(sub);
    try {
      await sub.start();
    } catch (e) {
      this.#subs.delete(sub);
      await sub.close();
      throw e;
    }
    return sub;
  }

  /** @internal Connects a session of this transport. */
  connectSession(
    clientId: string,
    receiveMaximum: number,
    extra: Partial<IClientOptions>,
    setup: (client: MqttClient) => void,
  ): Promise<MqttClient> {
    return connectClient(this.#url, this.#o, {
      clientId,
      persistent: true,
      sessionExpirySeconds: this.#o.sessionExpirySeconds,
      receiveMaximum,
      extra,
    }, setup);
  }

  /** @internal Settings subscriptions read. */
  get settings(): { qos: 1 | 2; v5: boolean; maxDeliveries: number } {
    return {
      qos: this.#qos,
      v5: (this.#o.protocolVersion ?? 5) === 5,
      maxDeliveries: this.#o.maxDeliveries ?? 16,
    };
  }

  /**
   * @internal Publishes `bytes` to the dead-letter topic of `agent`, making sure a persistent session
   * holds them for a reader (see {@linkcode subscribeDeadLetters}).
   */
  async deadLetter(agent: string, bytes: Uint8Array, deliveries: number, from: string): Promise<void> {
    const topic = deadLetterTopic(this.#prefix, agent);
    const v5 = this.settings.v5;
    const properties = v5 ? { userProperties: { n: String(deliveries), t: from } } : undefined;
    if (!v5 && !this.#deadLetterSessions.has(topic)) await this.#ensureSession(topic);
    if (await this.#send(topic, bytes, properties, `dead letters of ${agent}`)) {
      // Nobody holds this agent's dead letters yet: create the session that will, and publish again.
      await this.#ensureSession(topic);
      if (await this.#send(topic, bytes, properties, `dead letters of ${agent}`)) {
        throw new TransportError(`no session holds the dead letters of ${agent}`);
      }
    }
    this.stats.deadLettered++;
  }

  async #ensureSession(topic: string): Promise<void> {
    // Dead letters the session holds must not be taken (and acknowledged) by this connection: hold them.
    let resumed = false;
    const c = await this.connectSession(topic, 1, { customHandleAcks: () => {} }, (client) => {
      client.handleMessage = () => {};
      client.once("connect", (connack) => resumed = connack.sessionPresent === true);
    });
    try {
      if (!resumed) await c.subscribeAsync(topic, { qos: this.#qos });
      this.#deadLetterSessions.add(topic);
    } catch (cause) {
      throw new TransportError("cannot create the dead-letter session", { cause });
    } finally {
      c.end(true);
    }
  }

  /**
   * Ends the persistent session `clientId` on the broker (its subscriptions
   * and queued messages go): for an agent retired for good, or for tests.
   *
   * @example
   * ```ts ignore
   * import { MqttTransport, sessionOf } from "@spores/spores/mqtt";
   * const t = await MqttTransport.connect("mqtt://127.0.0.1:1883");
   * await t.removeSession(sessionOf(t.prefix, { agent: "old-agent" }).clientId);
   * ```
   */
  async removeSession(clientId: string): Promise<void> {
    const c = await connectClient(this.#url, this.#o, { clientId, persistent: false });
    await c.endAsync().catch(() => {});
    this.#sessions.delete(clientId);
  }

  /**
   * Ends the persistent sessions `agent` created (see
   * {@linkcode Transport.purge}), with their subscriptions and the spores
   * queued in them: its own (`{prefix}/agent/<id>`, or
   * `{prefix}/agent/<id>/<instance>` for this transport's `instance`), its
   * dead letters' (`{prefix}/dlq/<id>`), and its member session on each of
   * `options.channels`; and clears its retained card. The sessions of the
   * agent's other instances are not known here: purge from each (their
   * names are reported as kept). MQTT cannot tell whether a session exists
   * without resuming it, so each session name is reported as removed. Spores
   * published to the agent while no session holds its topic are refused
   * (MQTT v5) or dropped (3.1.1) by the broker.
   */
  async purge(agent: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    this.#check();
    const id = checkId(agent, "agent");
    const instance = this.#o.instance;
    const sessions = [
      sessionOf(this.#prefix, { agent: id }, undefined, instance).clientId,
      deadLetterTopic(this.#prefix, id),
      ...(options.channels ?? []).map((c) =>
        sessionOf(this.#prefix, { channel: checkId(c, "channel") }, id, instance).clientId
      ),
    ];
    const report: PurgeReport = { removed: [], kept: [] };
    try {
      for (const clientId of sessions) {
        await this.removeSession(clientId);
        this.#deadLetterSessions.delete(clientId);
        report.removed.push(`session ${clientId}`);
      }
      await this.directory.remove(id);
      report.removed.push(`retained ${cardTopic(this.#prefix, id)}`);
    } catch (cause) {
      throw new TransportError(`cannot purge agent ${id} from the MQTT broker`, { cause });
    }
    if (instance !== undefined) {
      report.kept.push({
        name: `session ${this.#prefix}/agent/${id}/<other instances>`,
        reason: "sessions of other instances are purged from their own transport",
      });
    }
    return report;
  }

  /** Closes subscriptions (unacknowledged messages stay with the broker) and the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.events.close();
    await Promise.all([...this.#subs].map((s) => s.close()));
    await Promise.race([this.client.endAsync(), sleep(2000)]).catch(() => {});
    this.client.end(true);
  }
}

type Outcome = "ack" | "nack" | "dead" | "closed";

/** A received message waiting for its acknowledgement. */
interface Inbound {
  readonly stream: unknown;
  readonly messageId: number;
  readonly qos: number;
  settled: boolean;
  ack: boolean;
}

/** One persistent session reading one topic filter; handlers run concurrently, acknowledgements in order. */
class MqttSubscription implements Subscription {
  onClose: (() => void) | undefined;
  readonly #t: MqttTransport;
  readonly #topics: SessionTopics;
  readonly #handler: DeliveryHandler;
  readonly #prefetch: number;
  readonly #deadLetters: boolean;
  readonly #source: { address: Address; member?: string } | undefined;
  readonly #closing = Promise.withResolvers<"closed">();
  /** Messages received and not yet acknowledged, in the order they came (acknowledgements keep it). */
  readonly #window: Inbound[] = [];
  readonly #handling = new Set<Promise<void>>();
  #client: MqttClient | undefined;
  #closed = false;

  constructor(
    t: MqttTransport,
    topics: SessionTopics,
    handler: DeliveryHandler,
    prefetch: number,
    deadLetters: boolean,
    source?: { address: Address; member?: string },
  ) {
    this.#source = source;
    this.#t = t;
    this.#topics = topics;
    this.#handler = handler;
    this.#prefetch = prefetch;
    this.#deadLetters = deadLetters;
  }

  async start(): Promise<void> {
    const { qos, v5 } = this.#t.settings;
    // Messages of a resumed session arrive right after CONNACK: the hooks are in place before connecting.
    // Each hook takes the message and tells mqtt.js not to acknowledge it (DEFERRED), so that mqtt.js reads
    // on while handlers run; #flush sends the PUBACK (PUBREC for QoS 2) once the handler settled, in the
    // order the messages came, as MQTT requires. In MQTT v5 the broker sends at most `prefetch` (the
    // receive maximum) unacknowledged messages.
    const extra: Partial<IClientOptions> = v5
      ? {
        customHandleAcks: (_topic, _message, packet, done) => {
          this.#receive(packet);
          done(DEFERRED);
        },
      }
      : {};
    let resumed = false;
    const client = await this.#t.connectSession(this.#topics.clientId, this.#prefetch, extra, (c) => {
      this.#client = c;
      c.once("connect", (connack) => resumed = connack.sessionPresent === true);
      if (!v5) {
        c.handleMessage = (packet, done) => {
          this.#receive(packet);
          done(DEFERRED);
        };
      }
      c.on("packetreceive", (packet) => {
        // Another connection took this client id over (MQTT v5 reason 142): two processes share one
        // identity without an `instance` each. Stop here instead of taking it back and forth.
        if (packet.cmd === "disconnect" && packet.reasonCode === 142) {
          this.#t.stats.takenOver++;
          void this.close();
        }
      });
    });
    this.#client = client;
    if (this.#closed) {
      client.end(true);
      return;
    }
    if (resumed) {
      // The session exists and keeps its subscription: renew it without waiting.
      this.#resubscribe(client);
    } else {
      try {
        await client.subscribeAsync(this.#topics.filter, { qos });
      } catch (cause) {
        throw new TransportError(`cannot subscribe to ${this.#topics.filter}`, { cause });
      }
    }
    // Resubscribe on every reconnection: a session that expired, or a broker that lost it, has no
    // subscription any more (mqtt.js does not do it for persistent sessions).
    client.on("connect", () => {
      this.#t.stats.reconnections++;
      this.#resubscribe(client);
    });
  }

  #receive(packet: IPublishPacket): void {
    const c = this.#client;
    const entry: Inbound = {
      stream: c?.stream,
      messageId: packet.messageId ?? 0,
      qos: packet.qos,
      settled: false,
      ack: false,
    };
    if (entry.qos === 0) entry.settled = true; // nothing to acknowledge
    this.#window.push(entry);
    const p = this.#handle(packet).then((ack) => {
      entry.settled = true;
      entry.ack = ack;
      this.#flush();
    }, () => {
      entry.settled = true;
      this.#flush();
    });
    this.#handling.add(p);
    void p.finally(() => this.#handling.delete(p));
  }

  /** Acknowledges settled messages from the front of the window. */
  #flush(): void {
    const c = this.#client;
    const stream = c?.stream;
    for (;;) {
      const head = this.#window[0];
      if (!head) return;
      // A message that came on a connection since lost is sent again by the broker: nothing to acknowledge.
      if (head.stream !== stream) {
        this.#window.shift();
        continue;
      }
      if (!head.settled) return;
      this.#window.shift();
      if (head.ack && head.qos > 0 && c?.connected) {
        const cmd = head.qos === 2 ? "pubrec" : "puback";
        c.stream.write(
          generate({ cmd, messageId: head.messageId }, { protocolVersion: this.#t.settings.v5 ? 5 : 4 }),
        );
      }
    }
  }

  #resubscribe(client: MqttClient): void {
    client.subscribeAsync(this.#topics.filter, { qos: this.#t.settings.qos }).catch(() => {
      if (!this.#closed) this.#t.stats.subscribeFailures++;
    });
  }

  /** Runs the handler until it acknowledges (true) or the subscription closes (false: no acknowledgement). */
  async #handle(packet: IPublishPacket): Promise<boolean> {
    if (this.#closed) return false;
    const user = packet.properties?.userProperties as UserProperties | undefined;
    const expiresAt = Number(prop(user, "e") ?? 0);
    if (expiresAt > 0 && Date.now() > expiresAt) {
      this.#t.stats.expired++;
      return true;
    }
    const payload = packet.payload;
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : new Uint8Array(payload);
    const priority = Number(prop(user, "p") ?? 4);
    const dedupId = prop(user, "i");
    const { maxDeliveries } = this.#t.settings;
    // A message the broker sends again (after a reconnection) has been delivered at least once.
    let redeliveries = packet.dup ? 1 : 0;
    if (this.#deadLetters) redeliveries = Number(prop(user, "n") ?? redeliveries);
    for (;;) {
      if (this.#closed) return false;
      if (!this.#deadLetters && redeliveries >= maxDeliveries) {
        if (await this.#moveToDeadLetters(bytes, redeliveries)) {
          // Moved by the transport on its own (no handler settled it in that many deliveries): reported.
          if (this.#source) {
            this.#t.events.deadLettered({
              ...this.#source,
              size: bytes.length,
              attempts: redeliveries,
              reason: `delivered ${redeliveries} times (limit ${maxDeliveries}) without an acknowledgement`,
              store: deadLetterTopic(this.#t.prefix, this.#topics.owner),
            });
          }
          return true;
        }
      } else {
        const outcome = await this.#attempt(bytes, redeliveries, priority, dedupId);
        if (outcome === "ack") return true;
        if (outcome === "closed") return false;
        if (outcome === "dead" && await this.#moveToDeadLetters(bytes, redeliveries + 1)) return true;
        if (outcome === "nack") this.#t.stats.redelivered++;
      }
      redeliveries++;
      const pause = Math.min(20 * 2 ** Math.min(redeliveries, 10), 2000);
      if (await Promise.race([sleep(pause), this.#closing.promise]) === "closed") return false;
    }
  }

  async #moveToDeadLetters(bytes: Uint8Array, deliveries: number): Promise<boolean> {
    try {
      await this.#t.deadLetter(this.#topics.owner, bytes, deliveries, this.#topics.filter);
      return true;
    } catch {
      return false; // kept: tried again after a pause
    }
  }

  async #attempt(
    bytes: Uint8Array,
    redeliveries: number,
    priority: number,
    dedupId?: string,
  ): Promise<Outcome> {
    const settled = Promise.withResolvers<Outcome>();
    let outcome: Outcome | undefined;
    const settle = (o: Outcome) => {
      if (!outcome) {
        outcome = o;
        settled.resolve(o);
      }
      return Promise.resolve();
    };
    const delivery: Delivery = {
      bytes,
      redeliveries,
      dedupId,
      priority,
      ack: () => settle("ack"),
      nack: () => settle("nack"),
      deadLetter: () => settle("dead"),
    };
    const running = (async () => {
      try {
        await this.#handler(delivery);
      } catch {
        await settle("nack");
      }
    })();
    // Closing does not wait for a running handler: what it has not settled stays with the broker.
    await Promise.race([running, this.#closing.promise]);
    if (outcome) return outcome;
    // A handler that returns without settling keeps the message (and this session) until it does.
    return await Promise.race([settled.promise, this.#closing.promise]);
  }

  /** Stops deliveries: the connection ends without acknowledging what is in flight, so the broker keeps it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.resolve("closed");
    // A message whose handler already acknowledged it gets its PUBACK before the connection ends.
    await Promise.allSettled([...this.#handling]);
    const c = this.#client;
    if (c) {
      await Promise.race([new Promise<void>((resolve) => c.end(false, {}, () => resolve())), sleep(1000)]);
      c.end(true);
    }
    this.onClose?.();
  }
}
