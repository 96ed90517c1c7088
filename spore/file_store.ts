/**
 * A `SessionStore` in a local file (SQLite, through the runtime's built-in
 * `node:sqlite`), so that an agent restarted with the same identity keeps
 * its sessions, its replay memory and its delivery receipts: spores sent to
 * it while it was down, or in flight when it died, still open and are
 * handled once.
 *
 * Every secret is sealed under the agent's state key (`StateSealer`) before it
 * is written, as in every store outside the agent's process; replay and
 * receipt records are plain (they hold no secret). One process uses a file at
 * a time (it holds an exclusive lock); several processes of one agent share
 * a `RedisSessionStore` instead.
 *
 * What is written when:
 * - a session when it is created or changes (confirmation, a new receive
 *   epoch), and its send position in blocks: the file records a counter
 *   `reserve` ahead of the last one used, so a restart resumes above every
 *   nonce used before it (a (key, nonce) pair is never used twice, even after
 *   a crash) at the cost of one write per `reserve` messages;
 * - each accepted (session, epoch, counter) and one-shot spore id, before the
 *   spore is handled: a replay after a restart is still a replay;
 * - each handled message's receipt (claims in progress are not kept: after a
 *   restart, a message whose handler had not finished is handled again).
 *
 * Writes reach the operating system before the call returns (a killed process
 * loses nothing); `durability: "full"` also waits for the disk (a power loss
 * loses nothing), at a cost per message.
 *
 * @module
 */
import { hex } from "../crypto/bytes.ts";
import { ConfigError, SessionError } from "../crypto/errors.ts";
import type { ReplayVerdict } from "./replay.ts";
import {
  MemorySessionStore,
  type ReceiptState,
  type SessionPolicy,
  type SessionState,
  type SessionStore,
} from "./session.ts";
import type { StateSealer } from "./state_seal.ts";

/** Options of {@linkcode FileSessionStore.open}. */
export interface FileSessionStoreOptions {
  /**
   * `"process"` (default): a write is in the operating system when a call
   * returns, so a killed process loses nothing. `"full"`: it is on the disk,
   * so a power loss loses nothing either (one disk flush per write).
   */
  durability?: "process" | "full";
  /** Counters reserved per write of a send position. Default 1,024. */
  reserve?: number;
  /** Replay window per (session, epoch), as in the session policy. Default 4,096. */
  replayWindow?: number;
  /** Most one-shot replay entries held in memory (as `MemorySessionStore`). Default 1,000,000. */
  seenLimit?: number;
  /** Most handled-message receipts held. Default 50,000. */
  receiptLimit?: number;
}

