/**
 * The shapes of messages going in and out of the protocol layer.
 *
 * @module
 */

/** A message to send. */
export interface OutgoingSpore {
  /** Message type: 1..128 characters of `[A-Za-z0-9._:-]`. */
  type: string;
  /** The knowledge: JSON-like values and `Uint8Array`, encoded with MessagePack. */
  content?: unknown;
  /** 0 (lowest) to 9 (highest); default 4. */
  priority?: number;
  /** Time to live in ms; default 300,000 (the clock-skew window). */
  ttlMs?: number;
  /** Spore id; default 32 random hex digits. */
  id?: string;
  /**
   * The content already encoded (`encodeContent`); when given, `content` is
   * not read. Lets a caller that checked the content once, or sends the same
   * message again, skip another walk over it.
   */
  payload?: Uint8Array;
}

/** A message that passed every check. */
export interface OpenedSpore {
  /** Spore id. */
  id: string;
  /** Message type. */
  type: string;
  /** Sender (authenticated). */
  from: string;
  /** Recipient (this agent) or channel. */
  to: string;
  /** Decoded content. */
  content: unknown;
  /** Creation time (Unix ms), as the sender stated it. */
  createdAt: number;
  /** Expiry (Unix ms). */
  expiresAt: number;
  /** Priority 0..9. */
  priority: number;
  /** Suite name. */
  suite: string;
  /** How it travelled. */
  kind: "sealed" | "session" | "broadcast";
  /** Session id (hex) for session spores. */
  sessionId?: string;
}

/** What opening a spore gave. Rejections are thrown as `SecurityError` / `ProtocolError`. */
export type OpenResult =
  /** A message for a handler. */
  | { status: "message"; spore: OpenedSpore }
  /**
   * A redelivery of a spore already accepted. `spore` is the message again (for a handler that did not finish:
   * the runtime decides with its delivery receipts); `reply` re-answers a repeated hello.
   */
  | { status: "duplicate"; id: string; from: string; spore?: OpenedSpore; reply?: Uint8Array }
  /** A handshake step: send `reply` (a welcome) to `peer` if present. */
  | { status: "handshake"; peer: string; sessionId: string; reply?: Uint8Array }
  /** A hello that lost a simultaneous open: the peer answers ours instead. */
  | { status: "ignored"; from: string; reason: string }
  /** A broadcast under a sender key not yet received: ask `from` for `keyId` (hex), then open it again. */
  | { status: "pending-key"; from: string; channel: string; keyId: string };

/** A session, as callers see it. */
export interface SessionInfo {
  /** Session id, hex. */
  id: string;
  /** The peer. */
  peer: string;
  /** Which side this agent played. */
  role: "initiator" | "responder";
}
