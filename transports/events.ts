/**
 * What a transport reports on its own: its broker link lost and back, and
 * messages it moved to a dead-letter store by itself (a delivery limit
 * reached without the agent asking). A transport that reports them has an
 * `events` property ({@linkcode TransportEvents}); the agent re-emits them as
 * its `disconnected`, `reconnected` and `dead-letter` events.
 *
 * @module
 */
import type { Address } from "./transport.ts";
import { explainConnectError } from "./connect_error.ts";

/** Details of a `disconnected` event: the link to the broker is lost. */
export interface Disconnected {
  /** The transport, e.g. `"redis"`. */
  transport: string;
  /** The broker, without credentials (`redis://127.0.0.1:6379`); several for a cluster. */
  broker: string;
  /** Why, in plain words without credentials (safe to log). */
  reason: string;
  /** The error the broker client reported, if any. */
  cause?: unknown;
}

/** Details of a `reconnected` event: the link lost earlier is back. */
export interface Reconnected {
  /** The transport, e.g. `"redis"`. */
  transport: string;
  /** The broker, without credentials. */
  broker: string;
  /** How long the link was down, ms. */
  downMs: number;
}

/**
 * Details of a `dead-letter` event raised by a transport: it moved a message
 * to its dead-letter store by itself (or, for SQS, saw the broker about to do
 * so), after the message was delivered `attempts` times without being
 * acknowledged (a handler process that died each time, for instance).
 */
export interface TransportDeadLetter {
  /** Tells it apart from a dead letter the agent decided on. */
  source: "transport";
  /** The transport, e.g. `"redis"`. */
  transport: string;
  /** The queue it was read from. */
  address: Address;
  /** For a channel: the member whose copy it was. */
  member?: string;
  /** Size of the message, bytes (sealed: the transport never sees plaintext). */
  size: number;
  /** Deliveries made. */
  attempts: number;
  /** Why, in plain words. */
  reason: string;
  /** Where it went (a stream, topic, queue or subject), or `undefined` where the broker decides. */
  store?: string;
}

/** The events of a transport, for `TransportEvents.addEventListener`. */
export interface TransportEventMap {
  /** The link to the broker is lost (once per outage). */
  disconnected: CustomEvent<Disconnected>;
  /** The link is back (once per outage, after `disconnected`). */
  reconnected: CustomEvent<Reconnected>;
  /** The transport moved a message to its dead-letter store by itself. */
  "dead-letter": CustomEvent<TransportDeadLetter>;
}

/**
 * The event surface of a transport: `disconnected` and `reconnected` once
 * per outage and in that order, however many connections or reports make
 * it up, and `dead-letter` for each message the transport dead-lettered by
 * itself.
 *
 * @example
 * ```ts
 * import { TransportEvents } from "@spores/spores";
 * const events = new TransportEvents("redis", "redis://127.0.0.1:6379", "127.0.0.1:6379");
 * const seen: string[] = [];
 * events.addEventListener("disconnected", (e) => seen.push(`down: ${e.detail.reason}`));
 * events.addEventListener("reconnected", (e) => seen.push(`up after ${e.detail.downMs >= 0}`));
 * events.linkDown(new Error("socket closed"));
 * events.linkDown(new Error("socket closed")); // the same outage: no second event
 * events.linkUp();
 * console.assert(seen.length === 2 && events.connected);
 * ```
 */
export class TransportEvents extends EventTarget {
  /** The transport's name. */
  readonly transport: string;
  /** The broker, without credentials. */
  readonly broker: string;
  readonly #where: string;
  #downSince: number | undefined;
  #closed = false;

  /**
   * `broker` is what events say (from `describeUrl`), `where` the `host:port` that error phrases name.
   */
  constructor(transport: string, broker: string, where: string = broker) {
    super();
    this.transport = transport;
    this.broker = broker;
    this.#where = where;
  }

  /** False between a `disconnected` event and the next `reconnected` one. */
  get connected(): boolean {
    return this.#downSince === undefined;
  }

  /** Reports the link lost; the first report of an outage raises `disconnected`, later ones nothing. */
  linkDown(cause?: unknown): void {
    if (this.#closed || this.#downSince !== undefined) return;
    this.#downSince = performance.now();
    const reason = cause === undefined ? "the connection closed" : explainConnectError(cause, this.#where);
    this.dispatchEvent(
      new CustomEvent<Disconnected>("disconnected", {
        detail: { transport: this.transport, broker: this.broker, reason, cause },
      }),
    );
  }

  /** Reports the link working; raises `reconnected` if it was reported lost. */
  linkUp(): void {
    if (this.#closed || this.#downSince === undefined) return;
    const downMs = Math.max(0, Math.round(performance.now() - this.#downSince));
    this.#downSince = undefined;
    this.dispatchEvent(
      new CustomEvent<Reconnected>("reconnected", {
        detail: { transport: this.transport, broker: this.broker, downMs },
      }),
    );
  }

  /** Reports a message the transport dead-lettered by itself. */
  deadLettered(detail: Omit<TransportDeadLetter, "source" | "transport">): void {
    this.dispatchEvent(
      new CustomEvent<TransportDeadLetter>("dead-letter", {
        detail: { source: "transport", transport: this.transport, ...detail },
      }),
    );
  }

  /** Raises nothing more (the transport is closing: its connections going away is no outage). */
  close(): void {
    this.#closed = true;
  }

  /** Listens for a transport event. */
  override addEventListener<K extends keyof TransportEventMap>(
    type: K,
    listener: (event: TransportEventMap[K]) => void,
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
}
