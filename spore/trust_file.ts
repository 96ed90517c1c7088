/**
 * A durable trust store: the fingerprints an agent has pinned (by hand, or
 * on first use), kept in a JSON file that survives restarts. The file is
 * signed by the agent's own identity (Ed25519, plus ML-DSA-65 for a hybrid
 * identity), so that nobody without the identity's private key can add,
 * change or remove a pin undetected.
 *
 * ```text
 * {
 *   "format": "spores-trust-file", "version": 1,
 *   "owner": "<fingerprint of the identity that signs the file>",
 *   "entries": [{ "id": "bob", "fingerprint": "…", "addedAt": 1763900000000, "source": "pin" }, …],
 *   "signature": "<base64 Ed25519>", "pqSignature": "<base64 ML-DSA-65, hybrid identities only>"
 * }
 * signed message = "spores/v1 trust file" ‖ 0x00 ‖ UTF-8(JSON [1, owner, [[id, fingerprint, addedAt, source], …]])
 * ```
 *
 * Entries are sorted by id in the signed message, so the signature covers the
 * whole set. What the signature cannot stop is a rollback: someone who can
 * write the file can put back an older file this identity signed. Keep the
 * file where only the agent's user can write it (it is written with mode 0600).
 *
 * Deno permissions: `--allow-read` and `--allow-write` for the file and its
 * directory (a lock file `<path>.lock` and a temporary file sit next to it).
 *
 * @module
 */
import { base64, concat, utf8 } from "../crypto/bytes.ts";
import { ConfigError, KeyChangedError, ProtocolError, SporeError, TrustError } from "../crypto/errors.ts";
import type { Identity } from "../crypto/identity.ts";
import type { AgentCard } from "./card.ts";
import { FileTooLargeError, readFileIfExists, withFileLock, writeFileAtomic } from "./file_io.ts";
import { checkId } from "./limits.ts";
import { FINGERPRINT_PATTERN, signSelf, verifySelf } from "./self_signature.ts";
import type { TofuStore, TrustPolicy } from "./trust.ts";
import { VersionFloor } from "./version_floor.ts";

/** How an entry got into the store. */
export type TrustSource = "pin" | "tofu";

/** One pinned fingerprint. */
export interface TrustEntry {
  /** The agent id. */
  id: string;
  /** The fingerprint its cards must carry. */
  fingerprint: string;
  /** When it was recorded (Unix ms). */
  addedAt: number;
  /** `"pin"`: pinned explicitly; `"tofu"`: recorded on first use. */
  source: TrustSource;
}

/** Options of {@linkcode TrustFile.open}. */
export interface TrustFileOptions {
  /**
   * What `check` does with an agent that has no entry: `"tofu"` (default)
   * records the fingerprint of its first card; `"pinned"` refuses it.
   */
  unknown?: "tofu" | "pinned";
}

const LABEL = concat(utf8("spores/v1 trust file"), new Uint8Array([0]));
const FORMAT = "spores-trust-file";
const VERSION = 1;
/** Largest trust file read (bounds what a damaged or hostile file can make this process hold). */
export const MAX_TRUST_FILE_BYTES = 8 << 20;
/** Most entries a trust file holds. */
export const MAX_TRUST_ENTRIES = 50_000;

function checkFingerprint(value: unknown, what: string): string {
  if (typeof value !== "string" || !FINGERPRINT_PATTERN.test(value)) {
    throw new ConfigError(`${what} is not a fingerprint (eight groups of four base32 letters)`);
  }
  return value;
}

function signedMessage(owner: string, entries: readonly TrustEntry[]): Uint8Array {
  const rows = entries.map((e) => [e.id, e.fingerprint, e.addedAt, e.source]);
  return concat(LABEL, utf8(JSON.stringify([VERSION, owner, rows])));
}

