/**
 * The Redis transport: one stream per agent and per channel, consumer groups,
 * blocking batched reads, acknowledgement after the handler, reclaiming of
 * messages left by a dead consumer, a dead-letter stream, and TTL checked at
 * read time.
 *
 * ```text
 * {prefix}:agent:{<id>}       stream of an agent's spores; consumer group "<id>"
 * {prefix}:dlq:{<id>}         dead letters of an agent
 * {prefix}:channel:{<name>}   stream of a channel; one consumer group per member
 * {prefix}:dlq:channel:{<name>}  dead letters of a channel's members
 * {prefix}:cards              hash of agent cards (see RedisDirectory)
 * {prefix}:state:{<id>}...    an agent's session store (see RedisSessionStore)
 * ```
 * Braces are Redis Cluster hash tags: one agent's keys share a slot.
 *
 * @module
 */
import { Buffer } from "node:buffer";
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
import { Cluster } from "ioredis";
import { createClient, describeUrl, loose, type RedisClient } from "./connection.ts";
import { RedisDirectory } from "./directory.ts";
import { explainConnectError, hostPort } from "../connect_error.ts";
import { TransportEvents } from "../events.ts";
import type { RedisDurability, RedisTransportOptions } from "./options.ts";
export type { RedisDurability, RedisTransportOptions } from "./options.ts";

/** Bytes as a Node Buffer view (no copy), as ioredis needs for binary values. */
const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
/** A plain Uint8Array copy of a Buffer. */
// A view, not a copy: the reply buffer is not reused once parsed.
const plain = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const decoder = new TextDecoder();
const text = (b: unknown): string => (b instanceof Uint8Array ? decoder.decode(b) : String(b));

type Fields = Record<string, Uint8Array>;
function fieldsOf(list: unknown): Fields | undefined {
  if (!Array.isArray(list)) return undefined;
  const out: Fields = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[text(list[i])] = list[i + 1] as Uint8Array;
  return out;
}

function isBusyGroup(e: unknown): boolean {
  return e instanceof Error && e.message.includes("BUSYGROUP");
}

/** A pipeline, as far as publishing with `durability` uses it. */
interface PipelineLike {
  call(...args: unknown[]): PipelineLike;
  exec(): Promise<[Error | null, unknown][] | null>;
}

/** The error of a refused publish: a full stream says so, and what to do. */
function publishError(to: Address, cause: unknown, maxLen: number): TransportError {
  const where = "agent" in to ? `agent ${to.agent}` : `channel ${to.channel}`;
  if (String((cause as Error)?.message ?? cause).includes("SPORESFULL")) {
    return new TransportError(
      `the Redis stream of ${where} is full: ${maxLen} entries not yet read and acknowledged by every ` +
        `consumer (the receiver is away or slower than its senders); publish later, or raise maxLen`,
      { cause },
    );
  }
  return new TransportError(`Redis refused a publish to ${where}`, { cause });
}

/** Stream ids compare as (milliseconds, sequence). */
function idBefore(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am < bm || (am === bm && as < bs);
}

/** Stream and group of an address. */
export function keysOf(
  prefix: string,
  from: Address,
  member?: string,
): { stream: string; group: string; dlq: string } {
  if ("agent" in from) {
    const id = checkId(from.agent, "agent");
    return { stream: `${prefix}:agent:{${id}}`, group: id, dlq: `${prefix}:dlq:{${id}}` };
  }
  const channel = checkId(from.channel, "channel");
  const m = checkId(member, "channel member");
  // Not `{prefix}:dlq:{<channel>}`: that is the dead-letter stream of the agent of the same name.
  return { stream: `${prefix}:channel:{${channel}}`, group: m, dlq: `${prefix}:dlq:channel:{${channel}}` };
}

/**
 * A Redis connection for agents.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/redis";
 * const transport = await createTransport("redis://127.0.0.1:6379");
 * await transport.publish({ agent: "bob" }, new Uint8Array([1]));
 * await transport.close();
 * ```
 */
