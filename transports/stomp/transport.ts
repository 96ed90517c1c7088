/**
 * The STOMP transport (`@stomp/stompjs`) for RabbitMQ's STOMP adapter, over
 * TCP (`stomp://`), TLS (`stomp+ssl://`) or WebSocket (`stomp+ws://`,
 * `stomp+wss://`): durable queues with priorities and dead letters, persistent
 * messages with per-message TTL, a RECEIPT for every SEND, `client-individual`
 * acknowledgements after the handler, and reconnection with backoff that
 * subscribes again (`./connection.ts`). See `./destinations.ts` for the mapping.
 *
 * @module
 */
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
import { type Headers, StompDestinations } from "./destinations.ts";
import { StompDirectory } from "./directory.ts";
import { describeUrl, explainConnectError, hostPort } from "../connect_error.ts";
import { TransportEvents } from "../events.ts";

/** A SEND whose RECEIPT was lost because its connection closed first (see `StompConnection`). */
function receiptLost(cause: unknown): boolean {
  return cause instanceof Error &&
    cause.message.startsWith("the connection closed before RabbitMQ confirmed");
}

/** `host:port` of a STOMP URL (Web-STOMP's port for `stomp+ws(s)://`). */
const stompHostPort = (url: string): string => hostPort(url, /^stomp\+wss?:/.test(url) ? 15674 : 61613);
import {
  parseStompUrl,
  StompConnection,
  type StompConnectionOptions,
  type StompEndpoint,
  type StompMessage,
} from "./connection.ts";
import type { StompTransportOptions } from "./options.ts";
export type { StompTransportOptions } from "./options.ts";
import { OVERSIZE_HEADER } from "./frame_gate.ts";

interface SubState {
  conn: StompConnection;
  handler: DeliveryHandler;
  closed: boolean;
  counts: Map<string, number>;
}

/**
 * A RabbitMQ STOMP transport for agents: one connection for publishing, and
 * one per subscription (so that closing a subscription returns its
 * unacknowledged messages to the queue).
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/stomp";
 * const transport = await createTransport("stomp://guest:guest@127.0.0.1:61613");
 * await transport.close();
 * ```
 */
export class StompTransport implements Transport {
  /** `"stomp"`. */
  readonly name = "stomp";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** Agent cards in RabbitMQ, read over STOMP. */
  readonly directory: StompDirectory;
  /** The destinations of this transport's prefix. */
  readonly destinations: StompDestinations;
  /**
   * Messages over `maxMessageBytes` received (over `stomp://` and `stomp+ssl://`): their bodies were not read,
   * and they went to the agent's dead-letter queue (see `./frame_gate.ts`).
   */
  oversized = 0;
  /** Link lost and back (the publishing connection's). */
  readonly events: TransportEvents;
  readonly #endpoint: StompEndpoint;
  readonly #o: StompConnectionOptions & { maxMessageBytes: number };
  readonly #subs = new Set<SubState>();
  readonly #connections = new Set<StompConnection>();
  readonly #declared = new Set<string>();
  readonly #tag = crypto.randomUUID().slice(0, 12);
  #pub!: StompConnection;
  #closed = false;
  #pubSeq = 0;
  readonly #attempts: number;
  /** SENDs made again after their RECEIPT was lost with the connection. */
  republished = 0;

  private constructor(endpoint: StompEndpoint, options: StompTransportOptions, url: string) {
    this.#endpoint = endpoint;
    this.events = new TransportEvents("stomp", describeUrl(url), stompHostPort(url));
    this.#o = {
      heartbeatMs: options.heartbeatMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      publishTimeoutMs: options.publishTimeoutMs ?? 30_000,
      maxBackoffMs: options.maxBackoffMs ?? 5000,
      maxMessageBytes: options.maxMessageBytes ?? 4 << 20,
      tls: options.tls,
    };
    this.#attempts = options.publishAttempts ?? 5;
    if (!Number.isSafeInteger(this.#attempts) || this.#attempts < 1) {
      throw new ConfigError("publishAttempts must be a whole number from 1");
    }
    this.destinations = new StompDestinations(
      options.prefix ?? "spores",
      options.topology ?? "stomp",
      options.queueType ?? "classic",
    );
    const classic = this.destinations.queueType === "classic";
    this.directory = new StompDirectory(this, this.destinations);
    this.capabilities = Object.freeze({
      durable: true,
      ordered: true,
      priority: classic,
      ttl: classic,
      maxMessageBytes: this.#o.maxMessageBytes,
      broadcast: true,
    });
  }

