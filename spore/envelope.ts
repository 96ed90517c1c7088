/**
 * The spore envelope: a versioned binary format with a public header and
 * kind-specific sections, and its strict parser. `docs/PROTOCOL.md` is the
 * normative description; this module is its implementation.
 *
 * ```text
 * preamble   "S" "P" version(1) suite kind flags(0)            6 bytes
 * header     u16 length ‖ fields (ids, times, priority, kind fields)
 * sections   u32 length ‖ bytes, in the order the kind and suite fix
 * ```
 *
 * @module
 */
import { hex } from "../crypto/bytes.ts";
import { ProtocolError, UnsupportedError } from "../crypto/errors.ts";
import { Reader, Writer } from "./codec.ts";
import { checkReceivedId, checkSize, DEFAULT_LIMITS, type Limits } from "./limits.ts";

/** The protocol version this module speaks. */
export const VERSION = 1;
const MAGIC0 = 0x53; // "S"
const MAGIC1 = 0x50; // "P"
const PREAMBLE = 6;
/** The header length field covers at most this many bytes (so preamble + header ≤ 4 KiB). */
const MAX_HEADER_FIELDS = 4096 - PREAMBLE - 2;

/** Cipher suites. */
export const Suite = {
  /** X-Wing + HKDF-SHA-256 + ChaCha20-Poly1305, Ed25519 signatures. */
  XWING_ED25519: 1,
  /** As 1, with hybrid Ed25519 + ML-DSA-65 signatures (both must verify). */
  XWING_ED25519_MLDSA65: 2,
  /** The classic NaCl suite: X25519 + XSalsa20-Poly1305 box, Ed25519 signature over the header too. */
  NACL_ED25519: 3,
} as const;
/** A suite number. */
export type SuiteId = typeof Suite[keyof typeof Suite];

/** Human-readable suite names. */
export const SUITE_NAMES: Readonly<Record<SuiteId, string>> = Object.freeze({
  1: "xwing-chacha20poly1305-ed25519",
  2: "xwing-chacha20poly1305-ed25519+mldsa65",
  3: "nacl-box-ed25519",
});

/** Spore kinds. */
export const Kind = {
  /** One-shot, sealed to the recipient's KEM key and signed. */
  SEALED: 1,
  /** A data spore of an established session (AEAD only). */
  SESSION: 2,
  /** Handshake message 1, initiator to responder. */
  HELLO: 3,
  /** Handshake message 2, responder to initiator. */
  WELCOME: 4,
  /** A channel spore under the sender's sender key, signed. */
  BROADCAST: 5,
} as const;
/** A kind number. */
export type KindId = typeof Kind[keyof typeof Kind];

/** The public header of a spore: everything a broker can see. */
export interface Header {
  /** Protocol version (1). */
  version: number;
  /** Cipher suite. */
  suite: SuiteId;
  /** Spore kind. */
  kind: KindId;
  /** Spore id, unique per sender. */
  id: string;
  /** Message type (application-defined, or `spores.*` for protocol messages). */
  type: string;
  /** Sender agent id. */
  from: string;
  /** Recipient agent id, or the channel for a broadcast. */
  to: string;
  /** Creation time, Unix ms. */
  createdAt: number;
  /** Expiry time, Unix ms. */
  expiresAt: number;
  /** 0 (lowest) to 9 (highest). */
  priority: number;
  /** Sealed, hello: id of the recipient KEM key. Broadcast: id of the sender key. 8 bytes. */
  keyId?: Uint8Array;
  /** Session, welcome: the session id. 16 bytes. */
  sessionId?: Uint8Array;
  /** Session: the epoch. Broadcast: the sender key generation. */
  epoch?: number;
  /** Session, broadcast: the message counter within the epoch. */
  counter?: number;
  /** Welcome: the first 16 bytes of SHA-256 of the hello it answers. */
  helloRef?: Uint8Array;
}

/** A parsed spore. */
export interface Envelope {
  /** The public header. */
  header: Header;
  /** The exact bytes of preamble and header (authenticated data). */
  headerBytes: Uint8Array;
  /** The sections, in order. */
  sections: Uint8Array[];
  /** The whole input. */
  bytes: Uint8Array;
}

type SectionSpec = readonly (number | "var")[];

const SIG = 64;
const PQ_SIG = 3309;
const KEM_CT = 1120;
const KEM_PK = 1216;

/** The sections each (kind, suite) carries; a number is an exact length. */
function sectionsOf(kind: KindId, suite: SuiteId): SectionSpec | undefined {
  const sigs: SectionSpec = suite === Suite.XWING_ED25519_MLDSA65 ? [SIG, PQ_SIG] : [SIG];
  if (suite === Suite.NACL_ED25519) return kind === Kind.SEALED ? [24, "var", SIG] : undefined;
  switch (kind) {
    case Kind.SEALED:
      return [KEM_CT, "var", ...sigs];
    case Kind.SESSION:
      return ["var"];
    case Kind.HELLO:
      return [KEM_PK, KEM_CT, ...sigs];
    case Kind.WELCOME:
      return [KEM_CT, 32, ...sigs];
    case Kind.BROADCAST:
      return [32, "var", ...sigs];
  }
}