export class RedisTransport implements Transport {
  /** `"redis"`. */
  readonly name = "redis";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** Agent cards in Redis. */
  readonly directory: RedisDirectory;
  /** Link lost and back (the command connection's), and entries dead-lettered after `maxDeliveries`. */
  readonly events: TransportEvents;
  /** The command connection. */
  readonly client: RedisClient;
  /** Entries dropped at read time because their TTL had passed. */
  expired = 0;
  /** Entries without a spore (written to a stream by something else), acknowledged and counted here. */
  malformed = 0;
  readonly #url: string;
  readonly #options: RedisTransportOptions;
  readonly #prefix: string;
  readonly #subscriptions = new Set<RedisSubscription>();
  readonly #cluster: boolean;
  #nodeErrorAt = -Infinity;
  #closed = false;

  private constructor(url: string, client: RedisClient, options: RedisTransportOptions, durable: boolean) {
    this.#url = url;
    this.client = client;
    this.#options = options;
    this.#prefix = options.prefix ?? "spores";
    this.directory = new RedisDirectory(client, this.#prefix);
    this.events = new TransportEvents("redis", describeUrl(url), hostPort(url, 6379));
    // ioredis reconnects by itself; "close" is the link lost (each attempt that fails closes again: one
    // outage), "ready" the link back with its commands replayed.
    let lastError: unknown;
    client.on("error", (e: unknown) => lastError = e);
    client.on("close", () => {
      this.events.linkDown(lastError);
      lastError = undefined;
    });
    client.on("ready", () => this.events.linkUp());
    // A cluster client stays "ready" when one node fails: the node's errors are the link lost (for the keys of
    // its slots), and reads that answer again, once the node errors have stopped, are the link back.
    this.#cluster = client instanceof Cluster;
    client.on("node error", (e: unknown) => {
      this.#nodeErrorAt = performance.now();
      this.events.linkDown(e);
    });
    this.capabilities = Object.freeze({
      durable,
      ordered: true,
      priority: false,
      ttl: true,
      maxMessageBytes: options.maxMessageBytes ?? 16 << 20,
      broadcast: true,
    });
  }

  /** Connects (failing with a `TransportError` if the server cannot be reached). */
  static async connect(url: string, options: RedisTransportOptions = {}): Promise<RedisTransport> {
    const prefix = options.prefix ?? "spores";
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) {
      throw new ConfigError("prefix must be 1..64 of [A-Za-z0-9._:-]");
    }
    const d = options.durability;
    if (d && (!Number.isSafeInteger(d.replicas) || d.replicas < 1 || !((d.timeoutMs ?? 1000) > 0))) {
      throw new ConfigError("durability.replicas must be a whole number from 1 and timeoutMs positive");
    }
    if ((options.commandTimeoutMs ?? 30_000) <= (options.blockMs ?? 1000)) {
      throw new ConfigError("commandTimeoutMs must be longer than blockMs (a blocking read would time out)");
    }
    const client = createClient(url, options);
    // Reported through failed commands; reconnection is automatic. The first socket error is kept: ioredis
    // itself only says "Connection is closed".
    let socketError: unknown;
    client.on("error", (e: unknown) => socketError ??= e);
    try {
      await client.connect();
      await client.ping();
    } catch (failure) {
      const cause = socketError ? new Error(String(failure), { cause: socketError }) : failure;
      // Stop reconnecting; let a socket that is still failing (EPIPE, reset) fail into ioredis's own handlers.
      await new Promise((r) => setTimeout(r, 50));
      client.disconnect();
      throw new TransportError(
        `cannot reach Redis at ${describeUrl(url)}: ${explainConnectError(cause, hostPort(url, 6379))}`,
        { cause },
      );
    }
    let durable = false;
    try {
      const aof = await (client as { config(...a: string[]): Promise<string[]> }).config("GET", "appendonly");
      const save = await (client as { config(...a: string[]): Promise<string[]> }).config("GET", "save");
      durable = aof[1] === "yes" || (save[1] ?? "") !== "";
    } catch {
      durable = false; // CONFIG not allowed for this user: promise nothing
    }
    return new RedisTransport(url, client, options, durable);
  }

