/**
 * Recovery of messages a recipient could not open because it lost its state
 * (a restart with a volatile store): the sender's bounded memory of what it
 * sent lately, and the receiver's batching of its requests to send again.
 * docs/PROTOCOL.md, "Recovery", describes the exchange.
 *
 * @module
 */
import { ConfigError, ProtocolError } from "../crypto/errors.ts";
import { Budget } from "./budget.ts";
import { checkReceivedId } from "./limits.ts";

/** A message as it was sent, kept so that it can be sent again with the same spore id. */
export interface SentMessage {
  /** Message type. */
  type: string;
  /** The content, encoded (the bytes the spore carried, before sealing). */
  payload: Uint8Array;
  /** Priority. */
  priority: number;
  /** Expiry of the spore that carried it (Unix ms); a copy sent again expires then too. */
  expiresAt: number;
  /** Size of that spore, for the memory bound. */
  size: number;
}

/** Bounds of a {@linkcode SentMessages}. */
export interface SentMessagesOptions {
  /** Most bytes of spores remembered (sum of their sizes). Default 16 MiB. */
  maxBytes?: number;
  /** Most messages remembered. Default 65,536. */
  maxEntries?: number;
}

/**
 * What this agent sent lately, per recipient and spore id, until the spore
 * expires or the memory bound pushes it out (oldest first).
 *
 * @example
 * ```ts
 * import { SentMessages } from "@spores/spores";
 * const sent = new SentMessages({ maxEntries: 2 });
 * const payload = new Uint8Array([0xa2, 0x68, 0x69]); // "hi"
 * sent.add("bob", "a1", { type: "chat", payload, priority: 4, expiresAt: Date.now() + 1000, size: 100 });
 * console.assert(sent.take("bob", "a1")?.payload === payload);
 * console.assert(sent.take("bob", "a1") === undefined);
 * ```
 */
export class SentMessages {
  readonly #entries = new Map<string, SentMessage>();
  readonly #maxBytes: number;
  readonly #maxEntries: number;
  #bytes = 0;

  /** An empty memory with these bounds. */
  constructor(options: SentMessagesOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#maxEntries = options.maxEntries ?? 65_536;
    for (const [k, v] of [["maxBytes", this.#maxBytes], ["maxEntries", this.#maxEntries]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new ConfigError(`resend ${k} must be an integer ≥ 0`);
    }
  }

  /** Messages held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held (sum of spore sizes). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Remembers `message`, sent to `to` as spore `id`. */
  add(to: string, id: string, message: SentMessage): void {
    if (this.#maxEntries === 0 || message.size > this.#maxBytes) return;
    const key = `${to}\n${id}`;
    this.#drop(key);
    this.#entries.set(key, message);
    this.#bytes += message.size;
    const now = Date.now();
    for (const [k, m] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes && m.expiresAt > now) break;
      this.#drop(k);
    }
  }

  /** The message sent to `to` as `id`, removed from memory; undefined if it is gone or expired. */
  take(to: string, id: string): SentMessage | undefined {
    const key = `${to}\n${id}`;
    const m = this.#entries.get(key);
    this.#drop(key);
    return m && m.expiresAt > Date.now() ? m : undefined;
  }

  #drop(key: string): void {
    const m = this.#entries.get(key);
    if (!m) return;
    this.#entries.delete(key);
    this.#bytes -= m.size;
  }
}

/** Most spore ids one request names. */
export const RESEND_MAX_IDS = 512;

/** The content of a request to send again: the spores this agent could not open. */
export interface ResendRequest {
  /** The lost session the spores came on, hex; absent for one-shot spores. */
  session?: string;
  /** Their spore ids. */
  ids: string[];
}

/**
 * Checks the content of a received request to send again (strictly: an
 * authenticated peer may still send nonsense).
 *
 * @example
 * ```ts
 * import { parseResendRequest } from "@spores/spores";
 * console.assert(parseResendRequest({ ids: ["a1"] }).ids.length === 1);
 * ```
 */
export function parseResendRequest(content: unknown): ResendRequest {
  if (typeof content !== "object" || content === null || Array.isArray(content)) {
    throw new ProtocolError("a resend request must be a map");
  }
  const { session, ids, ...rest } = content as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw new ProtocolError("a resend request has unknown fields");
  if (session !== undefined && (typeof session !== "string" || !/^[0-9a-f]{32,128}$/.test(session))) {
    throw new ProtocolError("a resend request's session must be hex");
  }
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > RESEND_MAX_IDS) {
    throw new ProtocolError(`a resend request names 1 to ${RESEND_MAX_IDS} spore ids`);
  }
  for (const id of ids) {
    if (typeof id !== "string") throw new ProtocolError("a resend request's ids must be strings");
    checkReceivedId(id, "a resend request's spore id");
  }
  return session === undefined ? { ids: ids as string[] } : { session, ids: ids as string[] };
}

