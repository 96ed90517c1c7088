/**
 * The explicit limits of the spore format, and the checks of identifiers.
 *
 * @module
 */
import { ConfigError, ProtocolError, TooLargeError } from "../crypto/errors.ts";

/** Limits a receiver enforces (and a sender respects). */
export interface Limits {
  /** Largest encoded payload in bytes. Default 1 MiB. */
  maxPayloadBytes: number;
  /** Largest public header in bytes (the limit of the format itself is 4 KiB). Default 4 KiB. */
  maxHeaderBytes: number;
}

/** The default limits: 1 MiB payload, 4 KiB header. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxPayloadBytes: 1 << 20,
  maxHeaderBytes: 4096,
});

/** Longest agent id, channel, spore id or message type, in bytes. */
export const MAX_ID_BYTES = 128;
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Whether `value` is a valid identifier: 1 to 128 characters of
 * `[A-Za-z0-9._:-]`, so that no id can escape a broker topic or key.
 *
 * @example
 * ```ts
 * import { isValidId } from "@spores/spores";
 * console.assert(isValidId("agent-7.eu:1") && !isValidId("a/b") && !isValidId(""));
 * ```
 */
export function isValidId(value: unknown): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

/** Throws a `ConfigError` (caller input) unless `value` is a valid identifier. */
export function checkId(value: unknown, what: string): string {
  if (!isValidId(value)) {
    throw new ConfigError(`${what} must be 1..${MAX_ID_BYTES} characters of [A-Za-z0-9._:-]`);
  }
  return value;
}

/** Throws a `ProtocolError` (received bytes) unless `value` is a valid identifier. */
export function checkReceivedId(value: string, what: string): string {
  if (!ID_PATTERN.test(value)) throw new ProtocolError(`${what} is not a valid identifier`);
  return value;
}

/** Merges and validates limits. */
export function resolveLimits(limits: Partial<Limits> | undefined): Limits {
  const merged = { ...DEFAULT_LIMITS, ...limits };
  if (
    !Number.isInteger(merged.maxPayloadBytes) || merged.maxPayloadBytes < 1 ||
    merged.maxPayloadBytes > 64 << 20
  ) {
    throw new ConfigError("maxPayloadBytes must be an integer in 1..64 MiB");
  }
  if (
    !Number.isInteger(merged.maxHeaderBytes) || merged.maxHeaderBytes < 64 || merged.maxHeaderBytes > 4096
  ) {
    throw new ConfigError("maxHeaderBytes must be an integer in 64..4096");
  }
  return merged;
}

/** Throws a `TooLargeError` if `size` exceeds `limit`. */
export function checkSize(size: number, limit: number, what: string): void {
  if (size > limit) throw new TooLargeError(`${what} is ${size} bytes, over the limit of ${limit}`);
}