type KindField = "keyId" | "sessionId" | "epoch" | "counter" | "helloRef";

/** Which kind-specific header fields each kind has (a classic sealed spore names no KEM key). */
function kindFields(kind: KindId, suite: SuiteId): readonly KindField[] {
  return kind === Kind.SEALED && suite === Suite.NACL_ED25519 ? [] : KIND_FIELDS[kind];
}

const KIND_FIELDS: Record<KindId, readonly KindField[]> = {
  [Kind.SEALED]: ["keyId"],
  [Kind.SESSION]: ["sessionId", "epoch", "counter"],
  [Kind.HELLO]: ["keyId"],
  [Kind.WELCOME]: ["helloRef", "sessionId"],
  [Kind.BROADCAST]: ["keyId", "epoch", "counter"],
};

function isSuite(v: number): v is SuiteId {
  return v === 1 || v === 2 || v === 3;
}
function isKind(v: number): v is KindId {
  return v >= 1 && v <= 5;
}

/**
 * Encodes a header (preamble included). The caller has validated ids and
 * times; this checks lengths.
 */
export function encodeHeader(h: Header): Uint8Array {
  const w = scratch.reset(); // synchronous to the end: the shared writer cannot be interleaved
  w.u8(MAGIC0).u8(MAGIC1).u8(VERSION).u8(h.suite).u8(h.kind).u8(0);
  w.u16(0);
  w.shortString(h.id).shortString(h.type).shortString(h.from).shortString(h.to);
  w.u64(h.createdAt).u64(h.expiresAt).u8(h.priority);
  for (const field of kindFields(h.kind, h.suite)) {
    switch (field) {
      case "keyId":
        w.bytes(fixed(h.keyId, 8, field));
        break;
      case "sessionId":
        w.bytes(fixed(h.sessionId, 16, field));
        break;
      case "helloRef":
        w.bytes(fixed(h.helloRef, 16, field));
        break;
      case "epoch":
        w.u32(h.epoch ?? 0);
        break;
      case "counter":
        w.u64(h.counter ?? 0);
        break;
    }
  }
  const length = w.length - PREAMBLE - 2;
  if (length > MAX_HEADER_FIELDS) throw new ProtocolError("header over 4 KiB");
  return w.patchU16(PREAMBLE, length).finish();
}

/** One writer for every header: encoding copies out once, instead of allocating a writer and then copying. */
const scratch = new Writer(256);

function fixed(b: Uint8Array | undefined, n: number, what: string): Uint8Array {
  if (!b || b.length !== n) throw new ProtocolError(`${what} must be ${n} bytes`);
  return b;
}

/** Appends sections to an encoded header. */
export function encodeEnvelope(headerBytes: Uint8Array, sections: Uint8Array[]): Uint8Array {
  let size = headerBytes.length;
  for (const s of sections) size += 4 + s.length;
  const w = new Writer(size);
  w.bytes(headerBytes);
  for (const s of sections) w.u32(s.length).bytes(s);
  return w.take();
}

/** Largest envelope a receiver reads for the given limits (payload plus fixed overheads). */
export function maxEnvelopeBytes(limits: Limits): number {
  return limits.maxHeaderBytes + limits.maxPayloadBytes + 16 + KEM_PK + KEM_CT + SIG + PQ_SIG + 64;
}

function parseHeader(r: Reader, limits: Limits): { header: Header; end: number } {
  const m0 = r.u8("magic");
  const m1 = r.u8("magic");
  if (m0 !== MAGIC0 || m1 !== MAGIC1) throw new ProtocolError("not a spore (bad magic)");
  const version = r.u8("version");
  if (version !== VERSION) throw new UnsupportedError(`unsupported spore version ${version}`);
  const suite = r.u8("suite");
  if (!isSuite(suite)) throw new UnsupportedError(`unsupported suite ${suite}`);
  const kind = r.u8("kind");
  if (!isKind(kind)) throw new UnsupportedError(`unsupported spore kind ${kind}`);
  const flags = r.u8("flags");
  if (flags !== 0) throw new UnsupportedError(`unsupported flags ${flags}`);
  const length = r.u16("header length");
  checkSize(PREAMBLE + 2 + length, limits.maxHeaderBytes, "header");
  const end = r.offset + length;
  const fields = new Reader(r.bytes(length, "header"));
  const header: Header = {
    version,
    suite,
    kind,
    id: checkReceivedId(fields.shortString("id"), "id"),
    type: checkReceivedId(fields.shortString("type"), "type"),
    from: checkReceivedId(fields.shortString("from"), "from"),
    to: checkReceivedId(fields.shortString("to"), "to"),
    createdAt: fields.u64("created_at"),
    expiresAt: fields.u64("expires_at"),
    priority: fields.u8("priority"),
  };
  if (header.priority > 9) throw new ProtocolError(`priority ${header.priority} out of 0..9`);
  if (header.expiresAt < header.createdAt) throw new ProtocolError("expires_at is before created_at");
  for (const field of kindFields(kind, suite)) {
    switch (field) {
      case "keyId":
        header.keyId = fields.bytes(8, field);
        break;
      case "sessionId":
        header.sessionId = fields.bytes(16, field);
        break;
      case "helloRef":
        header.helloRef = fields.bytes(16, field);
        break;
      case "epoch":
        header.epoch = fields.u32(field);
        break;
      case "counter":
        header.counter = fields.u64(field);
        break;
    }
  }
  fields.end("header fields");
  return { header, end };
}

