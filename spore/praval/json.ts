/**
 * Knowledge as Praval carries it: the UTF-8 bytes of Python's
 * `json.dumps(knowledge, ensure_ascii=False)` (separators `", "` and
 * `": "`), and the canonical trace-context bytes Praval signs
 * (`sort_keys=True`, separators `","` and `":"`). Encoding gives the exact
 * bytes Python gives for the same values, so that a spore sealed here and one
 * sealed by Praval with the same keys and nonce are identical.
 *
 * Values that cannot round-trip between the two languages are refused when
 * sent: non-finite numbers, integers beyond 2^53, lone surrogates, byte
 * arrays, `undefined`, functions, and objects that are not plain.
 *
 * @module
 */
import { ConfigError, ProtocolError } from "../../crypto/errors.ts";

/** A JSON value as Praval's knowledge holds it. */
export type PravalJson = null | boolean | number | string | PravalJson[] | { [key: string]: PravalJson };

/** Deepest nesting of arrays and objects accepted either way. */
export const MAX_JSON_DEPTH = 64;

const LONE_SURROGATE = /\p{Surrogate}/u;

function quote(s: string): string {
  // JSON.stringify escapes exactly what Python's json.dumps(ensure_ascii=False) escapes
  // (", \, \b \f \n \r \t, other C0 controls as \u00xx), and escapes lone surrogates,
  // which Python would fail to encode as UTF-8: refuse those instead.
  if (LONE_SURROGATE.test(s)) throw new ConfigError("knowledge strings must be well-formed Unicode");
  return JSON.stringify(s);
}

/** Python's `repr(float)` for a finite, non-integral double. */
function pythonFloat(x: number): string {
  const abs = Math.abs(x);
  // Python switches to exponent form below 1e-4 (and at 1e16, unreachable for a non-integral double).
  if (abs >= 1e-4) return String(x);
  const [mantissa, exponent] = x.toExponential().split("e") as [string, string];
  const sign = exponent[0] === "-" ? "-" : "+";
  const digits = exponent.replace(/^[+-]/, "").padStart(2, "0");
  return `${mantissa}e${sign}${digits}`;
}

function write(value: unknown, depth: number, out: string[]): void {
  if (depth > MAX_JSON_DEPTH) throw new ConfigError(`knowledge is nested deeper than ${MAX_JSON_DEPTH}`);
  if (value === null) {
    out.push("null");
  } else if (value === true) {
    out.push("true");
  } else if (value === false) {
    out.push("false");
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ConfigError("knowledge numbers must be finite");
    if (Number.isInteger(value)) {
      if (!Number.isSafeInteger(value)) {
        throw new ConfigError("knowledge integers must be within ±(2^53 - 1) to round-trip");
      }
      out.push(String(value === 0 ? 0 : value));
    } else {
      out.push(pythonFloat(value));
    }
  } else if (typeof value === "string") {
    out.push(quote(value));
  } else if (Array.isArray(value)) {
    out.push("[");
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(", ");
      write(value[i], depth + 1, out);
    }
    out.push("]");
  } else if (typeof value === "object" && isPlainObject(value)) {
    out.push("{");
    let first = true;
    for (const [k, v] of Object.entries(value)) {
      if (!first) out.push(", ");
      first = false;
      out.push(quote(k), ": ");
      write(v, depth + 1, out);
    }
    out.push("}");
  } else {
    const what = value instanceof Uint8Array ? "byte arrays" : typeof value;
    throw new ConfigError(`knowledge for a Praval agent is JSON: ${what} cannot be sent`);
  }
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Encodes knowledge as Python's `json.dumps(knowledge, ensure_ascii=False)`
 * would, as UTF-8. Knowledge is a plain object (Praval's `Dict[str, Any]`).
 *
 * @example
 * ```ts
 * import { encodeKnowledge } from "@spores/spores/spore";
 * const text = new TextDecoder().decode(encodeKnowledge({ topic: "tides", depth: [1, 2.5] }));
 * console.assert(text === '{"topic": "tides", "depth": [1, 2.5]}');
 * ```
 */
export function encodeKnowledge(knowledge: unknown): Uint8Array {
  if (knowledge === null || typeof knowledge !== "object" || Array.isArray(knowledge)) {
    throw new ConfigError("knowledge for a Praval agent must be a plain object");
  }
  const out: string[] = [];
  write(knowledge, 0, out);
  return new TextEncoder().encode(out.join(""));
}

function depthOf(value: unknown, depth: number): void {
  if (depth > MAX_JSON_DEPTH) throw new ProtocolError(`knowledge is nested deeper than ${MAX_JSON_DEPTH}`);
  if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) depthOf(v, depth + 1);
  }
}

/**
 * Decodes knowledge bytes strictly: UTF-8, standard JSON, an object at the
 * top, integers that a double holds exactly, nesting at most
 * {@linkcode MAX_JSON_DEPTH}. Anything else is a `ProtocolError`.
 *
 * @example
 * ```ts
 * import { decodeKnowledge } from "@spores/spores/spore";
 * const k = decodeKnowledge(new TextEncoder().encode('{"a": [1, "b"]}'));
 * console.assert(JSON.stringify(k) === '{"a":[1,"b"]}');
 * ```
 */
export function decodeKnowledge(bytes: Uint8Array): Record<string, PravalJson> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (cause) {
    throw new ProtocolError("knowledge is not valid UTF-8", { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(
      text,
      // deno-lint-ignore no-explicit-any
      function (this: unknown, _key: string, v: unknown, context?: any) {
        if (typeof v === "number" && !Number.isSafeInteger(v) && typeof context?.source === "string") {
          if (/^-?\d+$/.test(context.source)) throw new ProtocolError("knowledge integer out of range");
        }
        return v;
      },
    );
  } catch (cause) {
    if (cause instanceof ProtocolError) throw cause;
    throw new ProtocolError("knowledge is not valid JSON", { cause });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ProtocolError("knowledge is not a JSON object");
  }
  depthOf(value, 0);
  return value as Record<string, PravalJson>;
}

/** Compares by Unicode code point, as Python sorts `str`. */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * The bytes Praval signs for a trace context: Python's `json.dumps(carrier,
 * ensure_ascii=False, separators=(",", ":"), sort_keys=True)` as UTF-8.
 *
 * @example
 * ```ts
 * import { canonicalTraceContext } from "@spores/spores/spore";
 * const text = new TextDecoder().decode(canonicalTraceContext({ tracestate: "x", traceparent: "00-a" }));
 * console.assert(text === '{"traceparent":"00-a","tracestate":"x"}');
 * ```
 */
export function canonicalTraceContext(carrier: Readonly<Record<string, string>>): Uint8Array {
  const keys = Object.keys(carrier).sort(byCodePoint);
  const parts = keys.map((k) => `${quote(k)}:${quote(carrier[k]!)}`);
  return new TextEncoder().encode(`{${parts.join(",")}}`);
}
