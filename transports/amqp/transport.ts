/**
 * The RabbitMQ transport (AMQP 0-9-1, amqplib): a durable topic exchange,
 * durable per-agent queues with priorities and a dead-letter exchange,
 * persistent messages with per-message TTL, publisher confirms with
 * mandatory routing, manual acknowledgements, and reconnection that
 * re-declares the topology and re-subscribes.
 *
 * ```text
 * exchange  {exchange} (topic, durable)              routing keys agent.<to>.<type>, broadcast.<channel>.<type>
 * queue     {exchange}.agent.<id>                    bound to agent.<id>.#; x-max-priority 9 (classic) or quorum
 * queue     {exchange}.channel.<channel>.<member>    bound to broadcast.<channel>.#; one per channel member
 * exchange  {exchange}.dlx (topic, durable)          dead letters keep their routing key
 * queue     {exchange}.dead.<id>                     an agent's dead letters (bound to agent.<id>.#)
 * queue     {exchange}.card.<id>                     last-value queue of an agent's card (see AmqpDirectory)
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type Channel, type ChannelModel, type ConfirmChannel, connect, type ConsumeMessage } from "amqplib";
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
import { AmqpDirectory } from "./directory.ts";
import { describeUrl, explainConnectError, hostPort } from "../connect_error.ts";
import { TransportEvents } from "../events.ts";
import type { AmqpTlsOptions, AmqpTransportOptions } from "./options.ts";
export type { AmqpTlsOptions, AmqpTransportOptions } from "./options.ts";

/** A publish whose confirm was lost with its channel (connection cut, channel closed): outcome unknown. */
function confirmLost(cause: unknown): boolean {
  const m = cause instanceof Error ? cause.message : "";
  return /channel closed|connection closed|Channel ended|socket|ECONNRESET|EPIPE/i.test(m);
}

const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The nodes a URL names: its own host, then each `host:port` of its `nodes` parameter
 * (`amqp://user:pass@host1:5672/vhost?nodes=host2:5672,host3:5672`), each with the URL's credentials,
 * virtual host and other parameters.
 */
function endpointsOf(url: string): string[] {
  const u = new URL(url);
  const list = u.searchParams.get("nodes");
  u.searchParams.delete("nodes");
  const endpoints = [u.toString()];
  for (const node of (list ?? "").split(",").filter((n) => n.length > 0)) {
    const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(node.trim());
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) {
      throw new ConfigError(
        `nodes must be host:port pairs separated by commas (got ${JSON.stringify(node)})`,
      );
    }
    const other = new URL(u);
    other.hostname = m[1]!.includes(":") ? `[${m[1]}]` : m[1]!;
    other.port = String(port);
    endpoints.push(other.toString());
  }
  return endpoints;
}

interface SubState {
  queue: string;
  setup: (ch: Channel) => Promise<void>;
  handler: DeliveryHandler;
  prefetch: number;
  channel: Channel | undefined;
  closed: boolean;
  counts: Map<string, number>;
}

/**
 * A RabbitMQ connection for agents.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/amqp";
 * const transport = await createTransport("amqp://guest:guest@127.0.0.1:5672");
 * await transport.close();
 * ```
 */
export class AmqpTransport implements Transport {
  /** `"amqp"`. */
  readonly name = "amqp";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** Agent cards in RabbitMQ. */
  readonly directory: AmqpDirectory;
  /** Link lost and back (with `?nodes=`, whichever node it is back on). */
  readonly events: TransportEvents;
  /** Connections made so far (1 + reconnections). */
  connections = 0;
  /** Publishes made again after their confirm was lost with their channel. */
  republished = 0;
  readonly #endpoints: string[];
  #next = 0;
  readonly #o: Required<Omit<AmqpTransportOptions, "tls">> & { tls?: AmqpTlsOptions };
  readonly #subs = new Set<SubState>();
  readonly #declared = new Set<string>();
  #conn: ChannelModel | undefined;
  #pub: Channel | ConfirmChannel | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  #seq = 0;
  readonly #returned = new Set<string>();
  readonly #retiring = new Set<() => void>();
  /** Why the broker closed a publish channel (a channel error, the connection still up). */
  readonly #refusals = new WeakMap<Channel, unknown>();

