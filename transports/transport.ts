/**
 * The transport contract: what the agent runtime needs from a broker. A
 * transport moves opaque bytes (sealed spores); it never sees keys or
 * plaintext, and it is never trusted for authenticity.
 *
 * `docs/TRANSPORTS.md` says what each capability promises.
 *
 * @module
 */
import { TransportError } from "../crypto/errors.ts";
import type { Directory } from "../spore/directory.ts";
import type { TransportEvents } from "./events.ts";

/** Where bytes go: one agent's queue, or a channel that fans out to its members. */
export type Address = { readonly agent: string } | { readonly channel: string };

/** Options of one publication. */
export interface PublishOptions {
  /** 0 (lowest) to 9 (highest); honoured where `capabilities.priority`. Default 4. */
  priority?: number;
  /** Time to live in ms; after it the broker may drop the message. */
  ttlMs?: number;
  /** An id the broker may use to drop duplicate publications (the spore id). */
  dedupId?: string;
  /** The message type, for brokers that route on it (AMQP routing keys). Public header data only. */
  type?: string;
}

/** One message handed to a subscriber. */
export interface Delivery {
  /** The published bytes. */
  readonly bytes: Uint8Array;
  /** How many times this message was delivered before (0 on first delivery). */
  readonly redeliveries: number;
  /** The dedup id it was published with, if any. */
  readonly dedupId?: string;
  /** Priority it was published with. */
  readonly priority: number;
  /** Done with it: the broker forgets it. */
  ack(): Promise<void>;
  /** Not done: the broker delivers it again (or dead-letters it, where it does that itself). */
  nack(): Promise<void>;
  /** Given up on: the broker moves it to its dead-letter store (where it has one) and forgets it here. */
  deadLetter?(): Promise<void>;
}

/** Receives deliveries. The transport waits for it before counting the message as handled. */
export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

/** A running subscription. */
export interface Subscription {
  /** Stops new deliveries; unacknowledged ones are redelivered later. */
  close(): Promise<void>;
}

/** Options of a subscription. */
export interface SubscribeOptions {
  /** For a channel: the member this subscription reads for (each member gets every message). */
  member?: string;
  /** Most deliveries handed out and not yet acknowledged. Default 64. */
  prefetch?: number;
}

/** What {@linkcode Transport.purge} removes besides the agent's own queue, card and dead letters. */
export interface PurgeOptions {
  /**
   * Channels whose membership of the agent to remove: its member queue (or
   * consumer group, durable consumer, session, SNS subscription) on each, with
   * what waits there. A transport cannot list an agent's memberships on every
   * broker, so they are named here; a channel the agent never joined is skipped.
   */
  channels?: readonly string[];
}

/** What {@linkcode Transport.purge} did, by broker name. */
export interface PurgeReport {
  /** Broker objects removed or emptied: queues, streams, consumers, sessions, keys, subscriptions. */
  readonly removed: string[];
  /** Broker objects left in place, each with the reason. */
  readonly kept: { readonly name: string; readonly reason: string }[];
}

/** What a transport promises; see `docs/TRANSPORTS.md`. */
export interface TransportCapabilities {
  /** Messages survive a broker restart. */
  readonly durable: boolean;
  /** One publisher's messages to one address arrive in order (between redeliveries). */
  readonly ordered: boolean;
  /** Higher priority is delivered first when a backlog exists. */
  readonly priority: boolean;
  /** The broker drops messages whose TTL has passed. */
  readonly ttl: boolean;
  /** Largest message the broker accepts, in bytes. */
  readonly maxMessageBytes: number;
  /** Channels fan out to every member, including members that were offline. */
  readonly broadcast: boolean;
}

/**
 * A broker connection.
 *
 * @example
 * ```ts
 * import { createTransport } from "@spores/spores/memory";
 * const transport = await createTransport("memory://example");
 * const sub = await transport.subscribe({ agent: "bob" }, async (d) => {
 *   console.log(d.bytes.length);
 *   await d.ack();
 * });
 * await transport.publish({ agent: "bob" }, new Uint8Array([1, 2, 3]));
 * await sub.close();
 * await transport.close();
 * ```
 */
export interface Transport {
  /** The URL scheme family, e.g. `"memory"`, `"redis"`. */
  readonly name: string;
  /** What this transport promises. */
  readonly capabilities: TransportCapabilities;
  /** A directory of agent cards kept by this broker, if it offers one. */
  readonly directory?: Directory;
  /**
   * Where the transport reports its broker link lost (`disconnected`) and back (`reconnected`), and messages
   * it dead-lettered by itself (`dead-letter`); see {@linkcode TransportEvents}. The agent re-emits them.
   */
  readonly events?: TransportEvents;
  /** Publishes `bytes`; resolves when the broker has accepted them. */
  publish(to: Address, bytes: Uint8Array, options?: PublishOptions): Promise<void>;
  /** Delivers messages for `from` to `handler` until the subscription is closed. */
  subscribe(from: Address, handler: DeliveryHandler, options?: SubscribeOptions): Promise<Subscription>;
  /** Closes gracefully: subscriptions stop, unacknowledged messages stay with the broker. */
  close(): Promise<void>;
  /**
   * Removes from the broker what `agent` created there: its queue (or stream,
   * consumer group, durable consumer, persistent session) with the spores
   * waiting in it, its dead letters, its card in this transport's directory,
   * its session state where the transport keeps one (the Redis session
   * store), and its membership of each of `options.channels`. Only names that
   * belong to `agent` alone are touched: other agents' queues, a channel's own
   * stream or topic (other members read it), and spores already delivered
   * elsewhere stay. A name this agent might share with another (see each
   * transport) is kept and reported.
   *
   * Stop every subscription of `agent` first (in every process): a running
   * consumer may re-create what was removed. Spores published to `agent`
   * after the purge wait for its next start (or, where the broker drops them
   * for want of a queue, are refused to their sender). `Agent.destroy()`
   * closes the agent and calls this.
   *
   * @example
   * ```ts
   * import { createTransport } from "@spores/spores/memory";
   * const transport = await createTransport("memory://purge-example");
   * await transport.publish({ agent: "old-worker" }, new Uint8Array([1]));
   * const report = await transport.purge!("old-worker", { channels: ["news"] });
   * console.log(report.removed);
   * await transport.close();
   * ```
   */
  purge?(agent: string, options?: PurgeOptions): Promise<PurgeReport>;
}

/** How a transport module is loaded by URL scheme. */
export type TransportFactory = (url: string, options?: Record<string, unknown>) => Promise<Transport>;

/**
 * Fails with a `TransportError` if `bytes` is larger than a transport accepts.
 *
 * @example
 * ```ts
 * import { checkMessageSize } from "@spores/spores";
 * checkMessageSize(new Uint8Array(10), 1024);
 * ```
 */
export function checkMessageSize(bytes: Uint8Array, limit: number): void {
  if (bytes.length > limit) {
    throw new TransportError(`message of ${bytes.length} bytes over the limit of ${limit}`);
  }
}