function sortEntries(entries: Iterable<TrustEntry>): TrustEntry[] {
  return [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Strictly parses the file's JSON into entries (not yet verified). */
function parseFile(
  path: string,
  text: string,
): { owner: string; entries: TrustEntry[]; signature: Uint8Array; pqSignature?: Uint8Array } {
  const bad = (why: string) => new ProtocolError(`trust file ${path} is not valid: ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad("not JSON");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw bad("not a JSON object");
  const o = doc as Record<string, unknown>;
  const known = new Set(["format", "version", "owner", "entries", "signature", "pqSignature"]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw bad(`unknown field ${JSON.stringify(k)}`);
  if (o.format !== FORMAT) throw bad(`format is not ${FORMAT}`);
  if (o.version !== VERSION) throw bad(`unsupported version ${JSON.stringify(o.version)}`);
  if (typeof o.owner !== "string" || !FINGERPRINT_PATTERN.test(o.owner)) {
    throw bad("owner is not a fingerprint");
  }
  if (!Array.isArray(o.entries)) throw bad("entries is not an array");
  if (o.entries.length > MAX_TRUST_ENTRIES) throw bad(`more than ${MAX_TRUST_ENTRIES} entries`);
  const seen = new Set<string>();
  const entries: TrustEntry[] = o.entries.map((raw: unknown, i: number) => {
    if (typeof raw !== "object" || raw === null) throw bad(`entry ${i} is not an object`);
    const e = raw as Record<string, unknown>;
    if (Object.keys(e).length !== 4) {
      throw bad(`entry ${i} must have exactly id, fingerprint, addedAt, source`);
    }
    let id: string;
    try {
      id = checkId(e.id, "agent id");
    } catch {
      throw bad(`entry ${i} has an invalid agent id`);
    }
    if (seen.has(id)) throw bad(`agent ${id} appears twice`);
    seen.add(id);
    if (typeof e.fingerprint !== "string" || !FINGERPRINT_PATTERN.test(e.fingerprint)) {
      throw bad(`entry ${i} has an invalid fingerprint`);
    }
    if (typeof e.addedAt !== "number" || !Number.isSafeInteger(e.addedAt) || e.addedAt < 0) {
      throw bad(`entry ${i} has an invalid addedAt`);
    }
    if (e.source !== "pin" && e.source !== "tofu") throw bad(`entry ${i} has an invalid source`);
    return { id, fingerprint: e.fingerprint, addedAt: e.addedAt, source: e.source };
  });
  const b64 = (v: unknown, what: string): Uint8Array => {
    if (typeof v !== "string" || v.length > 8192) throw bad(`${what} is not base64`);
    try {
      return base64.decode(v);
    } catch {
      throw bad(`${what} is not base64`);
    }
  };
  const signature = b64(o.signature, "signature");
  const pqSignature = o.pqSignature === undefined ? undefined : b64(o.pqSignature, "pqSignature");
  return { owner: o.owner, entries, signature, pqSignature };
}

/**
 * A file-backed, identity-signed store of pinned fingerprints; a
 * `TrustPolicy` (pins first, then trust on first use or refusal for unknown
 * agents) and a `TofuStore` (for a `TofuTrust` of your own).
 *
 * Every change is written at once (atomically, under a lock file, after
 * re-reading the file so that several processes of one agent do not undo each
 * other's pins). Opening or re-reading a file that the identity did not sign,
 * or that was edited, is a `TrustError`; a file that is not a trust file at
 * all is a `ProtocolError`.
 *
 * @example
 * ```ts ignore
 * import { Agent, Identity, TrustFile } from "@spores/spores";
 * const identity = await Identity.open(await Deno.readFile("alice.key"), passphrase);
 * const trust = await TrustFile.open("alice.trust.json", identity);
 * await trust.pin("bob", "k3zq-4m7a-…");
 * const alice = await Agent.start({ id: "alice", transport: "redis://127.0.0.1:6379", identity, trust });
 * ```
 */
export class TrustFile implements TrustPolicy, TofuStore {
  readonly #floor = new VersionFloor();
  /** Where the store lives. */
  readonly path: string;
  readonly #identity: Identity;
  readonly #unknown: "tofu" | "pinned";
  #entries = new Map<string, TrustEntry>();
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string, identity: Identity, options: TrustFileOptions) {
    this.path = path;
    this.#identity = identity;
    this.#unknown = options.unknown ?? "tofu";
    if (this.#unknown !== "tofu" && this.#unknown !== "pinned") {
      throw new ConfigError(`unknown must be "tofu" or "pinned"`);
    }
  }

  /**
   * Opens (and verifies) the trust file at `path`, signed by `identity`. A
   * missing file is an empty store; it is created on the first change.
   */
  static async open(path: string, identity: Identity, options: TrustFileOptions = {}): Promise<TrustFile> {
    const store = new TrustFile(path, identity, options);
    store.#entries = await store.#read();
    return store;
  }

  async #read(): Promise<Map<string, TrustEntry>> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readFileIfExists(this.path, MAX_TRUST_FILE_BYTES);
    } catch (e) {
      if (e instanceof FileTooLargeError) {
        throw new ProtocolError(`trust file ${this.path} is larger than ${MAX_TRUST_FILE_BYTES} bytes`);
      }
      throw new ConfigError(`cannot read trust file ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    if (bytes === undefined) return new Map();
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new ProtocolError(`trust file ${this.path} is not valid: not UTF-8`);
    }
    const parsed = parseFile(this.path, text);
    const id = this.#identity;
    if (parsed.owner !== id.fingerprint) {
      throw new TrustError(
        `trust file ${this.path} belongs to identity ${parsed.owner}, not to ${id.fingerprint}`,
      );
    }
    const entries = sortEntries(parsed.entries);
    const message = signedMessage(parsed.owner, entries);
    if (!(await verifySelf(id, message, parsed))) {
      throw new TrustError(
        `trust file ${this.path} fails its signature check: it was changed by someone without this identity's key, or damaged`,
      );
    }
    return new Map(entries.map((e) => [e.id, e]));
  }

  async #write(entries: Map<string, TrustEntry>): Promise<void> {
    const id = this.#identity;
    const sorted = sortEntries(entries.values());
    const message = signedMessage(id.fingerprint, sorted);
    const { signature, pqSignature } = await signSelf(id, message);
    const doc: Record<string, unknown> = {
      format: FORMAT,
      version: VERSION,
      owner: id.fingerprint,
      entries: sorted,
      signature: base64.encode(signature),
    };
    if (pqSignature) doc.pqSignature = base64.encode(pqSignature);
    try {
      await writeFileAtomic(this.path, JSON.stringify(doc, null, 2) + "\n", 0o600);
    } catch (e) {
      throw new ConfigError(`cannot write trust file ${this.path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Runs `change` on the freshly read entries under the lock; writes when it returns `true`. */
  #update<T>(change: (entries: Map<string, TrustEntry>) => { write: boolean; result: T }): Promise<T> {
    const run = (): Promise<T> =>
      withFileLock(this.path, async () => {
        const entries = await this.#read();
        const { write, result } = change(entries);
        if (write) {
          if (entries.size > MAX_TRUST_ENTRIES) {
            throw new ConfigError(`a trust file holds at most ${MAX_TRUST_ENTRIES} entries`);
          }
          await this.#write(entries);
        }
        this.#entries = entries;
        return result;
      }).catch((e) => {
        if (e instanceof SporeError) throw e;
        throw new ConfigError(`cannot lock trust file ${this.path}: ${(e as Error).message}`, { cause: e });
      });
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => {});
    return next;
  }

  /** Every entry, sorted by agent id. */
  list(): TrustEntry[] {
    return sortEntries(this.#entries.values()).map((e) => ({ ...e }));
  }

  /** The fingerprint recorded for `id`. */
  get(id: string): string | undefined {
    return this.#entries.get(id)?.fingerprint;
  }

  /** Records `fingerprint` for `id` on first use unless an entry exists; returns the recorded one. */
  async setIfAbsent(id: string, fingerprint: string): Promise<string> {
    checkId(id, "agent id");
    checkFingerprint(fingerprint, "fingerprint");
    const known = this.#entries.get(id);
    if (known) return known.fingerprint;
    return await this.#update((entries) => {
      const seen = entries.get(id);
      if (seen) return { write: false, result: seen.fingerprint };
      entries.set(id, { id, fingerprint, addedAt: Date.now(), source: "tofu" });
      return { write: true, result: fingerprint };
    });
  }

  /**
   * Pins `fingerprint` for `id`, replacing any entry; returns the previous
   * fingerprint, if there was one.
   */
  async pin(id: string, fingerprint: string): Promise<string | undefined> {
    checkId(id, "agent id");
    checkFingerprint(fingerprint, "fingerprint");
    return await this.#update((entries) => {
      const before = entries.get(id);
      entries.set(id, { id, fingerprint, addedAt: Date.now(), source: "pin" });
      return { write: true, result: before?.fingerprint };
    });
  }

  /** Removes the entry of `id`; `false` if there was none. */
  async unpin(id: string): Promise<boolean> {
    checkId(id, "agent id");
    return await this.#update((entries) => {
      const had = entries.delete(id);
      return { write: had, result: had };
    });
  }

  /**
   * Resolves if `card` carries the fingerprint recorded for its id (or, for
   * an unknown id under `"tofu"`, records it). `KeyChangedError` on a
   * mismatch; `TrustError` for an expired card or an unknown id under
   * `"pinned"`.
   */
  async check(card: AgentCard, now: number = Date.now()): Promise<void> {
    if (card.expiresAt !== undefined && now > card.expiresAt) {
      throw new TrustError(`agent card of ${card.id} expired`);
    }
    let recorded = this.#entries.get(card.id)?.fingerprint;
    if (recorded === undefined) {
      if (this.#unknown === "pinned") throw new TrustError(`no fingerprint pinned for ${card.id}`);
      recorded = await this.setIfAbsent(card.id, card.fingerprint);
    }
    if (recorded !== card.fingerprint) {
      throw new KeyChangedError(
        `identity keys of ${card.id} changed (pinned ${recorded}, now ${card.fingerprint}): refusing`,
      );
    }
    // Never back to an older card of the agent (one whose keys a newer card retired).
    this.#floor.check(card);
  }
}
