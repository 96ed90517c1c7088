/**
 * The in-process broker (`memory://`), the embedded default: per-agent
 * queues with priorities, TTL, acknowledgements and redelivery, channels that
 * fan out to every member (members that were away catch up), bounded memory
 * with back-pressure on publishers, and a directory of agent cards.
 *
 * `memory://` is the process-wide default broker; `memory://<name>` is a
 * separate named broker. It needs no Deno permission.
 *
 * @module
 */
import { ConfigError, TransportError } from "../crypto/errors.ts";
import { checkOptions, optionKeys } from "./option_keys.ts";
import { MemoryDirectory } from "../spore/directory.ts";
import { checkId } from "../spore/limits.ts";
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
} from "./transport.ts";

/** Limits of a memory broker. */
export interface MemoryBrokerOptions {
  /** Largest message, bytes. Default 4 MiB. */
  maxMessageBytes?: number;
  /** Most bytes queued per queue before publishers wait. Default 64 MiB. */
  maxQueueBytes?: number;
  /** How long a publisher waits for space before a `TransportError`, ms. Default 30,000. */
  publishTimeoutMs?: number;
}

const MEMORY_OPTION_KEYS = optionKeys<MemoryBrokerOptions>()([
  "maxMessageBytes",
  "maxQueueBytes",
  "publishTimeoutMs",
]);

interface Entry {
  bytes: Uint8Array;
  priority: number;
  expiresAt: number | undefined;
  dedupId: string | undefined;
  redeliveries: number;
}

interface Consumer {
  handler: DeliveryHandler;
  prefetch: number;
  inFlight: Set<Entry>;
  closed: boolean;
  owner: MemoryTransport;
}

class Queue {
  readonly #buckets: Entry[][] = Array.from({ length: 10 }, () => []);
  readonly #consumers: Consumer[] = [];
  readonly #spaceWaiters: (() => void)[] = [];
  #next = 0;
  #bytes = 0;
  #pumping = false;
  /** Messages dropped at dequeue because their TTL passed. */
  expired = 0;
  /** Messages given up on by their consumer (the most recent 1,000). */
  readonly dead: Uint8Array[] = [];

  constructor(readonly broker: MemoryBroker) {}

  get depth(): number {
    let n = 0;
    for (const b of this.#buckets) n += b.length;
    return n;
  }

  get bytes(): number {
    return this.#bytes;
  }

  async push(entry: Entry): Promise<void> {
    const deadline = Date.now() + this.broker.publishTimeoutMs;
    while (this.#bytes + entry.bytes.length > this.broker.maxQueueBytes) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new TransportError("memory broker queue full: publisher timed out waiting for space");
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#spaceWaiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    this.#enqueue(entry);
  }

  #enqueue(entry: Entry): void {
    this.#buckets[entry.priority]!.push(entry);
    this.#bytes += entry.bytes.length;
    this.pump();
  }

  requeue(entry: Entry): void {
    entry.redeliveries++;
    this.#bytes -= entry.bytes.length; // #enqueue adds it back
    this.#enqueue(entry);
  }

  #release(entry: Entry): void {
    this.#bytes -= entry.bytes.length;
    const waiters = this.#spaceWaiters.splice(0);
    for (const w of waiters) w();
  }

  #pop(): Entry | undefined {
    const now = Date.now();
    for (let p = 9; p >= 0; p--) {
      const bucket = this.#buckets[p]!;
      while (bucket.length > 0) {
        const e = bucket.shift()!;
        if (e.expiresAt !== undefined && now > e.expiresAt) {
          this.expired++;
          this.#release(e);
          continue;
        }
        return e;
      }
    }
    return undefined;
  }

  #nextConsumer(): Consumer | undefined {
    for (let i = 0; i < this.#consumers.length; i++) {
      const c = this.#consumers[(this.#next + i) % this.#consumers.length]!;
      if (!c.closed && c.inFlight.size < c.prefetch) {
        this.#next = (this.#next + i + 1) % this.#consumers.length;
        return c;
      }
    }
    return undefined;
  }

  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (;;) {
        const consumer = this.#nextConsumer();
        if (!consumer) return;
        const entry = this.#pop();
        if (!entry) return;
        this.#deliver(consumer, entry);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #deliver(consumer: Consumer, entry: Entry): void {
    consumer.inFlight.add(entry);
    let settled = false;
    const settle = (requeue: boolean) => {
      if (settled) return Promise.resolve();
      settled = true;
      consumer.inFlight.delete(entry);
      if (requeue) this.requeue(entry);
      else {
        this.#release(entry);
        this.pump();
      }
      return Promise.resolve();
    };
    const delivery: Delivery = {
      bytes: entry.bytes,
      redeliveries: entry.redeliveries,
      dedupId: entry.dedupId,
      priority: entry.priority,
      ack: () => settle(false),
      nack: () => settle(true),
      deadLetter: () => {
        if (!settled) {
          this.dead.push(entry.bytes);
          if (this.dead.length > 1000) this.dead.shift();
        }
        return settle(false);
      },
    };
    queueMicrotask(async () => {
      try {
        await consumer.handler(delivery);
      } catch {
        await settle(true);
      }
    });
  }

  addConsumer(c: Consumer): void {
    this.#consumers.push(c);
    this.pump();
  }

  removeConsumer(c: Consumer): void {
    c.closed = true;
    const i = this.#consumers.indexOf(c);
    if (i >= 0) this.#consumers.splice(i, 1);
  }

  /** Whether a consumer is reading this queue. */
  get consumed(): boolean {
    return this.#consumers.some((c) => !c.closed);
  }

  /** Returns a closed consumer's unacknowledged messages to the queue. */
  reclaim(c: Consumer): void {
    for (const e of [...c.inFlight]) {
      c.inFlight.delete(e);
      this.requeue(e);
    }
  }
}

