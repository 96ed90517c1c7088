/**
 * `spores trust`: pin, unpin and list fingerprints in the durable trust
 * store (a file signed by the agent's identity).
 *
 * @module
 */
import { Command } from "commander";
import { type Identity, TrustFile, verifyCard } from "../mod.ts";
import { decodeCardBytes } from "./card.ts";
import { usage } from "./errors.ts";
import { openIdentity, out, readFileBounded } from "./io.ts";
import {
  connect,
  passphraseOptions,
  redact,
  transportOptions,
  withJson,
  withPassphrase,
  withTransportOptions,
} from "./options.ts";

interface StoreOptions {
  trustFile: string;
  key: string;
  passphraseFile?: string;
  passphraseEnv?: string;
}

function withStore(cmd: Command): Command {
  cmd
    .requiredOption("--trust-file <path>", "the trust store file (created on the first pin)")
    .requiredOption("--key <keyfile>", "the key file of the agent that owns (and signs) the store");
  return withPassphrase(cmd);
}

async function openStore(o: StoreOptions): Promise<{ store: TrustFile; identity: Identity }> {
  const identity = await openIdentity(o.key, passphraseOptions(o));
  return { store: await TrustFile.open(o.trustFile, identity), identity };
}

/** `spores trust`. */
export function trustCommand(): Command {
  const trust = new Command("trust").description(
    "pin or list agent fingerprints in the durable trust store, a file signed by your identity",
  );

  const pin = new Command("pin")
    .description("pin the fingerprint of an agent (given, from its card file, or from a directory)")
    .argument("<agent>", "the agent id")
    .argument("[fingerprint]", "its fingerprint (as `spores fingerprint` prints it)")
    .option("--card <path>", "take the fingerprint from this card file (verified; its id must match)")
    .option("--from <url>", "take the fingerprint from the card in this transport's directory");
  withStore(pin);
  withTransportOptions(pin);
  withJson(pin);
  pin.action(async (agent: string, fingerprint: string | undefined, o) => {
    const sources = [fingerprint, o.card, o.from].filter((v) => v !== undefined).length;
    if (sources !== 1) throw usage("give the fingerprint, --card or --from: exactly one");
    let value = fingerprint;
    if (o.card !== undefined) {
      const card = await verifyCard(decodeCardBytes(await readFileBounded(o.card, 128 * 1024, "card file")));
      if (card.id !== agent) throw usage(`the card is ${card.id}'s, not ${agent}'s`);
      value = card.fingerprint;
    } else if (o.from !== undefined) {
      const transport = await connect(o.from, transportOptions(o));
      try {
        if (!transport.directory) throw usage(`${redact(o.from)} has no card directory`);
        const card = await transport.directory.lookup(agent);
        if (!card) throw usage(`no card of ${agent} on ${redact(o.from)}`);
        value = card.fingerprint;
      } finally {
        await transport.close();
      }
    }
    const { store } = await openStore(o);
    const before = await store.pin(agent, value!);
    if (o.json) out(JSON.stringify({ id: agent, fingerprint: value, previous: before ?? null }));
    else if (before === undefined || before === value) out(`pinned ${agent} ${value}`);
    else out(`pinned ${agent} ${value} (replaces ${before})`);
  });

  const unpin = new Command("unpin")
    .description("remove an agent's entry")
    .argument("<agent>", "the agent id");
  withStore(unpin);
  unpin.action(async (agent: string, o) => {
    const { store } = await openStore(o);
    if (!(await store.unpin(agent))) throw usage(`no entry for ${agent}`);
    out(`unpinned ${agent}`);
  });

  const list = new Command("list").description("list the entries (after checking the file's signature)");
  withStore(list);
  withJson(list);
  list.action(async (o) => {
    const { store, identity } = await openStore(o);
    const entries = store.list();
    if (o.json) {
      out(JSON.stringify({ owner: identity.fingerprint, entries }));
      return;
    }
    if (entries.length === 0) out("no entries");
    const width = Math.max(5, ...entries.map((e) => e.id.length));
    for (const e of entries) {
      out(
        `${e.id.padEnd(width)}  ${e.fingerprint}  ${e.source === "pin" ? "pinned" : "first use"} ${
          new Date(e.addedAt).toISOString()
        }`,
      );
    }
  });

  return trust.addCommand(pin).addCommand(unpin).addCommand(list);
}
