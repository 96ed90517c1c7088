/**
 * The MQTT topic scheme, session client ids and the validation that keeps
 * every agent, channel and type inside its own topic level.
 *
 * ```text
 * {prefix}/agent/{to}/{type}             direct spores to an agent
 * {prefix}/broadcast/{channel}/{type}    spores to a channel's members
 * {prefix}/cards/{agent}                 an agent's card (retained)
 * {prefix}/dlq/{agent}                   an agent's dead letters
 * ```
 *
 * Identifiers are `[A-Za-z0-9._:-]` (see `checkId`), so none can hold `+`,
 * `#`, `/` or start with `$`. The prefix is one or more levels of the same
 * characters, separated by `/`.
 *
 * @module
 */
import { ConfigError } from "../../crypto/errors.ts";
import { checkId } from "../../spore/limits.ts";
import type { Address } from "../transport.ts";

const LEVEL = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Validates a topic prefix: 1 to 8 levels of `[A-Za-z0-9._:-]`, separated by
 * `/` (no wildcard, no `$`, no empty level).
 *
 * @example
 * ```ts
 * import { checkPrefix } from "@spores/spores/mqtt";
 * console.assert(checkPrefix("acme/spores") === "acme/spores");
 * ```
 */
export function checkPrefix(prefix: string): string {
  const levels = prefix.split("/");
  if (levels.length > 8 || !levels.every((l) => LEVEL.test(l))) {
    throw new ConfigError("MQTT prefix must be 1..8 levels of [A-Za-z0-9._:-], separated by /");
  }
  return prefix;
}

/** Where a subscription reads: its topic filter and the client id of its persistent session. */
export interface SessionTopics {
  /** The topic filter subscribed (with `$share/{owner}/` in front when `instance` is set). */
  readonly filter: string;
  /** The client id of the session (fixed, so the broker keeps the session while it is away). */
  readonly clientId: string;
  /** The agent that owns the session (the agent, or the channel member). */
  readonly owner: string;
}

/**
 * The topic a publication to `to` goes to.
 *
 * @example
 * ```ts
 * import { topicOf } from "@spores/spores/mqtt";
 * console.assert(topicOf("spores", { agent: "bob" }, "chat") === "spores/agent/bob/chat");
 * ```
 */
export function topicOf(prefix: string, to: Address, type = "spore"): string {
  const t = checkId(type, "type");
  return "agent" in to
    ? `${prefix}/agent/${checkId(to.agent, "agent")}/${t}`
    : `${prefix}/broadcast/${checkId(to.channel, "channel")}/${t}`;
}

/**
 * The filter and session of a subscription to `from`. With `instance`, the
 * session is one process of a group that shares the agent's messages through
 * a shared subscription (`$share/{owner}/...`).
 *
 * @example
 * ```ts
 * import { sessionOf } from "@spores/spores/mqtt";
 * const s = sessionOf("spores", { agent: "bob" }, undefined, "p1");
 * console.assert(s.filter === "$share/bob/spores/agent/bob/+");
 * console.assert(s.clientId === "spores/agent/bob/p1");
 * ```
 */
export function sessionOf(prefix: string, from: Address, member?: string, instance?: string): SessionTopics {
  let base: string;
  let owner: string;
  if ("agent" in from) {
    owner = checkId(from.agent, "agent");
    base = `${prefix}/agent/${owner}`;
  } else {
    owner = checkId(member, "channel member");
    base = `${prefix}/broadcast/${checkId(from.channel, "channel")}`;
  }
  const topic = `${base}/+`;
  if (instance === undefined) {
    return { filter: topic, clientId: "agent" in from ? base : `${base}/${owner}`, owner };
  }
  const i = checkId(instance, "instance");
  return {
    filter: `$share/${owner}/${topic}`,
    clientId: "agent" in from ? `${base}/${i}` : `${base}/${owner}/${i}`,
    owner,
  };
}

/** The retained card topic of `agent`. */
export function cardTopic(prefix: string, agent: string): string {
  return `${prefix}/cards/${checkId(agent, "agent id")}`;
}

/** The dead-letter topic of `agent` (its queue is the session of the same name). */
export function deadLetterTopic(prefix: string, agent: string): string {
  return `${prefix}/dlq/${checkId(agent, "agent")}`;
}