/** Bounds of a {@linkcode ResendRequests}. */
export interface ResendRequestsOptions {
  /** Spore ids asked for per sender per minute. Default 30,000. */
  idsPerMinute?: number;
  /** Sessions unknown here asked about per sender per minute. Default 8 (a restart loses one or two). */
  sessionsPerMinute?: number;
  /** How long ids wait to share a request, ms. Default 20. */
  batchMs?: number;
}

/** What became of a spore id to ask for: asked (the request is published), refused, or to try later. */
export type ResendOutcome = "asked" | "refused" | "later";

interface Batch {
  from: string;
  session?: string;
  ids: Map<string, (outcome: ResendOutcome) => void>;
  timer?: ReturnType<typeof setTimeout>;
  sending: boolean;
}

/**
 * The receiving side of recovery: gathers the ids of spores this agent
 * cannot open into requests to their senders, one request in flight per
 * (sender, session) and at most 512 ids each, within per-sender budgets
 * (ids per minute; new unknown sessions per minute, beyond which the spores
 * are refused: a sender claimed by many unknown sessions is being forged).
 *
 * @example
 * ```ts
 * import { ResendRequests } from "@spores/spores";
 * const sent: unknown[] = [];
 * const requests = new ResendRequests(async (to, request) => void sent.push([to, request]));
 * console.assert((await requests.ask("bob", undefined, "a1")) === "asked");
 * console.assert(sent.length === 1);
 * ```
 */
export class ResendRequests {
  readonly #send: (to: string, request: ResendRequest) => Promise<void>;
  readonly #ids: Budget;
  readonly #sessions: Budget;
  readonly #batchMs: number;
  readonly #batches = new Map<string, Batch>();
  /** (sender, session) pairs asked about lately, until when (ms). */
  readonly #known = new Map<string, number>();
  #closed = false;

  /** Requests published through `send`, within `options`' bounds. */
  constructor(
    send: (to: string, request: ResendRequest) => Promise<void>,
    options: ResendRequestsOptions = {},
  ) {
    this.#send = send;
    const ids = options.idsPerMinute ?? 30_000;
    const sessions = options.sessionsPerMinute ?? 8;
    this.#ids = new Budget(ids, ids);
    this.#sessions = new Budget(sessions, sessions);
    this.#batchMs = options.batchMs ?? 20;
  }

  /** Asks `from` for spore `id` (of `session`, for a session spore); resolves once that is decided. */
  ask(from: string, session: string | undefined, id: string): Promise<ResendOutcome> {
    if (this.#closed) return Promise.resolve("later");
    const key = `${from}\n${session ?? ""}`;
    const now = Date.now();
    if (session !== undefined && (this.#known.get(key) ?? 0) < now) {
      if (!this.#sessions.take(from, 1, now)) return Promise.resolve("refused");
      this.#known.delete(key);
      this.#known.set(key, now + 600_000);
      if (this.#known.size > 10_000) this.#known.delete(this.#known.keys().next().value!);
    }
    let batch = this.#batches.get(key);
    const waiting = batch?.ids.get(id);
    if (batch && waiting) {
      return new Promise((resolve) => batch!.ids.set(id, (o) => (waiting(o), resolve(o))));
    }
    if (!this.#ids.take(from, 1, now)) return Promise.resolve("later");
    if (!batch) {
      batch = { from, session, ids: new Map(), sending: false };
      this.#batches.set(key, batch);
    }
    const b = batch;
    const outcome = new Promise<ResendOutcome>((resolve) => b.ids.set(id, resolve));
    if (!b.sending && b.timer === undefined) {
      b.timer = setTimeout(() => void this.#flush(key), b.ids.size >= RESEND_MAX_IDS ? 0 : this.#batchMs);
    }
    return outcome;
  }

  async #flush(key: string): Promise<void> {
    const batch = this.#batches.get(key);
    if (!batch) return;
    batch.timer = undefined;
    const take = [...batch.ids.entries()].slice(0, RESEND_MAX_IDS);
    for (const [id] of take) batch.ids.delete(id);
    batch.sending = true;
    let outcome: ResendOutcome = "asked";
    try {
      const ids = take.map(([id]) => id);
      await this.#send(batch.from, batch.session === undefined ? { ids } : { session: batch.session, ids });
    } catch {
      outcome = "later";
    }
    batch.sending = false;
    for (const [, resolve] of take) resolve(outcome);
    if (batch.ids.size === 0) this.#batches.delete(key);
    else if (this.#closed) this.#drop(batch);
    else batch.timer = setTimeout(() => void this.#flush(key), 0);
  }

  #drop(batch: Batch): void {
    clearTimeout(batch.timer);
    for (const resolve of batch.ids.values()) resolve("later");
    batch.ids.clear();
  }

  /** Stops: ids still waiting resolve `"later"` (their spores go back to the broker). */
  close(): void {
    this.#closed = true;
    for (const batch of this.#batches.values()) if (!batch.sending) this.#drop(batch);
    this.#batches.clear();
  }
}
