/**
 * Recovery of messages a recipient could not open because it lost its state
 * (a restart with a volatile store): the sender's bounded memory of what it
 * sent lately, and the receiver's batching of its requests to send again.
 * docs/PROTOCOL.md, "Recovery", describes the exchange.
 *
 * @module
 */
import { ConfigError, ProtocolError } from "../crypto/errors.ts";
import { checkReceivedId } from "./limits.ts";

/** A message as it was sent, kept so that it can be sent again with the same spore id. */
export interface SentMessage {
  /** Message type. */
  type: string;
  /** A copy of the content. */
  content: unknown;
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
 * sent.add("bob", "a1", { type: "chat", content: "hi", priority: 4, expiresAt: Date.now() + 1000, size: 100 });
 * console.assert(sent.take("bob", "a1")?.content === "hi");
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
