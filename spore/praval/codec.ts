/**
 * Praval's `SecureSpore` version 1.0 on the wire: one MessagePack map, as
 * Python's `msgpack.packb(data, use_bin_type=True)` writes it, and its strict,
 * bounded reader.
 *
 * ```text
 * map (13 entries, or 14 with trace_context), keys in this order:
 *   id                    str      spore id (a UUID when Praval makes it)
 *   spore_type            str      knowledge | request | response | broadcast | notification
 *   from_agent            str      sender name
 *   to_agent              str|nil  recipient name, nil for a broadcast
 *   created_at            float64  Unix seconds
 *   expires_at            float64|nil
 *   priority              int      1..10 by convention
 *   encrypted_knowledge   bin      crypto_box output (MAC ‖ ciphertext); JSON text in a broadcast
 *   knowledge_signature   bin      Ed25519 over encrypted_knowledge ‖ nonce ‖ trace bytes; empty in a broadcast
 *   sender_public_key     bin      the sender's X25519 box key
 *   nonce                 bin      24 bytes; empty in a broadcast
 *   encrypted_references  nil
 *   version               str      "1.0"
 *   trace_context         map str→str (optional; when present its canonical JSON is signed)
 * ```
 *
 * The reader takes only this schema: a map with exactly these keys (no
 * duplicates, no others), each of its type, within bounds, valid UTF-8, and no
 * trailing bytes. The writer emits the map in Praval's key order with Python's
 * smallest encodings, so the bytes match Praval's for the same values.
 *
 * @module
 */
import { ProtocolError, TooLargeError, UnsupportedError } from "../../crypto/errors.ts";

/** Praval's spore types. */
export const PRAVAL_SPORE_TYPES: readonly string[] = Object.freeze([
  "knowledge",
  "request",
  "response",
  "broadcast",
  "notification",
]);

/** The wire version this codec speaks. */
export const PRAVAL_VERSION = "1.0";

/** A decoded (or to-be-encoded) Praval `SecureSpore`. Times are Unix seconds, as on the wire. */
export interface PravalSpore {
  /** Spore id. */
  id: string;
  /** One of {@linkcode PRAVAL_SPORE_TYPES}. */
  sporeType: string;
  /** Sender name. */
  fromAgent: string;
  /** Recipient name; `null` for a broadcast. */
  toAgent: string | null;
  /** Creation time, Unix seconds (a float). */
  createdAt: number;
  /** Expiry, Unix seconds, or `null`. */
  expiresAt: number | null;
  /** Priority (Praval's 1..10). */
  priority: number;
  /** Box output (authenticator ‖ ciphertext), or plaintext JSON in a broadcast. */
  encryptedKnowledge: Uint8Array;
  /** Ed25519 signature (64 bytes), or empty in a broadcast. */
  knowledgeSignature: Uint8Array;
  /** The sender's X25519 box public key (32 bytes). */
  senderPublicKey: Uint8Array;
  /** Box nonce (24 bytes), or empty in a broadcast. */
  nonce: Uint8Array;
  /** Trace context, when the spore carries one (it is then signed); absent otherwise. */
  traceContext?: Record<string, string>;
}

/** Bounds of the reader. */
export interface PravalCodecLimits {
  /** Largest `encrypted_knowledge`, bytes. Default 1 MiB + 16. */
  maxKnowledgeBytes: number;
}

const MAX_ID = 256;
const MAX_NAME = 256;
const MAX_TRACE_ENTRIES = 32;
const MAX_TRACE_KEY = 256;
const MAX_TRACE_VALUE = 2048;

const KEYS = [
  "id",
  "spore_type",
  "from_agent",
  "to_agent",
  "created_at",
  "expires_at",
  "priority",
  "encrypted_knowledge",
  "knowledge_signature",
  "sender_public_key",
  "nonce",
  "encrypted_references",
  "version",
] as const;
const TRACE = "trace_context";

// ---------------------------------------------------------------- writer

class Out {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #n = 0;

