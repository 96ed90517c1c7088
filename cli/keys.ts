/**
 * `spores keygen`, `spores fingerprint`, `spores rotate`: identities in
 * passphrase-sealed key files.
 *
 * @module
 */
import { Command } from "commander";
import { createCard, DEFAULT_SCRYPT_COST, hex, Identity, type ScryptCost, verifyCard } from "../mod.ts";
import { CliError, Exit, usage } from "./errors.ts";
import {
  openIdentity,
  out,
  parseCount,
  parseDuration,
  passphrase,
  readFileBounded,
  writeSecretFile,
} from "./io.ts";
import {
  connect,
  passphraseOptions,
  redact,
  transportOptions,
  withJson,
  withPassphrase,
  withTransportOptions,
} from "./options.ts";
import { decodeCardBytes } from "./card.ts";

/** `spores keygen`. */
export function keygenCommand(): Command {
  const cmd = new Command("keygen")
    .description("make a new identity and seal it into a passphrase-protected key file")
    .requiredOption("-o, --out <path>", "the key file to write (mode 0600)")
    .option("--hybrid", "add an ML-DSA-65 key: hybrid Ed25519 + ML-DSA-65 (post-quantum) signatures")
    .option("--force", "replace an existing file")
    .option(
      "--scrypt-log-n <n>",
      `scrypt cost log2(N), 10..20 (default ${DEFAULT_SCRYPT_COST.logN}; lower only for tests)`,
    );
  withPassphrase(cmd);
  withJson(cmd);
  return cmd.action(async (o) => {
    const cost: ScryptCost = {
      ...DEFAULT_SCRYPT_COST,
      logN: o.scryptLogN === undefined
        ? DEFAULT_SCRYPT_COST.logN
        : parseCount(o.scryptLogN, "--scrypt-log-n", 10, 20),
    };
    const secret = await passphrase(passphraseOptions(o), true);
    const identity = await Identity.generate({ extractable: true, postQuantumSignatures: Boolean(o.hybrid) });
    const file = await identity.seal(secret, cost);
    await writeSecretFile(o.out, file, Boolean(o.force));
    const suite = identity.pqSigningKey ? "ed25519+mldsa65" : "ed25519";
    if (o.json) out(JSON.stringify({ file: o.out, fingerprint: identity.fingerprint, signatures: suite }));
    else out(`${identity.fingerprint}\nwrote ${o.out} (${suite} signatures, X-Wing key ${kemId(identity)})`);
  });
}

function kemId(identity: Identity): string {
  return hex.encode(identity.kemKey.keyId);
}

/** `spores fingerprint`. */
export function fingerprintCommand(): Command {
  const cmd = new Command("fingerprint")
    .description("print the fingerprint of a key file, or of an agent card (--card, no passphrase needed)")
    .argument("[keyfile]", "the key file")
    .option("--card <path>", "an agent card file (binary or base64) instead of a key file");
  withPassphrase(cmd);
  return cmd.action(async (keyfile: string | undefined, o) => {
    if ((keyfile === undefined) === (o.card === undefined)) {
      throw usage("give a key file or --card, one of them");
    }
    if (o.card !== undefined) {
      const card = await verifyCard(decodeCardBytes(await readFileBounded(o.card, 1 << 20, "card file")));
      out(card.fingerprint);
      return;
    }
    out((await openIdentity(keyfile!, passphraseOptions(o))).fingerprint);
  });
}

/** `spores rotate`. */
export function rotateCommand(): Command {
  const cmd = new Command("rotate")
    .description(
      "rotate the X-Wing (KEM) key of a key file; the old key keeps opening spores for the overlap window",
    )
    .argument("<keyfile>", "the key file (rewritten in place, same passphrase and cost)")
    .option("--overlap <duration>", "how long spores sealed to the old key still open (e.g. 1h, 30m)", "1h")
    .option("--publish <url>", "publish the new card on this transport's directory (needs --id)")
    .option("--id <agent>", "the agent id the key file belongs to (for --publish)");
  withPassphrase(cmd);
  withJson(cmd);
  withTransportOptions(cmd);
  return cmd.action(async (keyfile: string, o) => {
    if (o.publish !== undefined && o.id === undefined) throw usage("--publish needs --id");
    const overlapMs = parseDuration(o.overlap, "--overlap");
    const bytes = await readFileBounded(keyfile, 16 * 1024, "key file").catch((e) => {
      throw e instanceof CliError ? new CliError(e.message, Exit.KEY_FILE) : e;
    });
    const secret = await passphrase(passphraseOptions(o));
    const identity = await Identity.open(bytes, secret);
    const before = kemId(identity);
    await identity.rotateKemKey({ overlapMs });
    // The key file header keeps the scrypt cost at bytes 6..8 (docs: crypto/key_file.ts).
    const cost: ScryptCost = { logN: bytes[6]!, r: bytes[7]!, p: bytes[8]! };
    const sealed = await identity.seal(secret, cost);
    const temp = `${keyfile}.${crypto.randomUUID()}.tmp`;
    await writeSecretFile(temp, sealed, false);
    try {
      await Deno.rename(temp, keyfile);
    } catch (e) {
      await Deno.remove(temp).catch(() => {});
      throw new CliError(`cannot replace ${keyfile}: ${(e as Error).message}`, Exit.KEY_FILE);
    }
    let published = false;
    if (o.publish !== undefined) {
      const transport = await connect(o.publish, transportOptions(o));
      try {
        if (!transport.directory) throw usage(`${redact(o.publish)} has no card directory`);
        await transport.directory.publish(await createCard(o.id, identity));
        published = true;
      } finally {
        await transport.close();
      }
    }
    const after = kemId(identity);
    const until = new Date(Date.now() + overlapMs).toISOString();
    if (o.json) {
      out(
        JSON.stringify({
          fingerprint: identity.fingerprint,
          previous: before,
          current: after,
          overlapUntil: until,
          published,
        }),
      );
    } else {
      out(`rotated X-Wing key ${before} -> ${after}; the old key opens spores until ${until}`);
      out(
        published
          ? `published the new card of ${o.id}`
          : "publish the new card (spores card --publish) so that senders switch",
      );
    }
  });
}