/**
 * An in-process broker. Agents in one process that use the same broker (by
 * name) reach each other.
 *
 * @example
 * ```ts
 * import { MemoryBroker } from "@spores/spores/memory";
 * const broker = MemoryBroker.named("tests");
 * console.assert(MemoryBroker.named("tests") === broker);
 * ```
 */
export class MemoryBroker {
  static readonly #brokers = new Map<string, MemoryBroker>();
  /** The broker's card directory. */
  readonly directory: MemoryDirectory = new MemoryDirectory();
  /** Largest message. */
  readonly maxMessageBytes: number;
  /** Bytes per queue before publishers wait. */
  readonly maxQueueBytes: number;
  /** How long publishers wait. */
  readonly publishTimeoutMs: number;

  /**
   * A broker of this process, not shared by name.
   *
   * @param options Limits.
   */
  constructor(options: MemoryBrokerOptions = {}) {
    this.maxMessageBytes = options.maxMessageBytes ?? 4 << 20;
    this.maxQueueBytes = options.maxQueueBytes ?? 64 << 20;
    this.publishTimeoutMs = options.publishTimeoutMs ?? 30_000;
  }

  /** The broker called `name` in this process (made on first use). */
  static named(name: string, options?: MemoryBrokerOptions): MemoryBroker {
    let b = MemoryBroker.#brokers.get(name);
    if (!b) {
      b = new MemoryBroker(options);
      MemoryBroker.#brokers.set(name, b);
    }
    return b;
  }

  /** Forgets the broker called `name` (its queued messages are dropped). */
  static drop(name: string): void {
    MemoryBroker.#brokers.delete(name);
  }

  /** Messages waiting (not in flight) for an agent, for tests and tooling. */
  depth(agent: string): number {
    return state(this).queues.get(`agent/${agent}`)?.depth ?? 0;
  }

  /** Messages an agent's consumers gave up on (dead letters), most recent last. */
  deadLetters(agent: string): Uint8Array[] {
    return [...(state(this).queues.get(`agent/${agent}`)?.dead ?? [])];
  }

  /** Messages dropped because their TTL passed, for an agent's queue. */
  expired(agent: string): number {
    return state(this).queues.get(`agent/${agent}`)?.expired ?? 0;
  }
}

// Queues and channel memberships of each broker, outside its public surface.
const brokers = new WeakMap<
  MemoryBroker,
  { queues: Map<string, Queue>; channels: Map<string, Set<string>> }
>();

function state(broker: MemoryBroker): { queues: Map<string, Queue>; channels: Map<string, Set<string>> } {
  let s = brokers.get(broker);
  if (!s) {
    s = { queues: new Map(), channels: new Map() };
    brokers.set(broker, s);
  }
  return s;
}

function queueOf(broker: MemoryBroker, key: string): Queue {
  const { queues } = state(broker);
  let q = queues.get(key);
  if (!q) {
    q = new Queue(broker);
    queues.set(key, q);
  }
  return q;
}

function membersOf(broker: MemoryBroker, channel: string): Set<string> {
  const { channels } = state(broker);
  let m = channels.get(channel);
  if (!m) {
    m = new Set();
    channels.set(channel, m);
  }
  return m;
}

const CAPABILITIES: TransportCapabilities = Object.freeze({
  durable: false,
  ordered: true,
  priority: true,
  ttl: true,
  maxMessageBytes: 4 << 20,
  broadcast: true,
});

/**
 * A connection to a {@linkcode MemoryBroker}.
 *
 * @example
 * ```ts
 * import { MemoryBroker, MemoryTransport } from "@spores/spores/memory";
 * const t = new MemoryTransport(new MemoryBroker());
 * await t.publish({ agent: "bob" }, new Uint8Array([1]));
 * await t.close();
 * ```
 */
