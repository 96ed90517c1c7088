/**
 * Queue and topic names of the SQS transport: an injective mapping from
 * `(prefix, kind, id)` to the names SQS and SNS accept (`[A-Za-z0-9_-]`, at
 * most 80 characters for a queue, `.fifo` included).
 *
 * ```text
 * name     = prefix "_" kind "-" body [".fifo"]
 * prefix   = 1..32 of [A-Za-z0-9-]                       (never "_": the first "_" ends the prefix)
 * kind     = "a" agent queue | "d" dead letters of an agent | "c" channel member queue
 *          | "t" channel topic (SNS) | "k" card topic (SNS) | "w" card watcher queue
 * body     = esc(id)                                     for a, d, t, w
 *          | esc(channel) "_x" esc(member)               for c
 *          | "_h" hex(SHA-256(kind ":" id [":" member])[0..18])   when the name would be too long
 * esc(id)  = id with "_" → "__", "." → "_d", ":" → "_c"  (A-Z a-z 0-9 "-" unchanged)
 * ```
 *
 * Escaped bodies are read token by token (`__`, `_d`, `_c`, `_x`, `_h` are
 * the only `_` pairs), so two different ids never give the same name; an id
 * too long for the name is replaced by 144 bits of its SHA-256, marked `_h`
 * (which no escaped body contains), so such names collide only if SHA-256
 * does.
 *
 * @module
 */
import { hex, utf8 } from "../../crypto/bytes.ts";
import { ConfigError } from "../../crypto/errors.ts";
import { sha256Sync } from "../../crypto/kdf.ts";
import { checkId } from "../../spore/limits.ts";

/** Longest SQS queue name (with `.fifo`). */
export const MAX_QUEUE_NAME = 80;

/** What a name is for. */
export type NameKind = "a" | "d" | "c" | "t" | "k" | "w";

const PREFIX = /^[A-Za-z0-9-]{1,32}$/;

/**
 * Throws a `ConfigError` unless `prefix` is 1..32 of `[A-Za-z0-9-]`.
 *
 * @example
 * ```ts
 * import { checkPrefix } from "@spores/spores/sqs";
 * checkPrefix("spores-prod");
 * ```
 */
export function checkPrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) throw new ConfigError("SQS prefix must be 1..32 of [A-Za-z0-9-]");
  return prefix;
}

/**
 * Escapes an identifier (`[A-Za-z0-9._:-]`) into `[A-Za-z0-9_-]`, injectively.
 *
 * @example
 * ```ts
 * import { escapeId } from "@spores/spores/sqs";
 * console.assert(escapeId("eu:agent_1.x") === "eu_cagent__1_dx");
 * ```
 */
export function escapeId(id: string): string {
  return id.replace(/[_.:]/g, (c) => (c === "_" ? "__" : c === "." ? "_d" : "_c"));
}

/**
 * The SQS or SNS name of `kind` for `id` (and `member`, for a channel member queue).
 *
 * @example
 * ```ts
 * import { sqsName } from "@spores/spores/sqs";
 * console.assert(sqsName("spores", "a", "bob") === "spores_a-bob");
 * console.assert(sqsName("spores", "c", "ops", "bob", true) === "spores_c-ops_xbob.fifo");
 * ```
 */
export function sqsName(prefix: string, kind: NameKind, id: string, member?: string, fifo = false): string {
  checkPrefix(prefix);
  checkId(id, kind === "c" || kind === "t" ? "channel" : "agent id");
  if ((kind === "c") !== (member !== undefined)) throw new ConfigError("a member goes with a channel queue");
  if (member !== undefined) checkId(member, "channel member");
  const head = `${prefix}_${kind}-`;
  const tail = fifo ? ".fifo" : "";
  const body = member === undefined ? escapeId(id) : `${escapeId(id)}_x${escapeId(member)}`;
  if (head.length + body.length + tail.length <= MAX_QUEUE_NAME) return head + body + tail;
  const digest = sha256Sync(utf8(member === undefined ? `${kind}:${id}` : `${kind}:${id}:${member}`));
  return `${head}_h${hex.encode(digest.subarray(0, 18))}${tail}`;
}