/**
 * Parses a spore strictly: magic, version, suite, kind, header fields and
 * their limits, the sections the kind and suite require with their exact
 * lengths, and no trailing byte. Every failure is a `ProtocolError` (or its
 * `UnsupportedError` / `TooLargeError` subclass). Nothing is verified
 * cryptographically here.
 *
 * @example
 * ```ts
 * import { parseEnvelope, ProtocolError } from "@spores/spores";
 * try {
 *   parseEnvelope(new Uint8Array([1, 2, 3]));
 * } catch (e) {
 *   console.assert(e instanceof ProtocolError);
 * }
 * ```
 */
export function parseEnvelope(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): Envelope {
  if (!(bytes instanceof Uint8Array)) throw new ProtocolError("a spore must be bytes");
  checkSize(bytes.length, maxEnvelopeBytes(limits), "spore");
  const r = new Reader(bytes);
  const { header, end } = parseHeader(r, limits);
  const spec = sectionsOf(header.kind, header.suite);
  if (!spec) throw new UnsupportedError(`suite ${header.suite} has no spore kind ${header.kind}`);
  const sections: Uint8Array[] = [];
  for (const [i, size] of spec.entries()) {
    const length = r.u32(`section ${i} length`);
    if (size === "var") {
      checkSize(length, limits.maxPayloadBytes + 16, "ciphertext");
      if (length < 16) throw new ProtocolError(`ciphertext of ${length} bytes is shorter than its tag`);
    } else if (length !== size) {
      throw new ProtocolError(`section ${i} is ${length} bytes, expected ${size}`);
    }
    sections.push(r.bytes(length, `section ${i}`));
  }
  r.end("the last section");
  return { header, headerBytes: bytes.subarray(0, end), sections, bytes };
}

/** The public header of a spore, for tools and logs (no key involved, nothing verified). */
export interface SporeInfo {
  /** Protocol version. */
  version: number;
  /** Suite name. */
  suite: string;
  /** Kind name. */
  kind: "sealed" | "session" | "hello" | "welcome" | "broadcast";
  /** Spore id. */
  id: string;
  /** Message type. */
  type: string;
  /** Sender. */
  from: string;
  /** Recipient or channel. */
  to: string;
  /** Creation time (Unix ms). */
  createdAt: number;
  /** Expiry time (Unix ms). */
  expiresAt: number;
  /** Priority 0..9. */
  priority: number;
  /** Session id (hex), for session spores and welcomes. */
  sessionId?: string;
  /** Epoch, for session and broadcast spores. */
  epoch?: number;
  /** Counter, for session and broadcast spores. */
  counter?: number;
  /** Total size in bytes. */
  size: number;
}

const KIND_NAMES = ["", "sealed", "session", "hello", "welcome", "broadcast"] as const;

/**
 * Parses a spore and returns its public header, without keys. The result is
 * unauthenticated: use it for routing, tooling and logs, never for decisions
 * that need trust.
 *
 * @example
 * ```ts
 * import { inspect, ProtocolError } from "@spores/spores";
 * try {
 *   inspect(new Uint8Array(10));
 * } catch (e) {
 *   console.assert(e instanceof ProtocolError);
 * }
 * ```
 */
export function inspect(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS): SporeInfo {
  return describeHeader(parseEnvelope(bytes, limits).header, bytes.length);
}

/**
 * The public description of a header, for a spore of `size` bytes (what
 * {@linkcode inspect} returns, without parsing again).
 *
 * @example
 * ```ts
 * import { describeHeader, Kind, Suite } from "@spores/spores";
 * const info = describeHeader({
 *   version: 1, suite: Suite.XWING_ED25519, kind: Kind.SEALED, id: "1", type: "t", from: "a", to: "b",
 *   createdAt: 0, expiresAt: 1, priority: 4,
 * }, 100);
 * console.assert(info.kind === "sealed");
 * ```
 */
export function describeHeader(h: Header, size: number): SporeInfo {
  const info: SporeInfo = {
    version: h.version,
    suite: SUITE_NAMES[h.suite],
    kind: KIND_NAMES[h.kind] as SporeInfo["kind"],
    id: h.id,
    type: h.type,
    from: h.from,
    to: h.to,
    createdAt: h.createdAt,
    expiresAt: h.expiresAt,
    priority: h.priority,
    size,
  };
  if (h.sessionId) info.sessionId = hex.encode(h.sessionId);
  if (h.epoch !== undefined) info.epoch = h.epoch;
  if (h.counter !== undefined) info.counter = h.counter;
  return info;
}
