// Runs the `spores` command as a subprocess, as a user would.
import assert from "node:assert/strict";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** What a finished run printed and returned. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The deno arguments that run the CLI with the permissions the README gives. */
export function cliArgs(args: string[]): string[] {
  return ["run", "--quiet", "--allow-read", "--allow-write", "--allow-env", "--allow-net", CLI, ...args];
}

/** Runs `spores args…` to completion, with `stdin` bytes (or none) and extra environment. */
export async function spores(
  args: string[],
  options: { stdin?: Uint8Array | string; env?: Record<string, string>; cwd?: string } = {},
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgs(args),
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  if (options.stdin !== undefined) {
    await writer.write(
      typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin,
    );
  }
  await writer.close();
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Asserts the run failed with `code` and one clear line on stderr (no stack trace) matching `pattern`. */
export function assertOneLineError(run: Run, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, `exit code ${run.code}, stderr: ${run.stderr}`);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line on stderr, got: ${run.stderr}`);
  assert.match(lines[0]!, /^spores: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(run.stderr, /\n\s+at |Stack backtrace|error: Uncaught/);
}

/** A running CLI process whose stdout and stderr are read line by line. */
export class Background {
  readonly child: Deno.ChildProcess;
  readonly stdoutLines: string[] = [];
  readonly stderrLines: string[] = [];
  readonly #reading: Promise<void>[];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: cliArgs(args),
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reading = [read(this.child.stdout, this.stdoutLines), read(this.child.stderr, this.stderrLines)];
  }

  /** Waits until `lines` holds a line matching `pattern`. */
  async waitFor(lines: string[], pattern: RegExp, ms = 30_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const hit = lines.find((l) => pattern.test(l));
      if (hit !== undefined) return hit;
      if (Date.now() > end) {
        throw new Error(
          `no line matching ${pattern}; stdout: ${this.stdoutLines.join("\n")}; stderr: ${
            this.stderrLines.join("\n")
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits for the exit (killing it after `ms`), with everything read. */
  async exit(ms = 30_000): Promise<number> {
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, ms);
    const status = await this.child.status;
    clearTimeout(timer);
    await Promise.all(this.#reading);
    return status.code;
  }
}

async function read(stream: ReadableStream<Uint8Array>, lines: string[]): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const parts = rest.split("\n");
    rest = parts.pop()!;
    lines.push(...parts);
  }
  if (rest) lines.push(rest);
}

/** A fast key file (scrypt log2 N = 10) made by the CLI itself; returns its fingerprint. */
export async function keygen(path: string, passphrase: string, extra: string[] = []): Promise<string> {
  const run = await spores(["keygen", "-o", path, "--scrypt-log-n", "10", "--json", ...extra], {
    env: { SPORES_PASSPHRASE: passphrase },
  });
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout).fingerprint;
}
