// Agent processes for crash tests: a fixture run with Deno's own binary, its stdout collected line by line.

/** A running fixture process and the lines it printed so far. */
export interface FixtureProcess {
  /** The process (kill it with SIGKILL to crash it). */
  child: Deno.ChildProcess;
  /** Lines printed so far. */
  lines: string[];
  /** Settles when stdout ends. */
  reading: Promise<void>;
  /** The numbers of the lines `got <n>` printed so far. */
  got(): number[];
}

/** Runs `tests/fixtures/<fixture>` with network access to loopback, reading and env, and `args`. */
export function spawnFixture(fixture: string, args: string[]): FixtureProcess {
  return spawnDeno(
    new URL(`./fixtures/${fixture}`, import.meta.url),
    ["--allow-net=127.0.0.1", "--allow-read", "--allow-env"],
    args,
  );
}

/** Runs `script` with `deno run --no-prompt` and exactly the `permissions` flags given. */
export function spawnDeno(
  script: URL,
  permissions: string[],
  args: string[],
  options: { cwd?: URL } = {},
): FixtureProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, script.pathname, ...args],
    cwd: options.cwd,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const got = () => lines.filter((l) => l.startsWith("got ")).map((l) => Number(l.slice(4)));
  return { child, lines, reading, got };
}
