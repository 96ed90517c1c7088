/**
 * `spores inspect`: the public header of a spore, its kind, suite and sizes,
 * and, with a key file, whether it opens (with the typed reason when not).
 * Nothing secret is printed: no key, and the content only with
 * `--show-content`.
 *
 * @module
 */
import { Command } from "commander";
import {
  DEFAULT_LIMITS,
  describeHeader,
  type Directory,
  Kind,
  maxEnvelopeBytes,
  MemoryDirectory,
  type OpenResult,
  parseEnvelope,
  SporeEngine,
  SporeError,
  TofuTrust,
  TrustFile,
  type TrustPolicy,
  verifyCard,
} from "../mod.ts";
import { decodeCardBytes } from "./card.ts";
import { CliError, Exit, usage } from "./errors.ts";
import { openIdentity, out, readFileBounded, readStdin, toJsonValue } from "./io.ts";
import {
  connect,
  passphraseOptions,
  transportOptions,
  withJson,
  withPassphrase,
  withTransportOptions,
} from "./options.ts";

const KIND_NAMES: Record<number, string> = {
  [Kind.SEALED]: "sealed (one-shot, to the recipient's X-Wing key, signed)",
  [Kind.SESSION]: "session (AEAD under a session key)",
  [Kind.HELLO]: "hello (handshake, initiator to responder)",
  [Kind.WELCOME]: "welcome (handshake, responder to initiator)",
  [Kind.BROADCAST]: "broadcast (under the sender's sender key, signed)",
};

interface Verdict {
  opens: boolean;
  result?: string;
  code?: string;
  reason?: string;
  content?: unknown;
  contentType?: string;
}

function verdictOf(r: OpenResult, showContent: boolean): Verdict {
  switch (r.status) {
    case "message": {
      const v: Verdict = {
        opens: true,
        result: `a ${r.spore.kind} message of type ${r.spore.type} from ${r.spore.from}`,
        contentType: r.spore.content instanceof Uint8Array
          ? `bytes (${r.spore.content.length})`
          : r.spore.content === null
          ? "null"
          : Array.isArray(r.spore.content)
          ? "array"
          : typeof r.spore.content,
      };
      if (showContent) v.content = toJsonValue(r.spore.content);
      return v;
    }
    case "handshake":
      return { opens: true, result: `a valid handshake step from ${r.peer} (session ${r.sessionId})` };
    case "duplicate":
      return { opens: true, result: `a duplicate of ${r.id} from ${r.from}` };
    case "ignored":
      return { opens: true, result: `a hello from ${r.from} that would be ignored: ${r.reason}` };
    case "pending-key":
      return {
        opens: false,
        code: "ERR_SESSION",
        reason:
          `needs sender key ${r.keyId} of ${r.from} for channel ${r.channel}, which only a member receives`,
      };
  }
}