  /** Connects (a `TransportError` if the broker cannot be reached or refuses the login). */
  static async connect(url: string, options: StompTransportOptions = {}): Promise<StompTransport> {
    const t = new StompTransport(parseStompUrl(url), options, url);
    try {
      t.#pub = await t.openConnection();
      t.#pub.events = t.events;
    } catch (cause) {
      if (cause instanceof ConfigError) throw cause;
      const where = stompHostPort(url);
      throw new TransportError(
        `cannot reach RabbitMQ STOMP at ${describeUrl(url)}: ${explainConnectError(cause, where)}`,
        { cause },
      );
    }
    return t;
  }

  /** @internal A new connection to the same broker, closed with the transport. */
  async openConnection(): Promise<StompConnection> {
    if (this.#closed) throw new TransportError("stomp transport is closed");
    const c = await StompConnection.open(this.#endpoint, this.#o);
    this.#connections.add(c);
    return c;
  }

  /** @internal Closes a connection opened with `openConnection`. */
  async closeConnection(c: StompConnection): Promise<void> {
    this.#connections.delete(c);
    await c.close();
  }

  /** Local TCP ports of the open connections (`stomp://` and `stomp+ssl://`), to find them in the broker. */
  get localPorts(): number[] {
    return [...this.#connections].map((c) => c.localPort).filter((p): p is number => p !== undefined);
  }

  /** Connections made so far, over all of this transport's connections (reconnections included). */
  get connections(): number {
    let n = 0;
    for (const c of this.#connections) n += c.connections;
    return n;
  }

  /** @internal Sends on the publishing connection; resolves on the broker's RECEIPT. */
  send(destination: string, body: Uint8Array, headers: Headers): Promise<void> {
    if (this.#closed) return Promise.reject(new TransportError("stomp transport is closed"));
    return this.#pub.send(destination, body, headers);
  }

  /** Publishes; resolves when RabbitMQ's RECEIPT for the SEND arrived. */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    if (this.#closed) throw new TransportError("stomp transport is closed");
    checkMessageSize(bytes, this.capabilities.maxMessageBytes);
    const priority = options.priority ?? 4;
    if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
      throw new ConfigError("priority must be an integer from 0 to 9");
    }
    let destination: string;
    let declare: Headers = {};
    if ("agent" in to) {
      // In the "stomp" topology SEND declares the queue as its subscriber does, so it never conflicts.
      ({ destination, headers: declare } = this.destinations.agentSend(to.agent, options.type));
    } else {
      destination = this.destinations.channelSend(to.channel, options.type);
    }
    const headers: Headers = {
      ...declare,
      persistent: "true",
      priority: String(priority),
      "content-type": "application/vnd.spores",
    };
    if (options.ttlMs !== undefined) {
      if (!(options.ttlMs >= 0) || !Number.isFinite(options.ttlMs)) {
        throw new ConfigError("ttlMs must be >= 0");
      }
      headers.expiration = String(Math.max(1, Math.floor(options.ttlMs)));
    }
    // The AMQP message id: the AMQP transport reads it as the dedup id.
    if (options.dedupId !== undefined) headers["amqp-message-id"] = checkId(options.dedupId, "dedup id");
    if (options.type !== undefined) headers["spores-type"] = checkId(options.type, "type");
    headers["spores-pub"] = `${this.#tag}.${++this.#pubSeq}`;
    const started = Date.now();
    for (let attempt = 1;; attempt++) {
      try {
        if ("agent" in to) await this.#declare(to.agent);
        await this.#pub.send(destination, bytes, headers);
        return;
      } catch (cause) {
        if (this.#closed) throw new TransportError("stomp transport is closed", { cause });
        if (!receiptLost(cause)) {
          throw new TransportError("RabbitMQ did not confirm a STOMP publish", { cause });
        }
        // The RECEIPT was lost with the connection: RabbitMQ may have the message or not. The same SEND (same
        // message id) goes again once the connection is back; a receiver drops a copy it has handled.
        if (attempt >= this.#attempts || Date.now() - started >= this.#o.publishTimeoutMs) {
          throw new TransportError(
            `the outcome of a STOMP publish to ${destination} is unknown: its receipt was lost with the ` +
              `connection (${attempt} attempt(s) in ${
                Date.now() - started
              } ms); RabbitMQ may have it or not. ` +
              `Sending the same spore again (the same id) is safe: a receiver drops a copy it has handled`,
            { cause },
          );
        }
        this.republished++;
      }
    }
  }

  /**
   * Declares what spores for `id` need (its dead-letter queue; in the `"amqp"` topology also its bound
   * queue, so that no SEND is unroutable), once per transport: SUBSCRIBEs on a short-lived connection,
   * whose close returns anything it was handed.
   */
  async #declare(id: string): Promise<void> {
    if (this.#declared.has(id)) return;
    const c = await this.openConnection();
    try {
      for (const d of this.destinations.declarations(id)) {
        await c.subscribe(
          d.destination,
          { ...d.headers, ack: "client-individual", "prefetch-count": "1" },
          () => {},
        );
      }
    } finally {
      await this.closeConnection(c);
    }
    this.#declared.add(id);
  }

  #deliver(s: SubState, m: StompMessage, generation: number): void {
    const pub = m.headers["spores-pub"] ?? m.headers["amqp-message-id"] ?? m.headers["message-id"] ?? "";
    const seen = s.counts.get(pub) ?? 0;
    // Quorum queues count deliveries themselves (x-delivery-count), also across consumers and restarts.
    const counted = Number(m.headers["x-delivery-count"] ?? 0);
    const redeliveries = Math.max(
      seen,
      m.headers.redelivered === "true" ? 1 : 0,
      Number.isSafeInteger(counted) && counted > 0 ? counted : 0,
    );
    const priority = Number(m.headers.priority ?? 4);
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return Promise.resolve();
      settled = true;
      // A message of a connection that has since closed cannot be settled: the broker redelivers it.
      if (!s.closed && s.conn.connected && generation === s.conn.generation) {
        try {
          f();
        } catch {
          // the connection went away meanwhile: the broker redelivers it
        }
      }
      return Promise.resolve();
    };
    const delivery: Delivery = {
      bytes: m.binaryBody,
      redeliveries,
      dedupId: m.headers["amqp-message-id"] || undefined,
      priority: Number.isInteger(priority) && priority >= 0 && priority <= 9 ? priority : 4,
      ack: () =>
        settle(() => {
          s.counts.delete(pub);
          m.ack();
        }),
      nack: () =>
        settle(() => {
          s.counts.set(pub, redeliveries + 1);
          if (s.counts.size > 10_000) s.counts.delete(s.counts.keys().next().value!);
          m.nack({ requeue: "true" });
        }),
      deadLetter: () =>
        settle(() => {
          s.counts.delete(pub);
          m.nack({ requeue: "false" }); // to the dead-letter queue
        }),
    };
    if (m.headers[OVERSIZE_HEADER] !== undefined && m.binaryBody.length === 0) {
      // Over the size limit: its body was skipped unread. Kept in the dead-letter queue, not returned (it would
      // come back at once, every time).
      this.oversized++;
      void delivery.deadLetter!();
      return;
    }
    queueMicrotask(async () => {
      try {
        await s.handler(delivery);
      } catch {
        await delivery.nack();
      }
    });
  }

  /**
   * @internal Subscribes `handler` to `destination` with `headers` on a
   * connection of its own (kept across reconnections); closing the
   * subscription closes that connection.
   */
  async subscribeRaw(destination: string, headers: Headers, handler: DeliveryHandler): Promise<Subscription> {
    let conn: StompConnection;
    try {
      conn = await this.openConnection();
    } catch (cause) {
      throw new TransportError(`cannot subscribe to ${destination}`, { cause });
    }
    const s: SubState = { conn, handler, closed: false, counts: new Map() };
    try {
      await conn.subscribe(destination, headers, (m, generation) => this.#deliver(s, m, generation));
    } catch (cause) {
      await this.closeConnection(conn);
      throw new TransportError(`cannot subscribe to ${destination}`, { cause });
    }
    this.#subs.add(s);
    return {
      close: async () => {
        if (s.closed) return;
        s.closed = true;
        this.#subs.delete(s);
        await this.closeConnection(conn); // unacknowledged messages return to the queue
      },
    };
  }

  /** Consumes an agent's queue, or a channel member's durable subscription. */
  async subscribe(
    from: Address,
    handler: DeliveryHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.#closed) throw new TransportError("stomp transport is closed");
    const prefetch = options.prefetch ?? 64;
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) {
      throw new ConfigError("prefetch must be an integer from 1 to 65535");
    }
    const common = { ack: "client-individual", "prefetch-count": String(prefetch) };
    let d: { destination: string; headers: Headers };
    let owner: string;
    if ("agent" in from) {
      d = this.destinations.agentSubscription(from.agent);
      owner = from.agent;
    } else {
      owner = checkId(options.member, "channel member");
      d = this.destinations.memberSubscription(from.channel, owner);
    }
    await this.#declare(owner);
    return await this.subscribeRaw(d.destination, { ...d.headers, ...common }, handler);
  }

  /**
   * Deletes the queues `agent` created through this transport (see
   * {@linkcode Transport.purge}): its queue with the spores waiting there,
   * its dead-letter queue, its card queue, and its member queue on each of
   * `options.channels`. STOMP has no command to delete a queue; RabbitMQ
   * deletes the queue of a durable `/topic/` subscription on an UNSUBSCRIBE
   * with `durable: true`, by the `x-queue-name` it names: each queue is taken
   * by its name (with the arguments it was declared with) from a `/topic/`
   * subscription whose routing key no spore uses, then unsubscribed. A
   * member queue name is kept (and reported) when the channel or the id
   * holds a `.`: the name then also stands for another (channel, member)
   * pair, whose queue it may be.
   */
  async purge(agent: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    if (this.#closed) throw new TransportError("stomp transport is closed");
    const id = checkId(agent, "agent");
    const d = this.destinations;
    const report: PurgeReport = { removed: [], kept: [] };
    const queues: [string, Headers][] = [
      [d.agentQueue(id), d.agentSubscription(id).headers],
      [d.deadQueue(id), d.dead(id).headers],
      [d.cardQueue(id), d.card(id).headers],
    ];
    for (const c of options.channels ?? []) {
      const channel = checkId(c, "channel");
      const queue = d.memberQueue(channel, id);
      if (channel.includes(".") || id.includes(".")) {
        report.kept.push({ name: queue, reason: "the name may be another (channel, member) pair's queue" });
      } else queues.push([queue, d.memberSubscription(channel, id).headers]);
    }
    const conn = await this.openConnection();
    try {
      for (const [queue, headers] of queues) {
        const { id: _, ...declared } = headers;
        await conn.subscribe(
          `/topic/${d.prefix}.purge`,
          { ...declared, id: queue, "x-queue-name": queue, ack: "client-individual", "prefetch-count": "1" },
          () => {},
        );
        await conn.unsubscribe(queue, { durable: "true", "x-queue-name": queue });
        report.removed.push(queue);
      }
    } catch (cause) {
      throw new TransportError(`cannot purge agent ${id} over STOMP`, { cause });
    } finally {
      await this.closeConnection(conn);
    }
    this.#declared.delete(id);
    return report;
  }

  /** `await using transport = await StompTransport.connect(url)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Closes: subscriptions stop, unacknowledged messages return to their queues, the connections end. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.events.close();
    for (const s of this.#subs) s.closed = true;
    this.#subs.clear();
    await this.directory.close();
    await Promise.all([...this.#connections].map((c) => this.closeConnection(c)));
  }
}
