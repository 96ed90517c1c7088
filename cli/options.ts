/**
 * Options shared by several commands.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { openTransport, type Transport } from "../mod.ts";
import { CliError, Exit, usage } from "./errors.ts";
import type { PassphraseOptions } from "./io.ts";

/** Adds `--passphrase-file` and `--passphrase-env`. */
export function withPassphrase(cmd: Command): Command {
  return cmd
    .option("--passphrase-file <path>", "read the key file passphrase from the first line of this file")
    .option(
      "--passphrase-env <name>",
      "read the key file passphrase from this environment variable (default: SPORES_PASSPHRASE if set, else a prompt)",
    );
}

/** The passphrase options of a parsed command. */
export function passphraseOptions(o: PassphraseOptions): PassphraseOptions {
  return { passphraseFile: o.passphraseFile, passphraseEnv: o.passphraseEnv };
}

/** Adds `--json`. */
export function withJson(cmd: Command): Command {
  return cmd.addOption(new Option("--json", "print JSON instead of text"));
}

/** Opens a transport by URL, giving up after `timeoutMs` with a broker error (exit 5). */
export async function connect(
  url: string,
  options: Record<string, unknown> = {},
  timeoutMs = 15_000,
): Promise<Transport> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let late = false;
  // Every broker transport has connectTimeoutMs; the in-process one has no connection (and refuses the key).
  const opening = openTransport(
    url,
    /^memory:/i.test(url) ? options : { connectTimeoutMs: Math.min(timeoutMs, 10_000), ...options },
  );
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new CliError(`cannot reach ${redact(url)} within ${timeoutMs} ms`, Exit.BROKER));
    }, timeoutMs);
  });
  // A connection that arrives after the timeout is closed, not leaked.
  opening.then((t) => late ? t.close() : undefined, () => {});
  try {
    return await Promise.race([opening, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A URL with any password replaced by `***`, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

/** Adds `-O, --transport-option key=value` (repeatable). */
export function withTransportOptions(cmd: Command): Command {
  return cmd.option(
    "-O, --transport-option <key=value>",
    "a transport option, e.g. prefix=myapp (Redis) or exchange=myapp (RabbitMQ); repeatable",
    (value: string, all: string[] = []) => [...all, value],
  );
}

/** The transport options given with `-O`: numbers and booleans are converted. */
export function transportOptions(o: { transportOption?: string[] }): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const item of o.transportOption ?? []) {
    const at = item.indexOf("=");
    if (at < 1) throw usage(`--transport-option must be key=value (got ${JSON.stringify(item)})`);
    const key = item.slice(0, at);
    const text = item.slice(at + 1);
    options[key] = text === "true"
      ? true
      : text === "false"
      ? false
      : /^-?\d+(\.\d+)?$/.test(text)
      ? Number(text)
      : text;
  }
  return options;
}
