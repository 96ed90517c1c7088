/**
 * Input and output of the `spores` command: reading files and stdin within
 * bounds, passphrases (terminal prompt without echo, a file, or an
 * environment variable), opening key files, and JSON for messages.
 *
 * @module
 */
import { base64, ConfigError, Identity, KeyFileError } from "../mod.ts";
import { CliError, Exit, usage } from "./errors.ts";

const encoder = new TextEncoder();

/** Writes `text` and a newline to stdout. */
export function out(text: string): void {
  writeAll(Deno.stdout, encoder.encode(text + "\n"));
}

/** Writes `text` and a newline to stderr. */
export function note(text: string): void {
  writeAll(Deno.stderr, encoder.encode(text + "\n"));
}

/** Writes every byte (a pipe may take fewer at once). */
export function writeAll(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let n = 0;
  while (n < bytes.length) n += w.writeSync(bytes.subarray(n));
}

/** Reads a file of at most `max` bytes; a clear one-line error when it cannot. */
export async function readFileBounded(path: string, max: number, what: string): Promise<Uint8Array> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CliError(`${what} ${path} does not exist`, Exit.USAGE);
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`, Exit.USAGE);
  }
  if (!info.isFile) throw new CliError(`${what} ${path} is not a file`, Exit.USAGE);
  if (info.size > max) throw new CliError(`${what} ${path} is larger than ${max} bytes`, Exit.USAGE);
  return await Deno.readFile(path);
}

/** Reads stdin up to `max` bytes (more is an error). */
export async function readStdin(max: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of Deno.stdin.readable) {
    size += chunk.length;
    if (size > max) throw new CliError(`stdin holds more than ${max} bytes`, Exit.REFUSED);
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
}

/** Where a passphrase comes from. */
export interface PassphraseOptions {
  /** A file whose first line is the passphrase. */
  passphraseFile?: string;
  /** The name of an environment variable holding it. */
  passphraseEnv?: string;
}

/** The environment variable read when no other source is given and no terminal is attached. */
export const DEFAULT_PASSPHRASE_ENV = "SPORES_PASSPHRASE";

/**
 * The passphrase: from `--passphrase-file`, `--passphrase-env`, else from
 * `SPORES_PASSPHRASE` if set, else from a prompt on the terminal (asked twice
 * when `confirm`).
 */
export async function passphrase(options: PassphraseOptions, confirm = false): Promise<string> {
  if (options.passphraseFile !== undefined && options.passphraseEnv !== undefined) {
    throw usage("give --passphrase-file or --passphrase-env, not both");
  }
  let value: string | undefined;
  if (options.passphraseFile !== undefined) {
    const bytes = await readFileBounded(options.passphraseFile, 64 * 1024, "passphrase file");
    value = new TextDecoder().decode(bytes).split(/\r?\n/)[0];
  } else if (options.passphraseEnv !== undefined) {
    value = Deno.env.get(options.passphraseEnv);
    if (value === undefined) throw usage(`environment variable ${options.passphraseEnv} is not set`);
  } else if (Deno.env.get(DEFAULT_PASSPHRASE_ENV) !== undefined) {
    value = Deno.env.get(DEFAULT_PASSPHRASE_ENV);
  } else if (Deno.stdin.isTerminal()) {
    value = await prompt("passphrase: ");
    if (confirm && (await prompt("passphrase again: ")) !== value) {
      throw usage("the two passphrases differ");
    }
  } else {
    throw usage(
      `no passphrase: use --passphrase-file, --passphrase-env or ${DEFAULT_PASSPHRASE_ENV}, or run in a terminal`,
    );
  }
  if (!value) throw usage("the passphrase is empty");
  return value;
}

/** Reads a line from the terminal with echo off. */
async function prompt(message: string): Promise<string> {
  // Echo goes off before the prompt shows, so that nothing typed (or pasted) early is echoed.
  Deno.stdin.setRaw(true);
  writeAll(Deno.stderr, encoder.encode(message));
  const bytes: number[] = [];
  const buffer = new Uint8Array(64);
  try {
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) break;
      let done = false;
      for (const b of buffer.subarray(0, n)) {
        if (b === 3) throw new CliError("interrupted", Exit.INTERRUPTED); // Ctrl-C
        if (b === 13 || b === 10 || b === 4) {
          done = true;
          break;
        }
        if (b === 127 || b === 8) bytes.pop();
        else bytes.push(b);
      }
      if (done) break;
    }
  } finally {
    Deno.stdin.setRaw(false);
    writeAll(Deno.stderr, encoder.encode("\n"));
  }
  const line = new Uint8Array(bytes);
  bytes.fill(0);
  return new TextDecoder().decode(line);
}

/** Largest key file read. */
const MAX_KEY_FILE = 16 * 1024;

/** Opens the key file at `path` with a passphrase from `options`. */
export async function openIdentity(path: string, options: PassphraseOptions): Promise<Identity> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileBounded(path, MAX_KEY_FILE, "key file");
  } catch (e) {
    if (e instanceof CliError && /larger than/.test(e.message)) {
      throw new KeyFileError(`${path} is too large to be a key file`);
    }
    if (e instanceof CliError) throw new CliError(e.message, Exit.KEY_FILE);
    throw e;
  }
  const secret = await passphrase(options);
  try {
    return await Identity.open(bytes, secret);
  } catch (e) {
    if (e instanceof KeyFileError) throw new KeyFileError(`${path}: ${e.message}`);
    throw e;
  }
}

/** Writes `bytes` to a new file with mode 0600; refuses to replace one unless `force`. */
export async function writeSecretFile(path: string, bytes: Uint8Array, force: boolean): Promise<void> {
  try {
    await Deno.writeFile(path, bytes, { mode: 0o600, createNew: !force });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw usage(`${path} exists; pass --force to replace it`);
    }
    throw new CliError(`cannot write ${path}: ${(e as Error).message}`, Exit.USAGE);
  }
}

/** A value made printable as JSON: bytes as `{ "base64": … }`, big integers as strings. */
export function toJsonValue(value: unknown, depth = 0): unknown {
  if (depth > 64) throw new ConfigError("content nested too deeply to print");
  if (value instanceof Uint8Array) return { base64: base64.encode(value) };
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map) {
    return Object.fromEntries([...value].map(([k, v]) => [String(k), toJsonValue(v, depth + 1)]));
  }
  if (Array.isArray(value)) return value.map((v) => toJsonValue(v, depth + 1));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonValue(v, depth + 1)]));
  }
  return value;
}

/** Parses a duration such as `500ms`, `30s`, `5m`, `1h`, `7d`, or a number of ms. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw usage(`${what} must be a duration such as 30s, 5m, 1h or 7d (got ${JSON.stringify(text)})`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "ms"]!;
  const value = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(value)) throw usage(`${what} is too large`);
  return value;
}

/** Parses a positive integer option. */
export function parseCount(text: string, what: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text)) throw usage(`${what} must be a whole number (got ${JSON.stringify(text)})`);
  const n = Number(text);
  if (n < min || n > max) throw usage(`${what} must be between ${min} and ${max}`);
  return n;
}
