/**
 * Starting an agent for `send` and `listen`: its identity (a key file, or a
 * fresh one), its trust policy (a trust file, or trust on first use in
 * memory), its transport, and a logger that reports refusals on stderr.
 *
 * @module
 */
import type { Command } from "commander";
import { Agent, hex, Identity, type Logger, TrustFile, type TrustPolicy } from "../mod.ts";
import { usage } from "./errors.ts";
import { note, openIdentity } from "./io.ts";
import { passphraseOptions, transportOptions, withPassphrase, withTransportOptions } from "./options.ts";

/** Adds the options of an agent: key file, id, trust file, transport options, passphrase. */
export function withAgent(cmd: Command): Command {
  cmd
    .option("--key <keyfile>", "the agent's key file (default: a fresh identity for this run)")
    .option("--id <agent>", "the agent id (needed with --key)")
    .option(
      "--trust-file <path>",
      "the durable trust store (needs --key); default: trust on first use, in memory",
    )
    .option("--pinned-only", "with --trust-file: refuse agents that have no pinned fingerprint");
  withTransportOptions(cmd);
  return withPassphrase(cmd);
}

/** The parsed agent options. */
export interface AgentCliOptions {
  key?: string;
  id?: string;
  trustFile?: string;
  pinnedOnly?: boolean;
  transportOption?: string[];
  passphraseFile?: string;
  passphraseEnv?: string;
}

/** A logger that writes warnings and errors as one line each to stderr. */
export const stderrLogger: Logger = {
  log(e) {
    if (e.level !== "warn" && e.level !== "error") return;
    const fields = Object.entries(e)
      .filter(([k, v]) => !["level", "event", "time", "agent"].includes(k) && v !== undefined)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    note(`${e.level}: ${e.event}${fields ? ` ${fields}` : ""}`);
  },
};

/** The identity and trust policy the options name. */
export async function agentKeys(
  o: AgentCliOptions,
): Promise<{ identity: Identity; trust?: TrustPolicy; id?: string }> {
  if (o.key === undefined) {
    if (o.trustFile !== undefined) {
      throw usage("--trust-file needs --key (the file is signed by the identity)");
    }
    return { identity: await Identity.generate(), id: o.id };
  }
  if (o.id === undefined) throw usage("--key needs --id (the agent id the key belongs to)");
  const identity = await openIdentity(o.key, passphraseOptions(o));
  const trust = o.trustFile === undefined
    ? undefined
    : await TrustFile.open(o.trustFile, identity, { unknown: o.pinnedOnly ? "pinned" : "tofu" });
  if (o.pinnedOnly && o.trustFile === undefined) throw usage("--pinned-only needs --trust-file");
  return { identity, trust, id: o.id };
}

/** A fresh agent id for a run without one. */
export function runId(prefix: string): string {
  return `${prefix}-${hex.encode(crypto.getRandomValues(new Uint8Array(4)))}`;
}

/** Starts an agent on `url` with the identity and trust of `o`. */
export async function startAgent(
  url: string,
  o: AgentCliOptions,
  keys: { identity: Identity; trust?: TrustPolicy },
  id: string,
): Promise<Agent> {
  return await Agent.start({
    id,
    transport: url,
    // Every broker transport has connectTimeoutMs; the in-process one has no connection (and refuses the key).
    transportOptions: /^memory:/i.test(url)
      ? transportOptions(o)
      : { connectTimeoutMs: 10_000, ...transportOptions(o) },
    identity: keys.identity,
    trust: keys.trust,
    logger: stderrLogger,
  });
}
