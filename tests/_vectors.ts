// Loads the stored test vectors (JSON under tests/vectors/).
import { hex } from "../crypto/bytes.ts";

/** Reads and parses `tests/vectors/<name>.json`. */
export function loadVectors<T>(name: string): T {
  return JSON.parse(Deno.readTextFileSync(new URL(`./vectors/${name}.json`, import.meta.url))) as T;
}

/** Hex to bytes (an empty string gives an empty array). */
export const h = (text: string): Uint8Array<ArrayBuffer> => hex.decode(text) as Uint8Array<ArrayBuffer>;
