/**
 * Structured log events. An event names what happened and carries ids,
 * types, sizes, counts and error codes: never a key, a plaintext or a whole
 * ciphertext.
 *
 * @module
 */

/** Severity of an event. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One structured event. */
export interface LogEvent {
  /** Severity. */
  level: LogLevel;
  /** What happened, e.g. `"sent"`, `"delivered"`, `"rejected"`. */
  event: string;
  /** The agent that reports it. */
  agent: string;
  /** Event time (Unix ms). */
  time: number;
  /** Event-specific fields: ids, types, sizes, counts, codes. */
  [field: string]: string | number | boolean | undefined;
}

/** Receives events. */
export interface Logger {
  /** Called for every event; must not throw. */
  log(event: LogEvent): void;
}

/**
 * Drops every event (the default).
 *
 * @example
 * ```ts
 * import { silentLogger } from "@spores/spores";
 * silentLogger.log({ level: "info", event: "x", agent: "a", time: 0 });
 * ```
 */
export const silentLogger: Logger = { log() {} };

/**
 * Writes each event as one JSON line to the console (`console.error` for
 * warnings and errors, `console.log` otherwise), at or above `minLevel`.
 *
 * @example
 * ```ts
 * import { consoleJsonLogger } from "@spores/spores";
 * const logger = consoleJsonLogger("warn");
 * logger.log({ level: "info", event: "ignored below warn", agent: "a", time: 0 });
 * ```
 */
export function consoleJsonLogger(minLevel: LogLevel = "info"): Logger {
  const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  return {
    log(event) {
      if (order[event.level] < order[minLevel]) return;
      const line = JSON.stringify(event);
      if (order[event.level] >= 2) console.error(line);
      else console.log(line);
    },
  };
}

/**
 * Keeps every event in memory, for tests and tooling.
 *
 * @example
 * ```ts
 * import { MemoryLogger } from "@spores/spores";
 * const logger = new MemoryLogger();
 * logger.log({ level: "info", event: "started", agent: "a", time: 0 });
 * console.assert(logger.events.length === 1);
 * ```
 */
export class MemoryLogger implements Logger {
  /** Events received, oldest first. */
  readonly events: LogEvent[] = [];
  /** Records an event. */
  log(event: LogEvent): void {
    this.events.push(event);
  }
}