  #room(k: number): void {
    if (this.#n + k <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#n + k) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#n));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
  byte(b: number): void {
    this.#room(1);
    this.#buf[this.#n++] = b;
  }
  u16(v: number): void {
    this.#room(2);
    this.#view.setUint16(this.#n, v);
    this.#n += 2;
  }
  u32(v: number): void {
    this.#room(4);
    this.#view.setUint32(this.#n, v);
    this.#n += 4;
  }
  f64(v: number): void {
    this.#room(9);
    this.#buf[this.#n++] = 0xcb;
    this.#view.setFloat64(this.#n, v);
    this.#n += 8;
  }
  raw(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.#n);
    this.#n += b.length;
  }
  nil(): void {
    this.byte(0xc0);
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    const n = b.length;
    if (n < 32) this.byte(0xa0 | n);
    else if (n < 0x100) (this.byte(0xd9), this.byte(n));
    else if (n < 0x10000) (this.byte(0xda), this.u16(n));
    else (this.byte(0xdb), this.u32(n));
    this.raw(b);
  }
  bin(b: Uint8Array): void {
    const n = b.length;
    if (n < 0x100) (this.byte(0xc4), this.byte(n));
    else if (n < 0x10000) (this.byte(0xc5), this.u16(n));
    else (this.byte(0xc6), this.u32(n));
    this.raw(b);
  }
  int(v: number): void {
    if (v >= 0) {
      if (v < 0x80) this.byte(v);
      else if (v < 0x100) (this.byte(0xcc), this.byte(v));
      else if (v < 0x10000) (this.byte(0xcd), this.u16(v));
      else (this.byte(0xce), this.u32(v));
    } else {
      if (v >= -32) this.byte(v & 0xff);
      else if (v >= -0x80) (this.byte(0xd0), this.byte(v & 0xff));
      else if (v >= -0x8000) (this.byte(0xd1), this.u16(v & 0xffff));
      else (this.byte(0xd2), this.u32(v >>> 0));
    }
  }
  mapHeader(n: number): void {
    this.byte(0x80 | n);
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#n);
  }
}

/**
 * Encodes a spore exactly as Praval's `SecureSpore.to_bytes()` does.
 *
 * @example
 * ```ts
 * import { decodePravalSpore, encodePravalSpore } from "@spores/spores/spore";
 * const bytes = encodePravalSpore({
 *   id: "1", sporeType: "knowledge", fromAgent: "a", toAgent: "b", createdAt: 1700000000.5,
 *   expiresAt: null, priority: 5, encryptedKnowledge: new Uint8Array(16),
 *   knowledgeSignature: new Uint8Array(64), senderPublicKey: new Uint8Array(32), nonce: new Uint8Array(24),
 * });
 * console.assert(decodePravalSpore(bytes).fromAgent === "a");
 * ```
 */
export function encodePravalSpore(spore: PravalSpore): Uint8Array {
  if (!Number.isInteger(spore.priority) || Math.abs(spore.priority) > 0x7fffffff) {
    throw new ProtocolError("priority must be a 32-bit integer");
  }
  const o = new Out();
  o.mapHeader(spore.traceContext ? 14 : 13);
  o.str("id"), o.str(spore.id);
  o.str("spore_type"), o.str(spore.sporeType);
  o.str("from_agent"), o.str(spore.fromAgent);
  o.str("to_agent"), spore.toAgent === null ? o.nil() : o.str(spore.toAgent);
  o.str("created_at"), o.f64(spore.createdAt);
  o.str("expires_at"), spore.expiresAt === null ? o.nil() : o.f64(spore.expiresAt);
  o.str("priority"), o.int(spore.priority);
  o.str("encrypted_knowledge"), o.bin(spore.encryptedKnowledge);
  o.str("knowledge_signature"), o.bin(spore.knowledgeSignature);
  o.str("sender_public_key"), o.bin(spore.senderPublicKey);
  o.str("nonce"), o.bin(spore.nonce);
  o.str("encrypted_references"), o.nil();
  o.str("version"), o.str(PRAVAL_VERSION);
  if (spore.traceContext) {
    const entries = Object.entries(spore.traceContext);
    if (entries.length > 15) throw new ProtocolError("trace context has more than 15 entries");
    o.str(TRACE), o.mapHeader(entries.length);
    for (const [k, v] of entries) o.str(k), o.str(v);
  }
  return o.bytes();
}

// ---------------------------------------------------------------- reader

type Value =
  | { t: "nil" }
  | { t: "str"; v: string }
  | { t: "bin"; v: Uint8Array }
  | { t: "int"; v: number }
  | { t: "float"; v: number }
  | { t: "map"; n: number };

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

class In {
  readonly #b: Uint8Array;
  readonly #view: DataView;
  #i = 0;
  constructor(b: Uint8Array) {
    this.#b = b;
    this.#view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  get done(): boolean {
    return this.#i === this.#b.length;
  }
  #need(k: number): void {
    if (this.#i + k > this.#b.length) throw new ProtocolError("Praval spore is truncated");
  }
  #u8(): number {
    this.#need(1);
    return this.#b[this.#i++]!;
  }
  #u16(): number {
    this.#need(2);
    const v = this.#view.getUint16(this.#i);
    this.#i += 2;
    return v;
  }
  #u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#i);
    this.#i += 4;
    return v;
  }
  #take(n: number, limit: number, what: string): Uint8Array {
    if (n > limit) throw new TooLargeError(`Praval spore ${what} is ${n} bytes, over the limit of ${limit}`);
    this.#need(n);
    const out = this.#b.slice(this.#i, this.#i + n);
    this.#i += n;
    return out;
  }
  #text(n: number, limit: number, what: string): string {
    try {
      return utf8.decode(this.#take(n, limit, what));
    } catch (cause) {
      if (cause instanceof ProtocolError) throw cause;
      throw new ProtocolError(`Praval spore ${what} is not valid UTF-8`, { cause });
    }
  }

  /** One value; maps give their entry count, and `limit` bounds a str or bin. */
  next(limit: number, what: string): Value {
    const b = this.#u8();
    if (b <= 0x7f) return { t: "int", v: b };
    if (b >= 0xe0) return { t: "int", v: b - 0x100 };
    if ((b & 0xf0) === 0x80) return { t: "map", n: b & 0x0f };
    if ((b & 0xe0) === 0xa0) return { t: "str", v: this.#text(b & 0x1f, limit, what) };
    switch (b) {
      case 0xc0:
        return { t: "nil" };
      case 0xc4:
        return { t: "bin", v: this.#take(this.#u8(), limit, what) };
      case 0xc5:
        return { t: "bin", v: this.#take(this.#u16(), limit, what) };
      case 0xc6:
        return { t: "bin", v: this.#take(this.#u32(), limit, what) };
      case 0xca: {
        this.#need(4);
        const v = this.#view.getFloat32(this.#i);
        this.#i += 4;
        return { t: "float", v };
      }
      case 0xcb: {
        this.#need(8);
        const v = this.#view.getFloat64(this.#i);
        this.#i += 8;
        return { t: "float", v };
      }
      case 0xcc:
        return { t: "int", v: this.#u8() };
      case 0xcd:
        return { t: "int", v: this.#u16() };
      case 0xce:
        return { t: "int", v: this.#u32() };
      case 0xcf: {
        this.#need(8);
        const v = this.#view.getBigUint64(this.#i);
        this.#i += 8;
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`Praval spore ${what} out of range`);
        return { t: "int", v: Number(v) };
      }
      case 0xd0:
        return { t: "int", v: (this.#u8() << 24) >> 24 };
      case 0xd1:
        return { t: "int", v: (this.#u16() << 16) >> 16 };
      case 0xd2:
        return { t: "int", v: this.#u32() | 0 };
      case 0xd3: {
        this.#need(8);
        const v = this.#view.getBigInt64(this.#i);
        this.#i += 8;
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw new ProtocolError(`Praval spore ${what} out of range`);
        }
        return { t: "int", v: Number(v) };
      }
      case 0xd9:
        return { t: "str", v: this.#text(this.#u8(), limit, what) };
      case 0xda:
        return { t: "str", v: this.#text(this.#u16(), limit, what) };
      case 0xdb:
        return { t: "str", v: this.#text(this.#u32(), limit, what) };
      case 0xde:
        return { t: "map", n: this.#u16() };
      case 0xdf:
        return { t: "map", n: this.#u32() };
      default:
        throw new ProtocolError(`Praval spore ${what} has a MessagePack type this format does not use`);
    }
  }
}

function expect<T extends Value["t"]>(v: Value, types: readonly T[], what: string): Extract<Value, { t: T }> {
  if (!(types as readonly string[]).includes(v.t)) {
    throw new ProtocolError(`Praval spore ${what} must be ${types.join(" or ")}`);
  }
  return v as Extract<Value, { t: T }>;
}

function finiteTime(v: Value, what: string): number {
  const n = expect(v, ["float", "int"], what).v;
  if (!Number.isFinite(n) || n < 0 || n > 1e11) throw new ProtocolError(`Praval spore ${what} is not a time`);
  return n;
}

/**
 * Whether `bytes` starts like a Praval spore (a MessagePack map of 13 or 14
 * entries). Only a hint for error messages: {@linkcode decodePravalSpore}
 * decides.
 *
 * @example
 * ```ts
 * import { looksLikePravalSpore } from "@spores/spores/spore";
 * console.assert(looksLikePravalSpore(new Uint8Array([0x8d])) && !looksLikePravalSpore(new Uint8Array([0x53])));
 * ```
 */
export function looksLikePravalSpore(bytes: Uint8Array): boolean {
  return bytes.length > 0 && (bytes[0] === 0x8d || bytes[0] === 0x8e);
}

/**
 * Decodes a Praval `SecureSpore` strictly (see the module description).
 * Malformed input is a `ProtocolError`, an oversize field a `TooLargeError`,
 * another version or `encrypted_references` an `UnsupportedError`; nothing
 * else is ever thrown.
 *
 * @example
 * ```ts
 * import { decodePravalSpore } from "@spores/spores/spore";
 * import { ProtocolError } from "@spores/spores/crypto";
 * try {
 *   decodePravalSpore(new Uint8Array([0x8d, 0xa2]));
 * } catch (e) {
 *   console.assert(e instanceof ProtocolError);
 * }
 * ```
 */
export function decodePravalSpore(
  bytes: Uint8Array,
  limits: Partial<PravalCodecLimits> = {},
): PravalSpore {
  const maxKnowledge = limits.maxKnowledgeBytes ?? (1 << 20) + 16;
  const r = new In(bytes);
  const head = r.next(0, "root");
  if (head.t !== "map") throw new ProtocolError("a Praval spore is a MessagePack map");
  if (head.n !== 13 && head.n !== 14) {
    throw new ProtocolError(`a Praval spore has 13 or 14 fields, not ${head.n}`);
  }
  const seen = new Map<string, Value>();
  let trace: Record<string, string> | undefined;
  for (let i = 0; i < head.n; i++) {
    const key = expect(r.next(32, "field name"), ["str"], "field name").v;
    if (seen.has(key) || (key === TRACE && trace)) throw new ProtocolError(`Praval spore repeats ${key}`);
    if (key === TRACE) {
      const m = expect(r.next(0, TRACE), ["map"], TRACE);
      if (m.n > MAX_TRACE_ENTRIES) {
        throw new TooLargeError(`trace context has more than ${MAX_TRACE_ENTRIES} entries`);
      }
      const carrier: Record<string, string> = Object.create(null);
      for (let j = 0; j < m.n; j++) {
        const k = expect(r.next(MAX_TRACE_KEY, "trace key"), ["str"], "trace key").v;
        const v = expect(r.next(MAX_TRACE_VALUE, "trace value"), ["str"], "trace value").v;
        if (Object.hasOwn(carrier, k)) throw new ProtocolError("trace context repeats a key");
        carrier[k] = v;
      }
      trace = { ...carrier };
      continue;
    }
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new UnsupportedError(`Praval spore field ${JSON.stringify(key)} is unknown`);
    }
    const limit = key === "encrypted_knowledge" ? maxKnowledge : key === "id" ? MAX_ID : MAX_NAME;
    const v = r.next(limit, key);
    if (v.t === "map") throw new ProtocolError(`Praval spore ${key} must not be a map`);
    seen.set(key, v);
  }
  if (!r.done) throw new ProtocolError("trailing bytes after the Praval spore");
  for (const k of KEYS) if (!seen.has(k)) throw new ProtocolError(`Praval spore lacks ${k}`);
  const get = (k: typeof KEYS[number]) => seen.get(k)!;

  const version = expect(get("version"), ["str"], "version").v;
  if (version !== PRAVAL_VERSION) throw new UnsupportedError(`Praval spore version ${version} is not 1.0`);
  if (get("encrypted_references").t !== "nil") {
    throw new UnsupportedError("Praval spores with encrypted_references are not supported");
  }
  const sporeType = expect(get("spore_type"), ["str"], "spore_type").v;
  if (!PRAVAL_SPORE_TYPES.includes(sporeType)) throw new ProtocolError("unknown Praval spore_type");
  const id = expect(get("id"), ["str"], "id").v;
  const fromAgent = expect(get("from_agent"), ["str"], "from_agent").v;
  if (id.length === 0 || fromAgent.length === 0) {
    throw new ProtocolError("Praval spore id or sender is empty");
  }
  const to = expect(get("to_agent"), ["str", "nil"], "to_agent");
  const exp = get("expires_at");
  const priority = expect(get("priority"), ["int"], "priority").v;
  if (Math.abs(priority) > 0x7fffffff) throw new ProtocolError("Praval spore priority out of range");
  return {
    id,
    sporeType,
    fromAgent,
    toAgent: to.t === "nil" ? null : to.v,
    createdAt: finiteTime(get("created_at"), "created_at"),
    expiresAt: exp.t === "nil" ? null : finiteTime(exp, "expires_at"),
    priority,
    encryptedKnowledge: expect(get("encrypted_knowledge"), ["bin"], "encrypted_knowledge").v,
    knowledgeSignature: expect(get("knowledge_signature"), ["bin"], "knowledge_signature").v,
    senderPublicKey: expect(get("sender_public_key"), ["bin"], "sender_public_key").v,
    nonce: expect(get("nonce"), ["bin"], "nonce").v,
    ...(trace ? { traceContext: trace } : {}),
  };
}
