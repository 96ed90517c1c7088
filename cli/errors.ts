/**
 * Exit codes of the `spores` command and the one-line error report.
 *
 * | code | meaning                                                                  |
 * | ---- | ------------------------------------------------------------------------ |
 * | 0    | success (also `listen` stopped by Ctrl-C / SIGINT / SIGTERM)             |
 * | 1    | unexpected internal error                                                |
 * | 2    | usage: unknown command or option, invalid value, unknown URL scheme      |
 * | 3    | key file: missing, damaged, not a key file, or wrong passphrase          |
 * | 4    | refused: not a spore, a spore that does not open, a trust failure        |
 * | 5    | broker: unreachable, refused, timed out                                  |
 * | 6    | `doctor` found a problem                                                 |
 * | 130  | interrupted while waiting for a passphrase                               |
 *
 * @module
 */
import {
  ConfigError,
  KeyFileError,
  PassphraseError,
  ProtocolError,
  SecurityError,
  SporeError,
  TransportError,
} from "../mod.ts";

/** The exit codes. */
export const Exit = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  KEY_FILE: 3,
  REFUSED: 4,
  BROKER: 5,
  DOCTOR: 6,
  INTERRUPTED: 130,
} as const;

/** An error the command reports as one line and exits with `exitCode`. */
export class CliError extends Error {
  /** The process exit code. */
  readonly exitCode: number;
  /**
   * @param message One line, for humans.
   * @param exitCode One of {@linkcode Exit}.
   */
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** A usage error (exit 2). */
export function usage(message: string): CliError {
  return new CliError(message, Exit.USAGE);
}

/** The exit code for an error thrown by the library or by a command. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CliError) return e.exitCode;
  if (e instanceof PassphraseError || e instanceof KeyFileError) return Exit.KEY_FILE;
  if (e instanceof SecurityError || e instanceof ProtocolError) return Exit.REFUSED;
  if (e instanceof TransportError) return Exit.BROKER;
  if (e instanceof ConfigError) return Exit.USAGE;
  if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) return Exit.USAGE;
  if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.TimedOut) return Exit.BROKER;
  return Exit.INTERNAL;
}

/** One line describing `e`: its message (first line only) and, for library errors, its code. */
export function describeError(e: unknown): string {
  const message = (e instanceof Error ? e.message : String(e)).split("\n")[0]!.trim() || "failed";
  if (e instanceof SporeError) {
    const cause = e.cause instanceof Error && !(e.cause instanceof SporeError) && e instanceof TransportError
      ? `: ${e.cause.message.split("\n")[0]}`
      : "";
    return `${message}${cause} [${e.code}]`;
  }
  if (e instanceof CliError) return message;
  if (exitCodeOf(e) === Exit.INTERNAL) return `internal error: ${message}`;
  return message;
}
