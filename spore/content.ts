/**
 * What a spore can carry, checked when it is sent: content that would not
 * arrive as it was given (a `Date`, a `Map`, an `undefined` field, a class
 * instance, a lone surrogate) is refused with a {@linkcode ContentError}
 * naming where it is, instead of arriving changed or being refused by the
 * receiver.
 *
 * @module
 */
import { ConfigError, type SporeErrorCode } from "../crypto/errors.ts";

/** Deepest nesting of arrays and objects in content. */
export const MAX_CONTENT_DEPTH = 64;

/**
 * Content that cannot make the round trip: `path` says where
 * (`content.items[2].when`), the message what it is and what to send instead.
 *
 * @example
 * ```ts
 * import { checkContent, ContentError } from "@spores/spores";
 * try {
 *   checkContent({ when: new Date() });
 * } catch (e) {
 *   console.assert(e instanceof ContentError && e.path === "content.when");
 * }
 * ```
 */
export class ContentError extends ConfigError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_CONTENT";
  /** Where in the content the value is, e.g. `content.items[2].when`. */
  readonly path: string;

  /**
   * A refusal at `path`.
   *
   * @param path Where the value is.
   * @param message What it is and what to send instead.
   */
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

function kindOf(value: object): string {
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === "string" && name.length > 0 ? name : "an object with a custom prototype";
}

function member(path: string, key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/**
 * Checks that `value` arrives exactly as given: `null`, booleans, numbers (integers
 * within ±(2^53 - 1)),
 * well-formed strings, `Uint8Array` (a `Buffer` arrives as a plain
 * `Uint8Array`), dense arrays and plain objects of those, at most
 * {@linkcode MAX_CONTENT_DEPTH} deep. A top-level `undefined` (no content)
 * arrives as `null`, and `-0` arrives as `0` (as in JSON); everything else
 * allowed arrives exactly as given, `NaN` and the infinities included.
 *
 * @example
 * ```ts
 * import { checkContent } from "@spores/spores";
 * checkContent({ text: "hi", blob: new Uint8Array([1]), list: [1, null, true] });
 * ```
 */
export function checkContent(value: unknown, path = "content"): void {
  if (value === undefined) return;
  walk(value, path, 0, new Set());
}

function walk(value: unknown, path: string, depth: number, seen: Set<object>): void {
  switch (typeof value) {
    case "boolean":
      return;
    case "number":
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw new ContentError(path, "an integer beyond 2^53 - 1 is not exact: send a decimal string");
      }
      return;
    case "string":
      if (!value.isWellFormed()) {
        throw new ContentError(path, "a string with a lone surrogate does not survive UTF-8: fix the string");
      }
      return;
    case "undefined":
      throw new ContentError(
        path,
        "undefined does not arrive (the field would vanish): omit it or send null",
      );
    case "bigint":
      throw new ContentError(path, "a bigint is not carried: send a number or a decimal string");
    case "function":
    case "symbol":
      throw new ContentError(path, `a ${typeof value} cannot be sent`);
  }
  if (value === null) return;
  const object = value as object;
  if (object instanceof Uint8Array) return;
  if (depth >= MAX_CONTENT_DEPTH) {
    throw new ContentError(path, `nested deeper than ${MAX_CONTENT_DEPTH} levels`);
  }
  if (seen.has(object)) throw new ContentError(path, "a circular reference cannot be sent");
  seen.add(object);
  if (Array.isArray(object)) {
    if (Object.getPrototypeOf(object) !== Array.prototype) {
      throw new ContentError(path, `${kindOf(object)} arrives as a plain array: send a plain array`);
    }
    for (let i = 0; i < object.length; i++) {
      if (!(i in object)) {
        throw new ContentError(`${path}[${i}]`, "a hole in an array arrives as null: fill it");
      }
      walk(object[i], `${path}[${i}]`, depth + 1, seen);
    }
  } else {
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      const kind = kindOf(object);
      const hint = object instanceof Date
        ? "send its getTime() or toISOString()"
        : object instanceof Map
        ? "send Object.fromEntries(map) or an array of entries"
        : object instanceof Set
        ? "send an array"
        : ArrayBuffer.isView(object) || object instanceof ArrayBuffer
        ? "send a Uint8Array"
        : "send a plain object";
      throw new ContentError(path, `a ${kind} does not arrive as one: ${hint}`);
    }
    if (Object.getOwnPropertySymbols(object).length > 0) {
      throw new ContentError(path, "symbol keys are not carried");
    }
    for (const key of Object.keys(object)) {
      walk((object as Record<string, unknown>)[key], member(path, key), depth + 1, seen);
    }
  }
  seen.delete(object);
}
