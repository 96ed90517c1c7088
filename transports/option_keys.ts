/**
 * Run-time checking of transport options: every factory refuses a key it does
 * not know with a `ConfigError` that names it and lists the known ones (a
 * misspelt option must not fall back to a default unnoticed). Each scheme's
 * list of keys is checked against its options interface when this project
 * is type-checked: a key missing from the list, or one not in the interface,
 * is a type error.
 *
 * @module
 */
import { ConfigError } from "../crypto/errors.ts";

/**
 * Every key of `T`, as a run-time list: `optionKeys<T>()([...])` is a type
 * error unless the list holds each key of `T` (and nothing else).
 */
export function optionKeys<T>(): <const K extends readonly (keyof T & string)[]>(
  keys:
    & K
    & ([Exclude<keyof T, K[number]>] extends [never] ? unknown : { missing: Exclude<keyof T, K[number]> }),
) => K {
  return (keys) => keys;
}

/** Throws a `ConfigError` unless `options` is undefined or an object whose every key is in `known`. */
export function checkOptions(scheme: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ConfigError(`${scheme} transport options must be an object`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ConfigError(
        `unknown ${scheme} transport option ${JSON.stringify(key)} (known: ${[...known].sort().join(", ")})`,
      );
    }
  }
}
