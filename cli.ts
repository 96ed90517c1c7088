/**
 * The `spores` command: keys, cards, inspecting spores, sending and
 * listening on any transport URL, the trust store, and a broker doctor.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-env --allow-net jsr:@spores/spores/cli --help
 * deno task spores keygen -o alice.key
 * ```
 *
 * Exit codes: 0 success, 1 internal error, 2 usage, 3 key file or
 * passphrase, 4 refused (not a spore, does not open, trust), 5 broker
 * unreachable, 6 `doctor` found a problem, 130 interrupted at a prompt.
 *
 * @example
 * ```ts ignore
 * import { main } from "@spores/spores/cli";
 * Deno.exitCode = await main(["fingerprint", "--card", "bob.card"]);
 * ```
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { cardCommand } from "./cli/card.ts";
import { doctorCommand } from "./cli/doctor.ts";
import { describeError, Exit, exitCodeOf } from "./cli/errors.ts";
import { inspectCommand } from "./cli/inspect.ts";
import { note } from "./cli/io.ts";
import { fingerprintCommand, keygenCommand, rotateCommand } from "./cli/keys.ts";
import { listenCommand } from "./cli/listen.ts";
import { sendCommand } from "./cli/send.ts";
import { trustCommand } from "./cli/trust.ts";

const EXIT_CODES = `
Exit codes:
  0    success (listen: also stopped by Ctrl-C)
  1    internal error
  2    usage: unknown command or option, invalid value, unknown URL scheme
  3    key file missing, damaged or not a key file, or wrong passphrase
  4    refused: not a spore, a spore that does not open, a trust failure
  5    broker unreachable, refused or timed out
  6    doctor found a problem
  130  interrupted at a passphrase prompt`;

/**
 * The command tree, with every command answering `--help`.
 *
 * @example
 * ```ts
 * import { program } from "@spores/spores/cli";
 * console.assert(program().commands.some((c) => c.name() === "inspect"));
 * ```
 */
export function program(): Command {
  const root = new Command("spores")
    .description("end-to-end encrypted, signed, post-quantum messaging for agents, from the shell")
    .version("0.1.0")
    .addHelpText("after", EXIT_CODES)
    .showSuggestionAfterError(true);
  for (
    const cmd of [
      keygenCommand(),
      fingerprintCommand(),
      cardCommand(),
      rotateCommand(),
      inspectCommand(),
      sendCommand(),
      listenCommand(),
      trustCommand(),
      doctorCommand(),
    ]
  ) root.addCommand(cmd);
  const quiet = (c: Command): void => {
    c.exitOverride().configureOutput({
      writeErr: (s) => note(s.trimEnd()),
      outputError: (s, write) => write(`spores: ${s.replace(/^error: /, "").trim()}\n`),
    });
    c.commands.forEach(quiet);
  };
  quiet(root);
  return root;
}

/**
 * Runs the command line `args`; resolves with the exit code (errors are
 * reported on stderr as one line).
 *
 * @example
 * ```ts ignore
 * import { main } from "@spores/spores/cli";
 * const code = await main(["fingerprint", "--card", "alice.card"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  Deno.exitCode = 0;
  try {
    await program().parseAsync(args, { from: "user" });
    return Deno.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander already printed its one line (or the help).
      return e.exitCode === 0 ? Exit.OK : Exit.USAGE;
    }
    note(`spores: ${describeError(e)}`);
    return exitCodeOf(e);
  }
}

if (import.meta.main) {
  // `deno task spores …` runs in the project's directory; paths on the command line are the caller's.
  try {
    const callerDir = Deno.env.get("INIT_CWD");
    if (callerDir) Deno.chdir(callerDir);
  } catch {
    // no permission to read it: stay where we are
  }
  const code = await main(Deno.args);
  Deno.exit(code);
}