/** `spores inspect`. */
export function inspectCommand(): Command {
  const cmd = new Command("inspect")
    .description(
      "show a spore's public header, kind, suite and sizes; with --key, whether it opens and why not",
    )
    .argument("[file]", "the spore (binary); - or nothing for stdin")
    .option("--key <keyfile>", "try to open it with this key file")
    .option("--id <agent>", "the agent id of the key file (default: the spore's recipient)")
    .option(
      "--card <path>",
      "the sender's card, to verify its signature (repeatable)",
      (v: string, all: string[] = []) => [...all, v],
    )
    .option("--from <url>", "look the sender's card up in this transport's directory")
    .option("--trust-file <path>", "check the sender against this trust store (default: accept its card)")
    .option("--allow-classic", "accept the classic NaCl suite")
    .option("--show-content", "print the decrypted content too (it is the message: treat it as such)");
  withPassphrase(cmd);
  withTransportOptions(cmd);
  withJson(cmd);
  return cmd.action(async (file: string | undefined, o) => {
    const max = maxEnvelopeBytes(DEFAULT_LIMITS);
    const bytes = file === undefined || file === "-"
      ? await readStdin(max)
      : await readFileBounded(file, max, "spore file");
    if (bytes.length === 0) throw new CliError("no spore: the input is empty", Exit.REFUSED);
    const env = parseEnvelope(bytes);
    const info = describeHeader(env.header, bytes.length);
    const sizes = {
      total: bytes.length,
      header: env.headerBytes.length,
      sections: env.sections.map((s) => s.length),
    };
    let verdict: Verdict | undefined;
    if (o.key !== undefined) {
      if (o.card !== undefined && o.from !== undefined) throw usage("give --card or --from, not both");
      const identity = await openIdentity(o.key, passphraseOptions(o));
      const id = o.id ?? (env.header.kind === Kind.BROADCAST ? undefined : info.to);
      if (id === undefined) throw usage("a broadcast names a channel, not an agent: give --id");
      let directory: Directory = new MemoryDirectory();
      let close = async () => {};
      if (o.from !== undefined) {
        const transport = await connect(o.from, transportOptions(o));
        close = () => transport.close();
        if (!transport.directory) throw usage("this transport has no card directory");
        directory = transport.directory;
      }
      try {
        for (const path of o.card ?? []) {
          const card = decodeCardBytes(await readFileBounded(path, 128 * 1024, "card file"));
          await verifyCard(card);
          await directory.publish(card);
        }
        const trust: TrustPolicy = o.trustFile === undefined
          ? new TofuTrust()
          : await TrustFile.open(o.trustFile, identity, { unknown: "pinned" });
        // A read-only view, so that inspecting never publishes this key's card anywhere.
        const view: Directory = {
          publish: () => Promise.resolve(),
          lookup: (agent) => directory.lookup(agent),
          watch: (listener) => directory.watch(listener),
        };
        const engine = await SporeEngine.create({
          id,
          identity,
          directory: view,
          trust,
          allowClassic: Boolean(o.allowClassic),
          // Inspection runs no handler: a spore made before this process is opened, not refused as a replay.
          replayMemorySince: 0,
        });
        if (env.header.kind === Kind.BROADCAST) engine.join(info.to);
        try {
          verdict = verdictOf(await engine.open(bytes), Boolean(o.showContent));
        } catch (e) {
          if (!(e instanceof SporeError)) throw e;
          verdict = { opens: false, code: e.code, reason: e.message };
        }
      } finally {
        await close();
      }
    }
    if (o.json) {
      out(JSON.stringify({ ...info, sizes, opens: verdict }));
    } else {
      const ago = (t: number) => {
        const s = Math.round((t - Date.now()) / 1000);
        return s >= 0 ? `in ${s} s` : `${-s} s ago`;
      };
      out(`kind         ${KIND_NAMES[env.header.kind]}`);
      out(`suite        ${info.suite}`);
      out(`version      ${info.version}`);
      out(`id           ${info.id}`);
      out(`type         ${info.type}`);
      out(`from         ${info.from}`);
      out(`to           ${info.to}`);
      out(`created      ${new Date(info.createdAt).toISOString()} (${ago(info.createdAt)})`);
      out(`expires      ${new Date(info.expiresAt).toISOString()} (${ago(info.expiresAt)})`);
      out(`priority     ${info.priority}`);
      if (info.sessionId) out(`session      ${info.sessionId}`);
      if (info.epoch !== undefined) out(`epoch        ${info.epoch}, counter ${info.counter ?? "-"}`);
      out(
        `size         ${sizes.total} bytes: header ${sizes.header}, sections ${sizes.sections.join(" + ")}`,
      );
      if (verdict) {
        if (verdict.opens) {
          out(
            `opens        yes: ${verdict.result}${
              verdict.contentType ? `, content ${verdict.contentType}` : ""
            }`,
          );
          if (verdict.content !== undefined) out(`content      ${JSON.stringify(verdict.content)}`);
        } else {
          out(`opens        no: ${verdict.reason} [${verdict.code}]`);
        }
      }
    }
    if (verdict && !verdict.opens) Deno.exitCode = Exit.REFUSED;
  });
}