export class MemoryTransport implements Transport {
  /** `"memory"`. */
  readonly name = "memory";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** The broker. */
  readonly broker: MemoryBroker;
  /** The broker's directory. */
  readonly directory: MemoryDirectory;
  readonly #consumers = new Set<{ queue: Queue; consumer: Consumer }>();
  #closed = false;

  /**
   * A connection to `broker`.
   *
   * @param broker The broker to use.
   */
  constructor(broker: MemoryBroker) {
    this.broker = broker;
    this.directory = broker.directory;
    this.capabilities = { ...CAPABILITIES, maxMessageBytes: broker.maxMessageBytes };
  }

  #check(): void {
    if (this.#closed) throw new TransportError("memory transport is closed");
  }

  /** Publishes to an agent queue or every member of a channel. */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    this.#check();
    checkMessageSize(bytes, this.broker.maxMessageBytes);
    const priority = options.priority ?? 4;
    if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
      throw new ConfigError("priority must be 0..9");
    }
    const entry = (): Entry => ({
      bytes: bytes.slice(),
      priority,
      expiresAt: options.ttlMs === undefined ? undefined : Date.now() + options.ttlMs,
      dedupId: options.dedupId,
      redeliveries: 0,
    });
    if ("agent" in to) {
      await queueOf(this.broker, `agent/${checkId(to.agent, "agent")}`).push(entry());
    } else {
      const channel = checkId(to.channel, "channel");
      await Promise.all(
        [...membersOf(this.broker, channel)].map((m) =>
          queueOf(this.broker, `channel/${channel}/${m}`).push(entry())
        ),
      );
    }
  }

  /** Subscribes to an agent queue, or to a channel as `member`. */
  subscribe(from: Address, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    this.#check();
    let key: string;
    if ("agent" in from) key = `agent/${checkId(from.agent, "agent")}`;
    else {
      const channel = checkId(from.channel, "channel");
      const member = checkId(options.member, "channel member");
      membersOf(this.broker, channel).add(member);
      key = `channel/${channel}/${member}`;
    }
    const queue = queueOf(this.broker, key);
    const consumer: Consumer = {
      handler,
      prefetch: options.prefetch ?? 64,
      inFlight: new Set(),
      closed: false,
      owner: this,
    };
    const record = { queue, consumer };
    this.#consumers.add(record);
    queue.addConsumer(consumer);
    return Promise.resolve({
      close: () => {
        queue.removeConsumer(consumer);
        this.#consumers.delete(record);
        return Promise.resolve();
      },
    });
  }

  /**
   * Removes the queue of `agent` (its waiting spores and dead letters), its
   * card, and its member queue on each of `options.channels` (see
   * {@linkcode Transport.purge}). A queue still read by a subscription is
   * kept: close the agent first.
   */
  purge(agent: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    this.#check();
    const id = checkId(agent, "agent");
    const report: PurgeReport = { removed: [], kept: [] };
    const { queues, channels } = state(this.broker);
    const drop = (key: string) => {
      const q = queues.get(key);
      if (!q) return;
      if (q.consumed) {
        report.kept.push({ name: key, reason: "a subscription still reads it" });
        return false;
      }
      queues.delete(key);
      report.removed.push(key);
      return true;
    };
    drop(`agent/${id}`);
    for (const c of options.channels ?? []) {
      const channel = checkId(c, "channel");
      if (drop(`channel/${channel}/${id}`) !== false) channels.get(channel)?.delete(id);
    }
    if (this.directory.remove(id)) report.removed.push(`card/${id}`);
    return Promise.resolve(report);
  }

  /** Stops every subscription; unacknowledged messages go back to their queues. */
  close(): Promise<void> {
    this.#closed = true;
    for (const { queue, consumer } of this.#consumers) {
      queue.removeConsumer(consumer);
      queue.reclaim(consumer);
      queue.pump();
    }
    this.#consumers.clear();
    return Promise.resolve();
  }
}

/**
 * Opens a memory transport for `memory://` (the process default broker) or
 * `memory://<name>`.
 *
 * @example
 * ```ts
 * import { createTransport } from "@spores/spores/memory";
 * const t = await createTransport("memory://");
 * console.assert(t.capabilities.priority);
 * await t.close();
 * ```
 */
export function createTransport(url: string, options: MemoryBrokerOptions = {}): Promise<Transport> {
  try {
    checkOptions("memory", options, MEMORY_OPTION_KEYS);
  } catch (e) {
    return Promise.reject(e);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    return Promise.reject(new ConfigError(`not a URL: ${url}`, { cause }));
  }
  if (parsed.protocol !== "memory:") return Promise.reject(new ConfigError(`not a memory:// URL: ${url}`));
  const name = parsed.host || parsed.pathname.replace(/^\/+/, "") || "default";
  return Promise.resolve(new MemoryTransport(MemoryBroker.named(name, options)));
}
