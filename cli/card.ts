/**
 * `spores card`: make, print, publish, look up and check agent cards.
 *
 * @module
 */
import { Command } from "commander";
import { type AgentCard, base64, createCard, hex, MAX_CARD_BYTES, verifyCard } from "../mod.ts";
import { usage } from "./errors.ts";
import { openIdentity, out, parseDuration, readFileBounded, readStdin, writeSecretFile } from "./io.ts";
import {
  connect,
  passphraseOptions,
  redact,
  transportOptions,
  withJson,
  withPassphrase,
  withTransportOptions,
} from "./options.ts";

/** Card bytes from a file that holds them raw or as base64 text. */
export function decodeCardBytes(bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(bytes).trim();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) {
    try {
      return base64.decode(text);
    } catch {
      // not base64 after all: the raw bytes
    }
  }
  return bytes;
}

/** A card as printable JSON: public keys are named, not dumped. */
export function describeCard(card: AgentCard): Record<string, unknown> {
  return {
    id: card.id,
    fingerprint: card.fingerprint,
    signatures: card.mlDsa65 ? "ed25519+mldsa65" : "ed25519",
    kemKeys: card.kem.map((k) => ({
      keyId: hex.encode(k.keyId),
      notBefore: new Date(k.notBefore).toISOString(),
      notAfter: k.notAfter === undefined ? undefined : new Date(k.notAfter).toISOString(),
    })),
    issuedAt: new Date(card.issuedAt).toISOString(),
    expiresAt: card.expiresAt === undefined ? undefined : new Date(card.expiresAt).toISOString(),
    issuer: card.issuer ? base64.encode(card.issuer) : undefined,
    size: card.bytes.length,
  };
}

function printCard(card: AgentCard, json: boolean): void {
  const d = describeCard(card);
  if (json) {
    out(JSON.stringify(d));
    return;
  }
  out(`agent        ${card.id}`);
  out(`fingerprint  ${card.fingerprint}`);
  out(`signatures   ${d.signatures}`);
  for (const k of card.kem) {
    const window = k.notAfter === undefined ? "current" : `until ${new Date(k.notAfter).toISOString()}`;
    out(`x-wing key   ${hex.encode(k.keyId)} (${window})`);
  }
  out(`issued       ${d.issuedAt}${card.expiresAt ? `, expires ${d.expiresAt}` : ""}`);
  if (card.issuer) out(`endorsed by  ${d.issuer}`);
}

/** `spores card`. */
export function cardCommand(): Command {
  const cmd = new Command("card")
    .description(
      "make an agent card from a key file (print it, save it, or publish it), or show a card from a file or a directory",
    )
    .option("--key <keyfile>", "make the card of this key file (with --id)")
    .option("--id <agent>", "the agent id (with --key or --from)")
    .option("--lifetime <duration>", "with --key: the card expires after this long (e.g. 30d)")
    .option("--out <path>", "write the card (binary) to this file")
    .option("--publish <url>", "with --key: publish the card on this transport's directory")
    .option("--show <path>", "verify and show a card file (binary or base64; - for stdin)")
    .option("--from <url>", "look up the card of --id in this transport's directory, verify and show it")
    .option("--force", "replace an existing --out file");
  withPassphrase(cmd);
  withJson(cmd);
  withTransportOptions(cmd);
  return cmd.action(async (o) => {
    const modes = [o.key, o.show, o.from].filter((v) => v !== undefined).length;
    if (modes !== 1) throw usage("give exactly one of --key, --show or --from");
    if (o.show !== undefined) {
      const raw = o.show === "-"
        ? await readStdin(MAX_CARD_BYTES * 2)
        : await readFileBounded(o.show, MAX_CARD_BYTES * 2, "card file");
      printCard(await verifyCard(decodeCardBytes(raw)), Boolean(o.json));
      return;
    }
    if (o.id === undefined) throw usage(`${o.key ? "--key" : "--from"} needs --id`);
    if (o.from !== undefined) {
      const transport = await connect(o.from, transportOptions(o));
      try {
        if (!transport.directory) throw usage(`${redact(o.from)} has no card directory`);
        const card = await transport.directory.lookup(o.id);
        if (!card) throw usage(`no card of ${o.id} on ${redact(o.from)}`);
        if (o.out !== undefined) await writeSecretFile(o.out, card.bytes, Boolean(o.force));
        printCard(card, Boolean(o.json));
      } finally {
        await transport.close();
      }
      return;
    }
    const identity = await openIdentity(o.key, passphraseOptions(o));
    const lifetimeMs = o.lifetime === undefined ? undefined : parseDuration(o.lifetime, "--lifetime");
    const bytes = await createCard(o.id, identity, { lifetimeMs });
    const card = await verifyCard(bytes);
    if (o.out !== undefined) await writeSecretFile(o.out, bytes, Boolean(o.force));
    if (o.publish !== undefined) {
      const transport = await connect(o.publish, transportOptions(o));
      try {
        if (!transport.directory) throw usage(`${redact(o.publish)} has no card directory`);
        await transport.directory.publish(bytes);
      } finally {
        await transport.close();
      }
    }
    if (o.json) {
      out(
        JSON.stringify({ ...describeCard(card), card: base64.encode(bytes), published: Boolean(o.publish) }),
      );
    } else if (o.out === undefined && o.publish === undefined) out(base64.encode(bytes));
    else printCard(card, false);
  });
}
