/**
 * Timers that do not keep the process alive, on Deno and on Node.
 *
 * @module
 */

/**
 * Lets the process exit while `timer` is pending: `Deno.unrefTimer` on Deno
 * (where timers are numbers), the timer's own `unref()` on Node.
 */
export function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === "number") {
    (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno?.unrefTimer(timer);
  } else (timer as { unref?: () => void }).unref?.();
}