  private constructor(url: string, options: AmqpTransportOptions) {
    this.#endpoints = endpointsOf(url);
    this.#o = {
      exchange: options.exchange ?? "spores",
      queueType: options.queueType ?? "classic",
      heartbeatSeconds: options.heartbeatSeconds ?? 15,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      publishTimeoutMs: options.publishTimeoutMs ?? 30_000,
      maxBackoffMs: options.maxBackoffMs ?? 5000,
      maxMessageBytes: options.maxMessageBytes ?? 16 << 20,
      confirms: options.confirms ?? true,
      publishAttempts: options.publishAttempts ?? 5,
      tls: options.tls,
    };
    if (!Number.isSafeInteger(this.#o.publishAttempts) || this.#o.publishAttempts < 1) {
      throw new ConfigError("publishAttempts must be a whole number from 1");
    }
    this.events = new TransportEvents(
      "amqp",
      this.#endpoints.map((e, i) => i === 0 ? describeUrl(e, { path: true }) : hostPort(e, 5672)).join(","),
      hostPort(url, 5672),
    );
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(this.#o.exchange)) {
      throw new ConfigError("exchange must be 1..64 of [A-Za-z0-9._:-]");
    }
    this.directory = new AmqpDirectory(this, this.#o.exchange);
    this.capabilities = Object.freeze({
      durable: true,
      ordered: true,
      priority: this.#o.queueType === "classic",
      ttl: true,
      maxMessageBytes: this.#o.maxMessageBytes,
      broadcast: true,
    });
  }

  /** Connects and declares the topology (a `TransportError` if the broker cannot be reached). */
  static async connect(url: string, options: AmqpTransportOptions = {}): Promise<AmqpTransport> {
    let u: URL;
    try {
      u = new URL(url);
    } catch (cause) {
      throw new ConfigError("not a valid amqp:// URL", { cause });
    }
    if (u.protocol !== "amqp:" && u.protocol !== "amqps:") {
      throw new ConfigError(`not an amqp:// URL: ${describeUrl(url, { path: true })}`);
    }
    const t = new AmqpTransport(url, options);
    try {
      await t.#open();
    } catch (cause) {
      throw new TransportError(
        `cannot reach RabbitMQ at ${describeUrl(url, { path: true })}: ${
          explainConnectError(cause, hostPort(url, 5672))
        }`,
        { cause },
      );
    }
    return t;
  }

  /** Exchange name. */
  get exchange(): string {
    return this.#o.exchange;
  }

  async #open(): Promise<void> {
    // Try every node once, starting with the one after the node last lost.
    let last: unknown;
    for (let i = 0; i < this.#endpoints.length; i++) {
      const at = (this.#next + i) % this.#endpoints.length;
      try {
        await this.#openAt(this.#endpoints[at]!);
        this.#next = at;
        return;
      } catch (e) {
        last = e;
      }
    }
    throw last;
  }

  async #openAt(url: string): Promise<void> {
    const u = new URL(url);
    const tls = u.protocol === "amqps:"
      ? {
        ca: this.#o.tls?.ca,
        cert: this.#o.tls?.cert,
        key: this.#o.tls?.key,
        servername: this.#o.tls?.servername,
      }
      : {};
    if (!u.searchParams.has("heartbeat")) u.searchParams.set("heartbeat", String(this.#o.heartbeatSeconds));
    // noDelay: without it Nagle's algorithm holds back any frame over one segment (every sealed spore) for
    // the peer's delayed acknowledgement, about 40 ms.
    const conn = await connect(u.toString(), { timeout: this.#o.connectTimeoutMs, noDelay: true, ...tls });
    let failure: unknown;
    conn.on("error", (e: unknown) => failure = e); // followed by "close", handled below
    conn.on("close", (e: unknown) => this.#lost(conn, e ?? failure));
    const pub = await this.#publisher(conn);
    this.#declared.clear();
    await this.#declareBase(pub);
    this.#conn = conn;
    this.#pub = pub;
    this.connections++;
    for (const s of this.#subs) if (!s.closed) await this.#consume(s, conn);
    if (this.connections > 1) this.directory.reconnected();
    this.events.linkUp();
  }

  async #publisher(conn: ChannelModel): Promise<Channel | ConfirmChannel> {
    const pub = this.#o.confirms ? await conn.createConfirmChannel() : await conn.createChannel();
    // The broker closes a channel on a channel error (an exchange deleted under it: 404): publishes on it
    // were refused, not lost, and a new channel takes its place while the connection lives.
    pub.on("error", (e: unknown) => this.#refusals.set(pub, e));
    pub.on("close", () =>
      setTimeout(() => {
        if (this.#conn === conn && !this.#closed) this.#renewPublisher(pub);
      }, 0));
    pub.on("return", (msg: ConsumeMessage) => {
      const id = msg.properties.headers?.["x-spores-pub"];
      if (typeof id === "string") this.#returned.add(id);
    });
    return pub;
  }

  /**
   * Replaces a publish channel that the broker nacked on. A channel that published to a quorum queue while
   * its leader was being elected can go on nacking after the new leader is up; a new channel does not.
   */
  #renewPublisher(old: Channel | ConfirmChannel): void {
    const conn = this.#conn;
    if (this.#pub !== old || !conn) return;
    this.#pub = undefined;
    this.#ready = this.#publisher(conn).then((pub) => {
      if (this.#conn === conn && !this.#closed) this.#pub = pub;
      else void pub.close().catch(() => {});
    }, () => {});
    // Publishes still in flight on the old channel get their confirms first; close() ends it at once.
    const retire = () => {
      clearTimeout(timer);
      this.#retiring.delete(retire);
      void old.close().catch(() => {});
    };
    const timer = setTimeout(retire, 5000);
    this.#retiring.add(retire);
  }

  #lost(conn: ChannelModel, cause: unknown): void {
    if (this.#conn !== conn || this.#closed) return;
    this.events.linkDown(cause);
    this.#next = (this.#next + 1) % this.#endpoints.length;
    this.#conn = undefined;
    this.#pub = undefined;
    for (const s of this.#subs) s.channel = undefined;
    this.#ready = this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      await sleep(Math.min(100 * 2 ** Math.min(attempt, 8), this.#o.maxBackoffMs));
      try {
        await this.#open();
        return;
      } catch {
        // try again
      }
    }
  }

  async #declareBase(ch: Channel): Promise<void> {
    const x = this.#o.exchange;
    await ch.assertExchange(x, "topic", { durable: true });
    await ch.assertExchange(`${x}.dlx`, "topic", { durable: true });
    await ch.assertExchange(`${x}.cards`, "fanout", { durable: true });
  }

  /** Queue type of every durable queue this transport declares. */
  get queueType(): "classic" | "quorum" {
    return this.#o.queueType;
  }

  /** Arguments of a durable queue: replicated (quorum) when the deployment asks for it. */
  #queueArgs(args: Record<string, unknown>): Record<string, unknown> {
    return this.#o.queueType === "quorum" ? { ...args, "x-queue-type": "quorum" } : { ...args };
  }

  /** @internal Declares an agent's queue and its dead-letter queue (once per connection). */
  async declareAgent(ch: Channel, id: string): Promise<string> {
    const x = this.#o.exchange;
    const queue = `${x}.agent.${id}`;
    if (this.#declared.has(queue)) return queue;
    const args = this.#queueArgs({ "x-dead-letter-exchange": `${x}.dlx` });
    if (this.#o.queueType === "classic") args["x-max-priority"] = 9;
    await ch.assertQueue(queue, { durable: true, arguments: args });
    await ch.bindQueue(queue, x, `agent.${id}.#`);
    await ch.assertQueue(`${x}.dead.${id}`, { durable: true, arguments: this.#queueArgs({}) });
    await ch.bindQueue(`${x}.dead.${id}`, `${x}.dlx`, `agent.${id}.#`);
    this.#declared.add(queue);
    return queue;
  }

  #drained: Promise<void> | undefined;

  /** Resolves when the publishing channel's buffer has drained (or the channel closed). */
  #drain(ch: Channel | ConfirmChannel): Promise<void> {
    this.#drained ??= new Promise<void>((resolve) => {
      const done = () => {
        ch.off("drain", done);
        ch.off("close", done);
        this.#drained = undefined;
        resolve();
      };
      ch.on("drain", done);
      ch.on("close", done);
    });
    return this.#drained;
  }

  /** @internal The live publishing channel, waiting out an outage up to the publish timeout. */
  async channel(deadline: number = Date.now() + this.#o.publishTimeoutMs): Promise<Channel | ConfirmChannel> {
    while (!this.#pub) {
      if (this.#closed) throw new TransportError("amqp transport is closed");
      if (Date.now() > deadline) throw new TransportError("RabbitMQ unreachable: publish timed out");
      await Promise.race([this.#ready, sleep(100)]);
    }
    return this.#pub;
  }

  /**
   * Publishes to the exchange; resolves when the broker confirmed it. A
   * direct message that no queue takes (no such agent) is a `TransportError`.
   */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    if (this.#closed) throw new TransportError("amqp transport is closed");
    checkMessageSize(bytes, this.capabilities.maxMessageBytes);
    const type = options.type ? checkId(options.type, "type").replaceAll(".", "_") : "spore";
    const direct = "agent" in to;
    const key = direct
      ? `agent.${checkId(to.agent, "agent")}.${type}`
      : `broadcast.${checkId(to.channel, "channel")}.${type}`;
    const pubId = `${++this.#seq}`;
    const started = Date.now();
    const deadline = started + this.#o.publishTimeoutMs;
    let ch = this.#pub ?? await this.channel(deadline);
    const props = {
      persistent: true,
      mandatory: direct && this.#o.confirms, // a return is only noticed through the confirm that follows it
      priority: options.priority ?? 4,
      expiration: options.ttlMs === undefined ? undefined : String(Math.max(1, Math.floor(options.ttlMs))),
      messageId: options.dedupId,
      contentType: "application/vnd.spores",
      headers: { "x-spores-pub": pubId },
    };
    if (!this.#o.confirms) {
      // Resolves once written; waits for the socket buffer to drain when it is full (one listener however
      // many publishes wait).
      if (!ch.publish(this.#o.exchange, key, buf(bytes), props)) await this.#drain(ch);
      return;
    }
    const where = key.split(".").slice(0, 2).join(".");
    for (let attempt = 1;; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          const sent = ch;
          const ok = sent.publish(
            this.#o.exchange,
            key,
            buf(bytes),
            props,
            (err: unknown) => err ? reject(err) : resolve(),
          );
          if (!ok) void this.#drain(sent); // back-pressure: the confirm resolves after the buffer drains
        });
        break;
      } catch (cause) {
        this.#returned.delete(pubId);
        if (cause instanceof Error && cause.message === "message nacked") {
          this.#renewPublisher(ch);
          throw new TransportError(`RabbitMQ did not confirm a publish to ${where}`, { cause });
        }
        const refused = this.#refusals.get(ch);
        if (refused !== undefined) {
          throw new TransportError(
            `RabbitMQ refused a publish to ${where}: ${refused instanceof Error ? refused.message : refused}`,
            { cause: refused },
          );
        }
        if (!confirmLost(cause) || this.#closed) {
          throw new TransportError(`RabbitMQ did not confirm a publish to ${where}`, { cause });
        }
        // The confirm was lost with its channel: the broker may have the message or not. Publish the same
        // bytes with the same message id again on the next channel; a copy the receiver has already handled
        // is dropped as a duplicate there.
        const next = attempt < this.#o.publishAttempts && Date.now() < deadline
          ? await this.channel(deadline).catch(() => undefined)
          : undefined;
        if (!next) {
          throw new TransportError(
            `the outcome of a publish to ${where} is unknown: its confirm was lost with the connection ` +
              `(${attempt} attempt(s) in ${Date.now() - started} ms); RabbitMQ may have it or not. ` +
              `Sending the same spore again (the same id) is safe: a receiver drops a copy it has handled`,
            { cause },
          );
        }
        ch = next;
        this.republished++;
      }
    }
    if (this.#returned.delete(pubId)) {
      throw new TransportError(
        `no queue for ${direct ? `agent ${(to as { agent: string }).agent}` : "that channel"}`,
      );
    }
  }

  async #consume(s: SubState, conn: ChannelModel): Promise<void> {
    const ch = await conn.createChannel();
    ch.on("error", () => {});
    await s.setup(ch);
    await ch.prefetch(s.prefetch);
    s.channel = ch;
    await ch.consume(s.queue, (msg) => {
      if (msg === null) {
        // The broker cancelled the consumer (queue deleted): resubscribe on a fresh channel.
        if (!s.closed && this.#conn === conn) void this.#consume(s, conn).catch(() => {});
        return;
      }
      this.#deliver(s, ch, msg);
    }, { noAck: false });
  }

  #deliver(s: SubState, ch: Channel, msg: ConsumeMessage): void {
    const header = msg.properties.headers?.["x-delivery-count"];
    const id = String(msg.properties.messageId ?? msg.properties.headers?.["x-spores-pub"] ?? "");
    const seen = s.counts.get(id) ?? 0;
    const redeliveries = typeof header === "number" ? header : Math.max(seen, msg.fields.redelivered ? 1 : 0);
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return Promise.resolve();
      settled = true;
      // A message from a channel that has since closed cannot be settled: the broker redelivers it.
      if (s.channel === ch) f();
      return Promise.resolve();
    };
    const delivery: Delivery = {
      bytes: new Uint8Array(msg.content),
      redeliveries,
      dedupId: msg.properties.messageId || undefined,
      priority: msg.properties.priority ?? 4,
      ack: () =>
        settle(() => {
          s.counts.delete(id);
          ch.ack(msg);
        }),
      nack: () =>
        settle(() => {
          s.counts.set(id, redeliveries + 1);
          if (s.counts.size > 10_000) s.counts.delete(s.counts.keys().next().value!);
          ch.nack(msg, false, true);
        }),
      deadLetter: () =>
        settle(() => {
          s.counts.delete(id);
          ch.nack(msg, false, false); // to the dead-letter exchange
        }),
    };
    queueMicrotask(async () => {
      try {
        await s.handler(delivery);
      } catch {
        await delivery.nack();
      }
    });
  }

  /** Consumes an agent's queue, or a channel's member queue. */
  async subscribe(
    from: Address,
    handler: DeliveryHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.#closed) throw new TransportError("amqp transport is closed");
    const x = this.#o.exchange;
    let queue: string;
    let setup: (ch: Channel) => Promise<void>;
    if ("agent" in from) {
      const id = checkId(from.agent, "agent");
      queue = `${x}.agent.${id}`;
      setup = async (ch) => void await this.declareAgent(ch, id);
    } else {
      const channel = checkId(from.channel, "channel");
      const member = checkId(options.member, "channel member");
      queue = `${x}.channel.${channel}.${member}`;
      setup = async (ch) => {
        await ch.assertQueue(queue, {
          durable: true,
          arguments: this.#queueArgs({ "x-dead-letter-exchange": `${x}.dlx` }),
        });
        await ch.bindQueue(queue, x, `broadcast.${channel}.#`);
      };
    }
    const s: SubState = {
      queue,
      setup,
      handler,
      prefetch: options.prefetch ?? 64,
      channel: undefined,
      closed: false,
      counts: new Map(),
    };
    const conn = this.#conn ?? (await this.channel(), this.#conn!);
    try {
      await this.#consume(s, conn);
    } catch (cause) {
      throw new TransportError(`cannot consume ${queue}`, { cause });
    }
    this.#subs.add(s);
    return {
      close: async () => {
        s.closed = true;
        this.#subs.delete(s);
        const ch = s.channel;
        s.channel = undefined;
        try {
          await ch?.close(); // unacknowledged messages return to the queue
        } catch {
          // already closed with its connection
        }
      },
    };
  }

  /** @internal A new channel (a confirm channel if asked) on the current connection. */
  async openChannel(confirm = false): Promise<Channel> {
    await this.channel();
    const conn = this.#conn!;
    const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
    ch.on("error", () => {});
    return ch;
  }

  /**
   * Deletes the queues `agent` created (see {@linkcode Transport.purge}):
   * `{exchange}.agent.<id>` with the spores waiting there,
   * `{exchange}.dead.<id>`, its card queue `{exchange}.card.<id>`, and its
   * member queue `{exchange}.channel.<channel>.<id>` on each of
   * `options.channels`. A member queue name is kept (and reported) when the
   * channel or the id holds a `.`: the same name then also stands for another
   * (channel, member) pair, whose queue it may be. Exchanges are shared and
   * stay.
   */
  async purge(agent: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    if (this.#closed) throw new TransportError("amqp transport is closed");
    const id = checkId(agent, "agent");
    const x = this.#o.exchange;
    const report: PurgeReport = { removed: [], kept: [] };
    const queues = [`${x}.agent.${id}`, `${x}.dead.${id}`];
    for (const c of options.channels ?? []) {
      const channel = checkId(c, "channel");
      const queue = `${x}.channel.${channel}.${id}`;
      if (channel.includes(".") || id.includes(".")) {
        report.kept.push({ name: queue, reason: "the name may be another (channel, member) pair's queue" });
      } else queues.push(queue);
    }
    try {
      for (const queue of queues) {
        // One channel per check: a missing queue (404) closes the channel it was checked on.
        const ch = await this.openChannel();
        try {
          try {
            await ch.checkQueue(queue);
          } catch (e) {
            if ((e as { code?: unknown }).code !== 404) throw e;
            continue;
          }
          await ch.deleteQueue(queue);
          this.#declared.delete(queue);
          report.removed.push(queue);
        } finally {
          await ch.close().catch(() => {});
        }
      }
      if (await this.directory.remove(id)) report.removed.push(`${x}.card.${id}`);
    } catch (cause) {
      throw new TransportError(`cannot purge agent ${id} from RabbitMQ`, { cause });
    }
    return report;
  }

  /** Closes subscriptions (their unacknowledged messages return to their queues) and the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.events.close();
    for (const retire of [...this.#retiring]) retire();
    for (const s of this.#subs) s.closed = true;
    this.#subs.clear();
    await this.directory.close();
    const conn = this.#conn;
    this.#conn = undefined;
    this.#pub = undefined;
    try {
      await conn?.close();
    } catch {
      // already gone
    }
  }
}
