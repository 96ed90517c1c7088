/**
 * Payload encoding: MessagePack (`@msgpack/msgpack`), so that knowledge may
 * carry binary data (`Uint8Array`) next to JSON-like values. Decoding is
 * bounded and strict: extension types are refused, and every failure is a
 * `ProtocolError`.
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { ConfigError, ProtocolError } from "../crypto/errors.ts";
import { checkSize } from "./limits.ts";

/** A value a spore can carry: JSON-like values and `Uint8Array`. */
export type Knowledge =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly Knowledge[]
  | { readonly [key: string]: Knowledge | undefined };

const encoder = new Encoder({ ignoreUndefined: true });

/** Deepest nesting of arrays and maps a payload may have. */
export const MAX_PAYLOAD_DEPTH = 64;

/** Walks `value` without recursion; calls `leaf` on each scalar; a `ProtocolError` past the depth limit. */
function walk(value: unknown, leaf: (v: unknown, parent: unknown, key: string | number) => void): void {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v instanceof Uint8Array || v === null || typeof v !== "object") continue;
    if (depth >= MAX_PAYLOAD_DEPTH) {
      throw new ProtocolError(`payload nested deeper than ${MAX_PAYLOAD_DEPTH}`);
    }
    const entries: [string | number, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [i, x])
      : Object.entries(v);
    for (const [k, x] of entries) {
      if (x !== null && typeof x === "object" && !(x instanceof Uint8Array)) stack.push([x, depth + 1]);
      else leaf(x, v, k);
    }
  }
}

/**
 * Encodes `value` as MessagePack; a `ConfigError` if it cannot be encoded,
 * a `TooLargeError` if it is over `maxBytes`.
 *
 * @example
 * ```ts
 * import { decodePayload, encodePayload } from "@spores/spores";
 * const bytes = encodePayload({ text: "hi", blob: new Uint8Array([1, 2]) });
 * console.assert((decodePayload(bytes) as { text: string }).text === "hi");
 * ```
 */
export function encodePayload(value: unknown, maxBytes: number = 1 << 20): Uint8Array {
  const unsafe = (v: unknown) => {
    if (typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v))) {
      throw new ConfigError("content holds an integer beyond 2^53 - 1, which would not round-trip");
    }
  };
  unsafe(value);
  try {
    walk(value, unsafe);
  } catch (e) {
    if (e instanceof ProtocolError) throw new ConfigError(e.message);
    throw e;
  }
  return encodeContent(value, maxBytes);
}

/**
 * Encodes content that `checkContent` accepted (so it holds nothing that
 * would not round-trip) as MessagePack, without walking it again; a
 * `TooLargeError` if it is over `maxBytes`.
 *
 * @example
 * ```ts
 * import { checkContent, decodePayload, encodeContent } from "@spores/spores";
 * const content = { text: "hi" };
 * checkContent(content);
 * console.assert((decodePayload(encodeContent(content)) as { text: string }).text === "hi");
 * ```
 */
export function encodeContent(checked: unknown, maxBytes: number = 1 << 20): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = encoder.encode(checked);
  } catch (cause) {
    throw new ConfigError("content cannot be encoded as MessagePack", { cause });
  }
  checkSize(bytes.length, maxBytes, "payload");
  return bytes;
}

/** The payload of an outgoing spore: its `payload` if it has one (size-checked), or its content encoded. */
export function outgoingPayload(
  msg: { content?: unknown; payload?: Uint8Array },
  maxBytes: number,
): Uint8Array {
  if (msg.payload === undefined) return encodePayload(msg.content ?? null, maxBytes);
  checkSize(msg.payload.length, maxBytes, "payload");
  return msg.payload;
}

const decoders = new Map<number, Decoder>();

function decoderFor(maxBytes: number): Decoder {
  let d = decoders.get(maxBytes);
  if (!d) {
    d = new Decoder({
      maxStrLength: maxBytes,
      maxBinLength: maxBytes,
      maxArrayLength: maxBytes,
      maxMapLength: maxBytes,
      maxExtLength: 0,
      useBigInt64: true,
    });
    if (decoders.size > 16) decoders.clear();
    decoders.set(maxBytes, d);
  }
  return d;
}

/**
 * Decodes a MessagePack payload strictly: one value, no trailing bytes, no
 * extension types (timestamps included); binary comes back as `Uint8Array`.
 *
 * @example
 * ```ts
 * import { decodePayload, ProtocolError } from "@spores/spores";
 * try {
 *   decodePayload(new Uint8Array([0xc1]));
 * } catch (e) {
 *   console.assert(e instanceof ProtocolError);
 * }
 * ```
 */
export function decodePayload(bytes: Uint8Array, maxBytes: number = 1 << 20): unknown {
  checkSize(bytes.length, maxBytes, "payload");
  let value: unknown;
  try {
    value = decoderFor(maxBytes).decode(bytes);
  } catch (cause) {
    throw new ProtocolError("payload is not valid MessagePack", { cause });
  }
  // 64-bit integers come back as bigint: exact if safe, refused otherwise.
  const exact = (v: unknown): unknown => {
    if (typeof v !== "bigint") return v;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new ProtocolError("payload integer beyond 2^53 - 1");
    }
    return Number(v);
  };
  value = exact(value);
  walk(value, (v, parent, key) => {
    if (typeof v === "bigint") (parent as Record<string | number, unknown>)[key] = exact(v);
  });
  return value;
}