// The slice of node:sqlite this store uses (Deno and Node 22.13+ both provide it).
interface Statement {
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Record<string, unknown>[];
}
interface Database {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, box BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS current (peer TEXT PRIMARY KEY, id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS windows (k TEXT NOT NULL, c INTEGER NOT NULL, PRIMARY KEY (k, c)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS once (n INTEGER PRIMARY KEY, k TEXT NOT NULL, until INTEGER NOT NULL,
  sender TEXT, created INTEGER);
CREATE TABLE IF NOT EXISTS receipts (k TEXT PRIMARY KEY, until INTEGER NOT NULL);
`;
const FORMAT = "spores-state/1";
/** Writes between two clean-ups of expired records. */
const PRUNE_EVERY = 8192;

/**
 * Session, replay and receipt state of one agent in a local file.
 *
 * @example
 * ```ts
 * import { Agent, FileSessionStore, Identity } from "@spores/spores";
 * const path = await Deno.makeTempFile({ suffix: ".db" });
 * const identity = await Identity.generate({ extractable: true });
 * const store = await FileSessionStore.open(path);
 * const agent = await Agent.start({ id: "keeper", transport: "memory://file-store-doc", identity, store });
 * await agent.close();
 * store.close();
 * await Deno.remove(path);
 * ```
 */
export class FileSessionStore implements SessionStore {
  /** Its replay memory survives a restart. */
  readonly volatile = false;
  /** The file. */
  readonly path: string;
  readonly #db: Database;
  readonly #memory: MemorySessionStore;
  readonly #reserve: number;
  readonly #window: number;
  /** Highest send counter the file allows each session (per its epoch): allocation past it writes first. */
  readonly #ceiling = new Map<string, { epoch: number; counter: number }>();
  readonly #q: Record<string, Statement>;
  #sealer: StateSealer | undefined;
  #writes = 0;
  #closed = false;

  private constructor(path: string, db: Database, options: FileSessionStoreOptions) {
    this.path = path;
    this.#db = db;
    this.#reserve = options.reserve ?? 1024;
    this.#window = options.replayWindow ?? 4096;
    if (!Number.isInteger(this.#reserve) || this.#reserve < 1) {
      throw new ConfigError("reserve must be a positive integer");
    }
    this.#memory = new MemorySessionStore({
      replayWindow: this.#window,
      seenLimit: options.seenLimit,
      receiptLimit: options.receiptLimit,
    });
    const q = (sql: string) => db.prepare(sql);
    this.#q = {
      meta: q("SELECT value FROM meta WHERE name = ?"),
      setMeta: q("INSERT INTO meta (name, value) VALUES (?, ?)"),
      putSession: q("INSERT OR REPLACE INTO sessions (id, box) VALUES (?, ?)"),
      deleteSession: q("DELETE FROM sessions WHERE id = ?"),
      deleteWindows: q("DELETE FROM windows WHERE k >= ? AND k < ?"),
      setCurrent: q("INSERT OR REPLACE INTO current (peer, id) VALUES (?, ?)"),
      window: q("INSERT OR IGNORE INTO windows (k, c) VALUES (?, ?)"),
      once: q("INSERT INTO once (k, until, sender, created) VALUES (?, ?, ?, ?)"),
      receipt: q("INSERT OR REPLACE INTO receipts (k, until) VALUES (?, ?)"),
      pruneOnce: q("DELETE FROM once WHERE until < ?"),
      pruneReceipts: q("DELETE FROM receipts WHERE until < ?"),
      pruneWindows: q(
        "DELETE FROM windows WHERE c <= (SELECT MAX(w.c) FROM windows w WHERE w.k = windows.k) - ?",
      ),
    };
  }

  /**
   * Opens (or creates) the state file at `path` and locks it for this
   * process. A `ConfigError` if another process holds it or it is not a
   * state file.
   */
  static async open(path: string, options: FileSessionStoreOptions = {}): Promise<FileSessionStore> {
    let sqlite: { DatabaseSync: new (path: string, options?: Record<string, unknown>) => Database };
    try {
      sqlite = await import("node:sqlite") as unknown as typeof sqlite;
    } catch (cause) {
      throw new ConfigError("FileSessionStore needs node:sqlite (Deno 2.2+, Node 22.13+)", { cause });
    }
    let db: Database;
    try {
      db = new sqlite.DatabaseSync(path);
    } catch (cause) {
      throw new ConfigError(`cannot open the state file ${path}: ${(cause as Error).message}`, { cause });
    }
    try {
      db.exec("PRAGMA busy_timeout = 0");
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(`PRAGMA synchronous = ${options.durability === "full" ? "FULL" : "NORMAL"}`);
      db.exec("BEGIN EXCLUSIVE");
      db.exec(SCHEMA);
      db.exec("COMMIT");
    } catch (cause) {
      db.close();
      const busy = /locked|busy/i.test(String((cause as Error).message));
      throw new ConfigError(
        busy
          ? `the state file ${path} is in use by another process (one process per file; share state between processes with RedisSessionStore)`
          : `${path} is not a Spores state file: ${(cause as Error).message}`,
        { cause },
      );
    }
    return new FileSessionStore(path, db, options);
  }

  /** Receives the agent's state sealer and loads what the file holds (the engine calls it once, first). */
  attach(sealer: StateSealer): void {
    if (this.#sealer) {
      if (this.#sealer.agent !== sealer.agent) {
        throw new ConfigError(`the state file ${this.path} already serves agent ${this.#sealer.agent}`);
      }
      this.#sealer = sealer;
      return;
    }
    const owner = this.#q.meta!.get("agent")?.value as string | undefined;
    if (owner === undefined) {
      this.#q.setMeta!.run("format", FORMAT);
      this.#q.setMeta!.run("agent", sealer.agent);
      // A check record: opening it proves the file was written under this identity's state key.
      this.#q.setMeta!.run("check", hex.encode(sealer.seal(new Uint8Array(1), "file-store")));
    } else if (owner !== sealer.agent) {
      throw new ConfigError(`the state file ${this.path} belongs to agent ${owner}, not ${sealer.agent}`);
    } else {
      try {
        sealer.open(hex.decode(String(this.#q.meta!.get("check")?.value)), "file-store");
      } catch (cause) {
        throw new ConfigError(
          `the state file ${this.path} was written under another identity of ${owner} (start the agent with its own identity, or remove the file to begin anew)`,
          { cause },
        );
      }
    }
    this.#sealer = sealer;
    this.#load(sealer);
  }

  #load(sealer: StateSealer): void {
    const now = Date.now();
    const m = this.#memory;
    for (const row of this.#db.prepare("SELECT id, box FROM sessions").all()) {
      const id = row.id as string;
      let state: SessionState;
      try {
        state = sealer.openSession(row.box as Uint8Array, id);
      } catch (cause) {
        throw new SessionError(`the state file ${this.path}: session ${id} does not open (altered)`, {
          cause,
        });
      }
      this.#ceiling.set(id, { epoch: state.send.epoch, counter: state.send.counter });
      void m.put(state);
    }
    for (const row of this.#db.prepare("SELECT peer, id FROM current").all()) {
      void m.setCurrent(row.peer as string, row.id as string);
    }
    for (const row of this.#db.prepare("SELECT k, c FROM windows ORDER BY k, c").all()) {
      const k = row.k as string;
      const slash = k.lastIndexOf("/");
      void m.acceptCounter(k.slice(0, slash), Number(k.slice(slash + 1)), Number(row.c));
    }
    for (const row of this.#db.prepare("SELECT k, until, sender, created FROM once ORDER BY n").all()) {
      const until = Number(row.until);
      if (until < now) continue;
      const origin = row.sender === null
        ? undefined
        : { sender: row.sender as string, createdAt: Number(row.created) };
      void m.acceptOnce(row.k as string, until, origin);
    }
    for (const row of this.#db.prepare("SELECT k, until FROM receipts ORDER BY until").all()) {
      const until = Number(row.until);
      if (until < now) continue;
      void m.completeReceipt(row.k as string, until);
    }
  }

  #ready(): StateSealer {
    if (!this.#sealer) {
      throw new ConfigError("FileSessionStore has no state key: use it through an Agent or SporeEngine");
    }
    if (this.#closed) throw new ConfigError(`the state file ${this.path} is closed`);
    return this.#sealer;
  }

  #wrote(): void {
    if (++this.#writes % PRUNE_EVERY !== 0) return;
    const now = Date.now();
    this.#q.pruneOnce!.run(now);
    this.#q.pruneReceipts!.run(now);
    this.#q.pruneWindows!.run(this.#window);
  }

  // The sealed session, with its send counter raised to the ceiling the file allows.
  #write(state: SessionState, ceiling: number): void {
    const record = { ...state, send: { ...state.send, counter: ceiling } };
    this.#q.putSession!.run(state.id, this.#ready().sealSession(record));
    this.#ceiling.set(state.id, { epoch: state.send.epoch, counter: ceiling });
  }

  /** Delivery receipts held in memory. */
  get receipts(): number {
    return this.#memory.receipts;
  }

  /** The session `id`. */
  get(id: string): Promise<SessionState | undefined> {
    return this.#memory.get(id);
  }

  /** Stores a session (sealed). */
  async put(state: SessionState): Promise<void> {
    const known = this.#ceiling.get(state.id);
    const ceiling = known && known.epoch === state.send.epoch
      ? Math.max(known.counter, state.send.counter)
      : state.send.counter + this.#reserve;
    this.#write(state, ceiling);
    await this.#memory.put(state);
  }

  /** Removes a session and its replay windows. */
  async delete(id: string): Promise<void> {
    this.#ready();
    this.#q.deleteSession!.run(id);
    this.#q.deleteWindows!.run(`${id}/`, `${id}0`); // "0" follows "/": every key of this session
    this.#ceiling.delete(id);
    await this.#memory.delete(id);
  }

  /** The session used to send to `peer`. */
  current(peer: string): Promise<SessionState | undefined> {
    return this.#memory.current(peer);
  }

  /** Makes `id` the session used to send to `peer`. */
  async setCurrent(peer: string, id: string): Promise<void> {
    this.#ready();
    this.#q.setCurrent!.run(peer, id);
    await this.#memory.setCurrent(peer, id);
  }

  /** Allocates the next send position; the file always allows more than was used. */
  async allocateSend(
    state: SessionState,
    policy: SessionPolicy,
    now: number,
  ): Promise<{ epoch: number; counter: number; key: Uint8Array; rotated: boolean }> {
    this.#ready();
    const next = await this.#memory.allocateSend(state, policy, now);
    const ceiling = this.#ceiling.get(state.id);
    if (next.rotated || !ceiling || ceiling.epoch !== next.epoch || next.counter >= ceiling.counter) {
      // Written before the key is used: after a crash, sending resumes above this ceiling.
      this.#write(state, next.counter + this.#reserve);
    }
    return next;
  }

  /** Records a received counter, in the file before it is handled. */
  async acceptCounter(id: string, epoch: number, counter: number): Promise<ReplayVerdict> {
    this.#ready();
    const verdict = await this.#memory.acceptCounter(id, epoch, counter);
    if (verdict === "fresh") {
      this.#q.window!.run(`${id}/${epoch}`, counter);
      this.#wrote();
    }
    return verdict;
  }

  /** Records a one-shot key, in the file before it is handled. */
  async acceptOnce(
    key: string,
    until: number,
    origin?: { sender: string; createdAt: number },
  ): Promise<ReplayVerdict> {
    this.#ready();
    const verdict = await this.#memory.acceptOnce(key, until, origin);
    if (verdict === "fresh") {
      this.#q.once!.run(key, Math.ceil(until), origin?.sender ?? null, origin?.createdAt ?? null);
      this.#wrote();
    }
    return verdict;
  }

  /** Claims a message's handling (claims stay in memory: a restart hands an unfinished message out again). */
  claimReceipt(key: string, leaseMs: number): Promise<ReceiptState> {
    return this.#memory.claimReceipt(key, leaseMs);
  }

  /** Marks a message handled, in the file. */
  async completeReceipt(key: string, until: number): Promise<void> {
    this.#ready();
    this.#q.receipt!.run(key, Math.ceil(until));
    this.#wrote();
    await this.#memory.completeReceipt(key, until);
  }

  /** Releases a claim. */
  releaseReceipt(key: string): Promise<void> {
    return this.#memory.releaseReceipt(key);
  }

  /** Closes the file and releases its lock. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  /** `using store = await FileSessionStore.open(path)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }
}
