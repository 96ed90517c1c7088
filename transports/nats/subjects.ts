/**
 * Subject, stream, consumer and key names of the NATS transport.
 *
 * ```text
 * {prefix}.agent.{to}.{type}                      an agent's spores
 * {prefix}.broadcast.{channel}.{type}             a channel's spores
 * {prefix}.dead.agent.{to}                        an agent's dead letters
 * {prefix}.dead.broadcast.{channel}.{member}      a channel member's dead letters
 * stream   {stream}                               holds {prefix}.>  (file storage)
 * consumer agent_{to}                             durable pull consumer of an agent
 * consumer member_{channel}_{member}              durable pull consumer of a channel member
 * bucket   {stream}_cards                         agent cards (KV), key {to}
 * ```
 *
 * Agent ids, channel names and types pass through {@linkcode token}, an
 * injective escape into `[A-Za-z0-9-]` and `_XX` (hex): no id can contain a
 * `.`, `*`, `>` or whitespace that would change which subjects it names, and
 * two different ids never share a subject, a consumer or a key.
 *
 * @module
 */
import { ConfigError } from "../../crypto/errors.ts";
import { checkId } from "../../spore/limits.ts";

const SAFE = /^[A-Za-z0-9-]$/;

/**
 * Escapes an identifier into one subject token (also a valid consumer name
 * and KV key): `[A-Za-z0-9-]` stays, every other character becomes `_` and
 * its two hex digits. Injective, since `_` itself is escaped.
 *
 * @example
 * ```ts
 * import { token } from "@spores/spores/nats";
 * console.assert(token("svc.billing:eu_1") === "svc_2Ebilling_3Aeu_5F1");
 * ```
 */
export function token(id: string): string {
  let out = "";
  for (const ch of id) {
    if (SAFE.test(ch)) out += ch;
    else {
      const code = ch.codePointAt(0)!;
      if (code > 0x7f) throw new ConfigError("identifiers are ASCII");
      out += `_${code.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  return out;
}

/**
 * Reverses {@linkcode token}.
 *
 * @example
 * ```ts
 * import { token, untoken } from "@spores/spores/nats";
 * console.assert(untoken(token("a.b_c")) === "a.b_c");
 * ```
 */
export function untoken(t: string): string {
  return t.replace(/_([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** Names of everything one transport instance uses. */
export interface NatsNames {
  /** Subject prefix (dot-separated tokens). */
  readonly prefix: string;
  /** Stream name. */
  readonly stream: string;
  /** KV bucket of agent cards. */
  readonly bucket: string;
}

const PREFIX = /^[A-Za-z0-9_-]{1,32}(\.[A-Za-z0-9_-]{1,32}){0,3}$/;
const NAME = /^[A-Za-z0-9_-]{1,48}$/;

/**
 * Checks a prefix (1 to 4 tokens of `[A-Za-z0-9_-]`) and derives the stream
 * and bucket names (or checks the given ones).
 *
 * @example
 * ```ts
 * import { natsNames } from "@spores/spores/nats";
 * console.assert(natsNames("spores").stream === "spores");
 * console.assert(natsNames("acme.spores").bucket === "acme_spores_cards");
 * ```
 */
export function natsNames(prefix: string, stream?: string): NatsNames {
  if (!PREFIX.test(prefix)) {
    throw new ConfigError("prefix must be 1..4 dot-separated tokens of [A-Za-z0-9_-] (1..32 each)");
  }
  const s = stream ?? prefix.replaceAll(".", "_");
  if (!NAME.test(s)) throw new ConfigError("stream name must be 1..48 of [A-Za-z0-9_-]");
  return { prefix, stream: s, bucket: `${s}_cards` };
}

/**
 * Subject of a spore to an agent.
 *
 * @example
 * ```ts
 * import { agentSubject } from "@spores/spores/nats";
 * console.assert(agentSubject("spores", "bob.eu", "chat") === "spores.agent.bob_2Eeu.chat");
 * ```
 */
export function agentSubject(prefix: string, agent: string, type = "spore"): string {
  return `${prefix}.agent.${token(checkId(agent, "agent"))}.${token(checkId(type, "type"))}`;
}

/**
 * Subject of a spore to a channel.
 *
 * @example
 * ```ts
 * import { channelSubject } from "@spores/spores/nats";
 * console.assert(channelSubject("spores", "ops") === "spores.broadcast.ops.spore");
 * ```
 */
export function channelSubject(prefix: string, channel: string, type = "spore"): string {
  return `${prefix}.broadcast.${token(checkId(channel, "channel"))}.${token(checkId(type, "type"))}`;
}

/** What a subscriber reads: its consumer's filter, durable name and dead-letter subject. */
export interface ConsumerNames {
  /** `filter_subject` of the consumer. */
  readonly filter: string;
  /** Durable consumer name. */
  readonly durable: string;
  /** Where the transport puts the messages it gives up on. */
  readonly dead: string;
}

// Consumer names become directory names on the server; past this length they are hashed.
const MAX_DURABLE = 200;

async function shorten(name: string): Promise<string> {
  if (name.length <= MAX_DURABLE) return name;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(name)));
  return `h_${Array.from(digest.subarray(0, 20), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * The consumer of an agent, or of one member of a channel.
 *
 * @example
 * ```ts
 * import { consumerNames } from "@spores/spores/nats";
 * const names = await consumerNames("spores", { agent: "bob" });
 * console.assert(names.filter === "spores.agent.bob.>" && names.durable === "agent_bob");
 * ```
 */
export async function consumerNames(
  prefix: string,
  from: { agent: string } | { channel: string },
  member?: string,
): Promise<ConsumerNames> {
  if ("agent" in from) {
    const t = token(checkId(from.agent, "agent"));
    return {
      filter: `${prefix}.agent.${t}.>`,
      durable: await shorten(`agent_${t}`),
      dead: `${prefix}.dead.agent.${t}`,
    };
  }
  const c = token(checkId(from.channel, "channel"));
  const m = token(checkId(member, "channel member"));
  // `_` never appears alone inside a token (only as `_XX`), so `__` separates channel and member injectively.
  return {
    filter: `${prefix}.broadcast.${c}.>`,
    durable: await shorten(`member_${c}__${m}`),
    dead: `${prefix}.dead.broadcast.${c}.${m}`,
  };
}
