/**
 * Per-agent counters and latency histograms.
 *
 * @module
 */

/** A latency histogram with fixed buckets (upper bounds in ms). */
export interface Histogram {
  /** Upper bounds of the buckets, ms; the last bucket is unbounded. */
  bounds: readonly number[];
  /** Observations per bucket (one more than `bounds`). */
  counts: number[];
  /** Number of observations. */
  count: number;
  /** Sum of observations, ms. */
  sum: number;
  /** Largest observation, ms. */
  max: number;
}

/** A snapshot of an agent's metrics. */
export interface AgentMetrics {
  /** Spores published. */
  sent: number;
  /** Spores whose handler succeeded. */
  delivered: number;
  /** Redeliveries acknowledged without calling a handler. */
  duplicates: number;
  /** Spores refused before any handler, by error code. */
  rejected: Record<string, number>;
  /** Handshakes completed (either side). */
  handshakes: number;
  /** Sending epochs started after the first (key rotations) and KEM key rotations. */
  rotations: number;
  /** Handler failures that led to a redelivery. */
  redeliveries: number;
  /**
   * Spores given up on: after the agent's redelivery limit, broadcasts whose sender key never came, and
   * those the transport dead-lettered by itself (also counted in `transportDeadLetters`).
   */
  deadLetters: number;
  /** Of `deadLetters`, those the transport moved by itself after its own delivery limit. */
  transportDeadLetters: number;
  /** Times the transport lost its link to the broker. */
  disconnections: number;
  /** Spores with no handler for their type (acknowledged). */
  unhandled: number;
  /** Spores this agent could not open for lack of state it lost, whose senders it asked to send them again. */
  resendRequested: number;
  /** Messages sent again because their recipient asked (it had lost the state to open them). */
  resent: number;
  /** Messages a recipient asked for again that this agent no longer held (each also a `lost` event). */
  lost: number;
  /** Time from a spore's creation to its handler's completion. */
  deliveryLatency: Histogram;
  /** Time a handler took. */
  handlerLatency: Histogram;
}

const BOUNDS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000] as const;

function histogram(): Histogram {
  return { bounds: BOUNDS, counts: new Array(BOUNDS.length + 1).fill(0), count: 0, sum: 0, max: 0 };
}

/** Records an observation into a histogram. */
export function observe(h: Histogram, ms: number): void {
  let i = 0;
  while (i < h.bounds.length && ms > h.bounds[i]!) i++;
  h.counts[i]!++;
  h.count++;
  h.sum += ms;
  if (ms > h.max) h.max = ms;
}

/** Fresh, zeroed metrics. */
export function emptyMetrics(): AgentMetrics {
  return {
    sent: 0,
    delivered: 0,
    duplicates: 0,
    rejected: {},
    handshakes: 0,
    rotations: 0,
    redeliveries: 0,
    deadLetters: 0,
    transportDeadLetters: 0,
    disconnections: 0,
    unhandled: 0,
    resendRequested: 0,
    resent: 0,
    lost: 0,
    deliveryLatency: histogram(),
    handlerLatency: histogram(),
  };
}

/** A deep copy, so callers cannot change the live counters. */
export function snapshot(m: AgentMetrics): AgentMetrics {
  return structuredClone(m);
}