  /** @internal A new connection like the command one (for blocking reads). */
  duplicate(): RedisClient {
    const c = createClient(this.#url, this.#options);
    c.on("error", () => {});
    return c;
  }

  /**
   * @internal A blocking read answered: the link is back (on a cluster, once node errors have stopped for 1 s).
   */
  readAnswered(): void {
    if (this.events.connected) return;
    if (!this.#cluster || performance.now() - this.#nodeErrorAt > 1000) this.events.linkUp();
  }

  /** @internal A blocking read did not answer in time: a silent link (the socket stays open), lost. */
  readStalled(): void {
    this.events.linkDown(READ_STALLED);
  }

  /** Key prefix. */
  get prefix(): string {
    return this.#prefix;
  }

  #check(): void {
    if (this.#closed) throw new TransportError("redis transport is closed");
  }

  /** Appends to the agent's or channel's stream; resolves when Redis has it. */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    this.#check();
    checkMessageSize(bytes, this.capabilities.maxMessageBytes);
    const stream = "agent" in to
      ? `${this.#prefix}:agent:{${checkId(to.agent, "agent")}}`
      : `${this.#prefix}:channel:{${checkId(to.channel, "channel")}}`;
    const expiresAt = options.ttlMs === undefined ? 0 : Date.now() + options.ttlMs;
    const args = [
      stream,
      String(this.#options.maxLen ?? 100_000),
      "d",
      asBuffer(bytes),
      "p",
      String(options.priority ?? 4),
      "e",
      String(expiresAt),
      "i",
      options.dedupId ?? "",
    ] as const;
    const durability = this.#options.durability;
    if (durability) return await this.#publishReplicated(to, args, durability);
    try {
      await loose(this.client).sporesAdd(...args);
    } catch (cause) {
      throw publishError(to, cause, this.#options.maxLen ?? 100_000);
    }
  }

  /** XADD then WAIT in one pipeline: both go to the node that owns the stream's slot. */
  async #publishReplicated(
    to: Address,
    args: readonly (string | Buffer)[],
    durability: RedisDurability,
  ): Promise<void> {
    const where = "agent" in to ? to.agent : to.channel;
    const timeout = durability.timeoutMs ?? 1000;
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await (this.client.pipeline() as unknown as { sporesAdd(...a: unknown[]): PipelineLike })
        .sporesAdd(...args)
        .call("WAIT", durability.replicas, timeout)
        .exec();
    } catch (cause) {
      throw new TransportError(`Redis refused a publish to ${where}`, { cause });
    }
    const [added, waited] = replies ?? [];
    if (!added || added[0]) throw publishError(to, added?.[0], this.#options.maxLen ?? 100_000);
    const acked = Number(waited?.[1] ?? 0);
    if (waited?.[0] || acked < durability.replicas) {
      throw new TransportError(
        `a publish to ${where} reached the primary but ${acked} of ${durability.replicas} replica(s) ` +
          `confirmed it within ${timeout} ms`,
        { cause: waited?.[0] ?? undefined },
      );
    }
  }

  /** Reads the agent's stream as its consumer group, or a channel's as the member's group. */
  async subscribe(
    from: Address,
    handler: DeliveryHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    this.#check();
    const keys = keysOf(this.#prefix, from, options.member);
    const sub = new RedisSubscription(this, keys, handler, {
      address: from,
      member: options.member,
      prefetch: options.prefetch ?? 64,
      batch: this.#options.batch ?? 256,
      blockMs: this.#options.blockMs ?? 1000,
      visibilityMs: this.#options.visibilityTimeoutMs ?? 30_000,
      claimEveryMs: this.#options.claimIntervalMs ?? 5000,
      maxDeliveries: this.#options.maxDeliveries ?? 16,
      startAt: "agent" in from ? "0" : "$",
    });
    await sub.start();
    this.#subscriptions.add(sub);
    sub.onClose = () => this.#subscriptions.delete(sub);
    return sub;
  }

  /**
   * Removes what `agent` created in Redis (see {@linkcode Transport.purge}):
   * its stream `{prefix}:agent:{<id>}` (with its consumer group and the
   * spores waiting there), its dead letters `{prefix}:dlq:{<id>}`, its card
   * in `{prefix}:cards`, every key of its session store under this prefix
   * (`{prefix}:state:{<id>}` and `{prefix}:state:{<id>}:…`), its trust pins
   * (`{prefix}:pins:{<id>}:…`, a `RedisPinStore`), and its consumer
   * group on the stream of each of `options.channels`. A channel's stream and
   * its dead letters are shared by its members and stay.
   */
  async purge(agent: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    this.#check();
    const id = checkId(agent, "agent");
    const channels = (options.channels ?? []).map((c) => checkId(c, "channel"));
    const report: PurgeReport = { removed: [], kept: [] };
    const c = this.client;
    try {
      for (const key of [`${this.#prefix}:agent:{${id}}`, `${this.#prefix}:dlq:{${id}}`]) {
        if (await c.del(key) > 0) report.removed.push(key);
      }
      for (const channel of channels) {
        const stream = `${this.#prefix}:channel:{${channel}}`;
        try {
          if (Number(await c.xgroup("DESTROY", stream, id)) > 0) report.removed.push(`${stream} group ${id}`);
        } catch (e) {
          if (!/no such key|ERR The XGROUP subcommand requires the key to exist/i.test(String(e))) throw e;
        }
      }
      if (await this.directory.remove(id)) report.removed.push(`${this.#prefix}:cards ${id}`);
      // Every key of the session store carries the hash tag {<id>}: one slot, on one primary of a cluster.
      const state = `${this.#prefix}:state:{${id}}`;
      // Its trust pins too (RedisPinStore: `{prefix}:pins:{<id>}:<fingerprint>`, one hash per identity).
      const pins = `${this.#prefix}:pins:{${id}}`;
      for (const [base, own] of [[state, true], [pins, false]] as const) {
        let removed = 0;
        for (const node of "nodes" in c ? c.nodes("master") : [c]) {
          let cursor = "0";
          do {
            const [next, keys] = await node.scan(cursor, "MATCH", `${base}*`, "COUNT", 1000);
            cursor = next;
            // The tag is the whole of `{<id>}`: a key of the agent `<id>x` does not match `{<id>}*`. All of
            // them share its slot, so one DEL takes many.
            const mine = keys.filter((k) => (own && k === base) || k.startsWith(`${base}:`));
            for (let i = 0; i < mine.length; i += 500) removed += await c.del(...mine.slice(i, i + 500));
          } while (cursor !== "0");
        }
        if (removed > 0) report.removed.push(`${base}${own ? " and " + base : ""}:… (${removed} keys)`);
      }
    } catch (cause) {
      throw new TransportError(`cannot purge agent ${id} from Redis`, { cause });
    }
    return report;
  }

  /** Stops subscriptions (handing their unacknowledged entries back) and disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.events.close();
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
    await this.directory.close();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

interface SubscriptionSettings {
  address: Address;
  member: string | undefined;
  prefetch: number;
  batch: number;
  blockMs: number;
  visibilityMs: number;
  claimEveryMs: number;
  maxDeliveries: number;
  startAt: "0" | "$";
}

/** A blocking read that did not answer in time. */
const READ_STALLED = new Error("a blocking read did not answer in time (a silent link)");

type XRead = [Uint8Array, [Uint8Array, unknown[]][]][] | null;

/** One consumer of one stream. */
class RedisSubscription implements Subscription {
  onClose: (() => void) | undefined;
  readonly #t: RedisTransport;
  readonly #keys: { stream: string; group: string; dlq: string };
  readonly #handler: DeliveryHandler;
  readonly #s: SubscriptionSettings;
  readonly #consumer = `c-${crypto.randomUUID()}`;
  readonly #inFlight = new Set<string>();
  #blocking: RedisClient | undefined;
  #closed = false;
  #recover = true;
  #loop: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #space: (() => void) | undefined;
  #acks: string[] = [];
  #acked: Promise<void> | undefined;

  constructor(
    t: RedisTransport,
    keys: { stream: string; group: string; dlq: string },
    handler: DeliveryHandler,
    s: SubscriptionSettings,
  ) {
    this.#t = t;
    this.#keys = keys;
    this.#handler = handler;
    this.#s = s;
  }

  async start(): Promise<void> {
    await this.#createGroup();
    await this.#connectReader();
    this.#loop = this.#run();
    this.#timer = setInterval(
      () => void this.#claimStale().then(() => this.#trim()).catch(() => {}),
      this.#s.claimEveryMs,
    );
  }

  async #createGroup(): Promise<void> {
    try {
      await this.#t.client.xgroup("CREATE", this.#keys.stream, this.#keys.group, this.#s.startAt, "MKSTREAM");
    } catch (e) {
      if (!isBusyGroup(e)) throw new TransportError("cannot create the Redis consumer group", { cause: e });
    }
  }

  /** A new connection for the blocking reads (at start, and in place of one that stalled). */
  async #connectReader(): Promise<void> {
    const old = this.#blocking;
    this.#blocking = this.#t.duplicate();
    // After a reconnection, re-read what this consumer holds but has not acknowledged.
    this.#blocking.on("ready", () => this.#recover = true);
    old?.disconnect();
    await this.#blocking.connect();
  }

  /**
   * A read on the blocking connection, given up if it has not answered `blockMs` + 5 s later: a cluster
   * client whose node died can leave a read waiting for ever; a new connection then finds the new primary.
   */
  async #read(...args: (string | number)[]): Promise<XRead> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(READ_STALLED), this.#s.blockMs + 5000)
    );
    try {
      return await Promise.race([
        (this.#blocking as unknown as { xreadgroupBuffer(...a: unknown[]): Promise<XRead> }).xreadgroupBuffer(
          ...args,
        ),
        stalled,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      try {
        if (this.#recover) {
          this.#recover = false;
          await this.#readPending();
          await this.#claimStale();
        }
        // Read again once half the prefetch is free, not at every free slot: fewer, larger reads.
        const refill = Math.max(this.#s.prefetch >> 1, this.#s.prefetch - this.#s.batch);
        while (this.#inFlight.size > refill && !this.#closed) {
          await new Promise<void>((r) => this.#space = r);
        }
        if (this.#closed) break;
        const count = Math.min(this.#s.batch, this.#s.prefetch - this.#inFlight.size);
        const res = await this.#read(
          "GROUP",
          this.#keys.group,
          this.#consumer,
          "COUNT",
          count,
          "BLOCK",
          this.#s.blockMs,
          "STREAMS",
          this.#keys.stream,
          ">",
        );
        this.#t.readAnswered();
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) this.#dispatch(text(id), fieldsOf(fields), 1);
        }
      } catch (e) {
        if (this.#closed) break;
        this.#recover = true;
        if (e === READ_STALLED) {
          this.#t.readStalled();
          await this.#connectReader().catch(() => {});
        }
        // A replica promoted before it had the stream or its group (asynchronous replication): make the group
        // again, from the start for an agent (what was handled is a duplicate, caught by receipts).
        if (String((e as Error)?.message).includes("NOGROUP")) await this.#createGroup().catch(() => {});
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Entries this consumer read but did not acknowledge (after a reconnection). */
  async #readPending(): Promise<void> {
    const res = await this.#read(
      "GROUP",
      this.#keys.group,
      this.#consumer,
      "COUNT",
      1000,
      "STREAMS",
      this.#keys.stream,
      "0",
    );
    for (const [, entries] of res ?? []) {
      for (const [id, fields] of entries) {
        const key = text(id);
        if (!this.#inFlight.has(key)) this.#dispatch(key, fieldsOf(fields), await this.#deliveries(key));
      }
    }
  }

  /** Takes over entries another consumer held longer than the visibility timeout. */
  /**
   * Trims the stream below the oldest entry some consumer group still needs (its oldest unacknowledged
   * entry, or past its last delivered one): nothing unread or unacknowledged is ever trimmed.
   */
  async #trim(): Promise<void> {
    if (this.#closed) return;
    const c = this.#t.client;
    const { stream } = this.#keys;
    const groups = await c.xinfo("GROUPS", stream) as unknown[][];
    let floor: string | undefined;
    for (const g of groups) {
      const f: Record<string, unknown> = {};
      for (let i = 0; i + 1 < g.length; i += 2) f[String(g[i])] = g[i + 1];
      let bound = String(f["last-delivered-id"] ?? "0-0");
      if (Number(f["pending"] ?? 0) > 0) {
        const summary = await c.xpending(stream, String(f["name"])) as unknown[];
        if (summary?.[1]) bound = String(summary[1]);
      }
      if (floor === undefined || idBefore(bound, floor)) floor = bound;
    }
    if (floor !== undefined && floor !== "0-0") await c.xtrim(stream, "MINID", floor);
  }

  async #claimStale(): Promise<void> {
    if (this.#closed) return;
    let cursor = "0-0";
    for (let round = 0; round < 10; round++) {
      const res = await loose(this.#t.client).xautoclaimBuffer(
        this.#keys.stream,
        this.#keys.group,
        this.#consumer,
        this.#s.visibilityMs,
        cursor,
        "COUNT",
        this.#s.batch,
      ) as [Uint8Array, [Uint8Array, unknown[] | null][]];
      const [next, entries] = res;
      for (const [id, fields] of entries) {
        const key = text(id);
        if (fields === null) {
          await this.#t.client.xack(this.#keys.stream, this.#keys.group, key); // trimmed away
          continue;
        }
        if (!this.#inFlight.has(key)) this.#dispatch(key, fieldsOf(fields), await this.#deliveries(key));
      }
      cursor = text(next);
      if (cursor === "0-0") return;
    }
  }

  async #deliveries(id: string): Promise<number> {
    const rows = await this.#t.client.xpending(this.#keys.stream, this.#keys.group, id, id, 1) as unknown[][];
    return Number(rows?.[0]?.[3] ?? 1);
  }

  #dispatch(id: string, fields: Fields | undefined, deliveries: number): void {
    if (this.#closed) return;
    const c = this.#t.client;
    const { stream, group } = this.#keys;
    const data = fields?.["d"];
    if (!data) {
      this.#t.malformed++;
      void c.xack(stream, group, id).catch(() => {});
      return;
    }
    const expiresAt = Number(text(fields["e"] ?? "0"));
    if (expiresAt > 0 && Date.now() > expiresAt) {
      this.#t.expired++;
      void c.xack(stream, group, id).catch(() => {});
      return;
    }
    if (deliveries > this.#s.maxDeliveries) {
      // Delivered that often and never acknowledged (its handler's process died each time, say): moved by
      // the transport itself, and reported so that the agent counts it.
      void this.#deadLetter(id, data, deliveries).then(() =>
        this.#t.events.deadLettered({
          address: this.#s.address,
          member: this.#s.member,
          size: data.length,
          attempts: deliveries,
          reason: `delivered ${deliveries} times (limit ${this.#s.maxDeliveries}) without an acknowledgement`,
          store: this.#keys.dlq,
        })
      ).catch(() => {});
      return;
    }
    this.#inFlight.add(id);
    let settled = false;
    const done = () => {
      settled = true;
      this.#inFlight.delete(id);
      this.#space?.();
      this.#space = undefined;
    };
    const delivery: Delivery = {
      bytes: plain(data),
      redeliveries: Math.max(0, deliveries - 1),
      dedupId: text(fields["i"] ?? "") || undefined,
      priority: Number(text(fields["p"] ?? "4")),
      ack: async () => {
        if (settled) return;
        done();
        await this.#ack(id);
      },
      nack: async () => {
        if (settled) return;
        done();
        if (this.#closed) return; // stays pending; handed back on close
        // Take it again at once (this raises its delivery count) and redeliver.
        const again = await loose(c).xclaimBuffer(stream, group, this.#consumer, 0, id) as [
          Uint8Array,
          unknown[],
        ][];
        const entry = again?.[0];
        if (entry) queueMicrotask(() => this.#dispatch(id, fieldsOf(entry[1]), deliveries + 1));
      },
      deadLetter: async () => {
        if (settled) return;
        done();
        await this.#deadLetter(id, data, deliveries);
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

  /** Acknowledges with one `XACK` for every entry acknowledged in the same turn of the event loop. */
  #ack(id: string): Promise<void> {
    this.#acks.push(id);
    this.#acked ??= new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        const ids = this.#acks;
        this.#acks = [];
        this.#acked = undefined;
        this.#t.client.xack(this.#keys.stream, this.#keys.group, ...ids).then(() => resolve(), reject);
      }, 0);
    });
    return this.#acked;
  }

  async #deadLetter(id: string, data: Uint8Array, deliveries: number): Promise<void> {
    const c = this.#t.client;
    await c.xadd(
      this.#keys.dlq,
      "MAXLEN",
      "~",
      "10000",
      "*",
      "d",
      asBuffer(data),
      "id",
      id,
      "n",
      String(deliveries),
    );
    await c.xack(this.#keys.stream, this.#keys.group, id);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#space?.();
    // Hand unacknowledged entries back: mark them idle so the next consumer takes them at once.
    const held = [...this.#inFlight];
    this.#inFlight.clear();
    if (held.length > 0) {
      try {
        await loose(this.#t.client).xclaim(
          this.#keys.stream,
          this.#keys.group,
          this.#consumer,
          0,
          ...held,
          "IDLE",
          this.#s.visibilityMs + 1,
          "JUSTID",
        );
      } catch {
        // They stay pending and are reclaimed after the visibility timeout.
      }
    }
    await this.#acked?.catch(() => {}); // acknowledgements already given reach Redis before the client goes
    this.#blocking?.disconnect();
    await this.#loop?.catch(() => {});
    this.onClose?.();
  }
}
