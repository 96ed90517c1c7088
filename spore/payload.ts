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
  let bytes: Uint8Array;
  try {
    bytes = encoder.encode(value);
  } catch (cause) {
    throw new ConfigError("content cannot be encoded as MessagePack", { cause });
  }
  checkSize(bytes.length, maxBytes, "payload");
  return bytes;
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
  try {
    return decoderFor(maxBytes).decode(bytes);
  } catch (cause) {
    throw new ProtocolError("payload is not valid MessagePack", { cause });
  }
}
