/**
 * The file operations of the file-backed stores (`FileDirectory`,
 * `TrustFile`), on Deno and on Node alike: bounded reads, atomic writes by
 * rename, and an exclusive lock beside a file. Deno's own file API where it
 * exists (Deno's `node:fs` costs more per call), `node:fs/promises` on Node,
 * loaded only when a store touches its file.
 *
 * @module
 */
import type * as NodeFs from "node:fs/promises";

/** Deno's namespace, when running on Deno. */
const deno = (globalThis as { Deno?: typeof Deno }).Deno;

let fsModule: Promise<typeof NodeFs> | undefined;
function fs(): Promise<typeof NodeFs> {
  return fsModule ??= import("node:fs/promises");
}

/** Whether `e` says that a file does not exist (on Deno and on Node). */
function notFound(e: unknown): boolean {
  return (e as { code?: unknown })?.code === "ENOENT" ||
    (deno !== undefined && e instanceof deno.errors.NotFound);
}

/** A file that is larger than the reader allows. */
export class FileTooLargeError extends Error {
  /** @param limit The most bytes allowed. */
  constructor(readonly limit: number) {
    super(`larger than ${limit} bytes`);
  }
}

/**
 * The bytes of the file at `path`, or `undefined` when it does not exist.
 * A file larger than `maxBytes` is refused (`FileTooLargeError`) before it is read.
 */
export async function readFileIfExists(
  path: string | URL,
  maxBytes: number = Number.MAX_SAFE_INTEGER,
): Promise<Uint8Array | undefined> {
  if (deno) return await denoRead(deno, path, maxBytes);
  const { open, readFile } = await fs();
  if (maxBytes === Number.MAX_SAFE_INTEGER) {
    try {
      const b = await readFile(path); // one call: what a read without a bound costs on Deno
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if (notFound(e)) return undefined;
      throw e;
    }
  }
  let file: NodeFs.FileHandle;
  try {
    file = await open(path, "r");
  } catch (e) {
    if (notFound(e)) return undefined;
    throw e;
  }
  try {
    const { size } = await file.stat();
    if (size > maxBytes) throw new FileTooLargeError(maxBytes);
    const bytes = new Uint8Array(size);
    let n = 0;
    while (n < size) {
      const { bytesRead } = await file.read(bytes, n, size - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return bytes.subarray(0, n);
  } finally {
    await file.close();
  }
}

async function denoRead(
  d: typeof Deno,
  path: string | URL,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  let file: Deno.FsFile;
  try {
    if (maxBytes === Number.MAX_SAFE_INTEGER) return await d.readFile(path);
    file = await d.open(path, { read: true });
  } catch (e) {
    if (notFound(e)) return undefined;
    throw e;
  }
  try {
    const { size } = await file.stat();
    if (size > maxBytes) throw new FileTooLargeError(maxBytes);
    const bytes = new Uint8Array(size);
    let n = 0;
    while (n < size) {
      const r = await file.read(bytes.subarray(n));
      if (r === null) break;
      n += r;
    }
    return bytes.subarray(0, n);
  } finally {
    file.close();
  }
}

/**
 * Writes `text` to `path` atomically: into a temporary file beside it
 * (created with `mode`), then renamed over it. The temporary file is
 * `<path>.<random>.tmp`, or `<path>.tmp` when `fixedTemp` is set (for a
 * permission granted on exactly those two paths); it is removed if anything fails.
 */
export async function writeFileAtomic(
  path: string | URL,
  text: string,
  mode: number = 0o600,
  fixedTemp: boolean = false,
): Promise<void> {
  const target = path instanceof URL ? (await import("node:url")).fileURLToPath(path) : path;
  const temp = fixedTemp ? `${target}.tmp` : `${target}.${crypto.randomUUID()}.tmp`;
  if (deno) {
    try {
      await deno.writeTextFile(temp, text, { mode, createNew: !fixedTemp });
      await deno.rename(temp, target);
    } catch (e) {
      await deno.remove(temp).catch(() => {});
      throw e;
    }
    return;
  }
  const { writeFile, rename, rm } = await fs();
  try {
    await writeFile(temp, text, { mode, flag: fixedTemp ? "w" : "wx" });
    await rename(temp, target);
  } catch (e) {
    await rm(temp, { force: true }).catch(() => {});
    throw e;
  }
}

/** How old a Node lock file must be to be taken for the remains of a process that died holding it. */
const STALE_LOCK_MS = 10_000;
/** How long a Node process waits for a lock before giving up. */
const LOCK_WAIT_MS = 30_000;

/**
 * Runs `task` while holding an exclusive lock beside `path`, between
 * processes. On Deno, the operating system's lock on `<path>.lock` (released
 * when the process dies). Node has no such lock: there it is the exclusive
 * creation of `<path>.node-lock`, removed when `task` ends; a lock file older
 * than 10 s is taken for the remains of a process that died holding it.
 * Processes of one runtime exclude each other; a Deno and a Node process do
 * not, so one file is not shared between the two at once.
 */
export async function withFileLock<T>(path: string, task: () => Promise<T>): Promise<T> {
  if (deno) {
    const lock = await deno.open(`${path}.lock`, { create: true, write: true, mode: 0o600 });
    try {
      await lock.lock(true);
      return await task();
    } finally {
      lock.close();
    }
  }
  const { open, stat, rm } = await fs();
  const lockPath = `${path}.node-lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  let wait = 5;
  for (;;) {
    try {
      const file = await open(lockPath, "wx", 0o600);
      await file.close();
      break;
    } catch (e) {
      if ((e as { code?: unknown })?.code !== "EEXIST") throw e;
    }
    const held = await stat(lockPath).catch(() => undefined);
    if (held && Date.now() - held.mtimeMs > STALE_LOCK_MS) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${lockPath} is held by another process`);
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 100);
  }
  try {
    return await task();
  } finally {
    await rm(lockPath, { force: true });
  }
}
