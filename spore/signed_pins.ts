/**
 * Trust-on-first-use pins kept in a store outside the agent (a broker's own
 * key-value store), each pin signed by the agent's identity, so that whoever
 * runs the store cannot change one undetected.
 *
 * ```text
 * record    = JSON { "f": fingerprint, "t": addedAt, "s": base64 Ed25519, "p"?: base64 ML-DSA-65 }
 * signed    = "spores/v1 pin" ‖ 0x00 ‖ UTF-8(JSON [owner fingerprint, agent id, fingerprint, addedAt])
 * ```
 *
 * The owner's fingerprint is part of the place a record is kept (a new
 * identity starts with no pins) and of what is signed (a record copied from
 * another owner, or to another agent id, does not verify). What signatures
 * cannot stop: someone who can write the store can delete a pin, and the
 * agent then trusts that id again on first use; this process never forgets a
 * pin it has seen. Against such an attacker, pin peers by hand in a
 * `TrustFile` on a disk only the agent writes.
 *
 * @module
 */
import { base64, concat, utf8 } from "../crypto/bytes.ts";
import { TrustError } from "../crypto/errors.ts";
import type { Identity } from "../crypto/identity.ts";
import { checkId } from "./limits.ts";
import { FINGERPRINT_PATTERN, signSelf, verifySelf } from "./self_signature.ts";
import type { TofuStore } from "./trust.ts";

/**
 * A key-value store a transport offers for pins: one map per owner.
 * `setIfAbsent` must be atomic (the first writer wins).
 */
export interface PinStore {
  /** The record kept for `id`. */
  get(id: string): Promise<Uint8Array | undefined>;
  /** Keeps `record` for `id` unless one is kept; returns the one kept. */
  setIfAbsent(id: string, record: Uint8Array): Promise<Uint8Array>;
}

const LABEL = concat(utf8("spores/v1 pin"), new Uint8Array([0]));
/** Largest pin record read. */
const MAX_RECORD_BYTES = 16_384;

/**
 * A `TofuStore` whose pins live in a `PinStore`, each signed by `identity`.
 * A record that does not verify is a `TrustError` (the store was written by
 * someone without the identity's key), never a first use.
 *
 * @example
 * ```ts
 * import { Identity, type PinStore, SignedPins, TofuTrust } from "@spores/spores";
 * const map = new Map<string, Uint8Array>();
 * const kv: PinStore = {
 *   get: (id) => Promise.resolve(map.get(id)),
 *   setIfAbsent: (id, r) => Promise.resolve(map.get(id) ?? (map.set(id, r), r)),
 * };
 * const pins = new SignedPins(kv, await Identity.generate());
 * const trust = new TofuTrust(pins);
 * console.assert(trust instanceof TofuTrust);
 * ```
 */
export class SignedPins implements TofuStore {
  readonly #kv: PinStore;
  readonly #identity: Identity;
  readonly #seen = new Map<string, string>();
  readonly #limit: number;

  /**
   * Pins of `identity` in `kv`.
   *
   * @param kv Where the records live.
   * @param identity The agent's identity, which signs and checks every pin.
   * @param limit Most pins this process remembers (it never forgets one it saw). Default 100,000.
   */
  constructor(kv: PinStore, identity: Identity, limit = 100_000) {
    this.#kv = kv;
    this.#identity = identity;
    this.#limit = limit;
  }

  #message(id: string, fingerprint: string, addedAt: number): Uint8Array {
    return concat(LABEL, utf8(JSON.stringify([this.#identity.fingerprint, id, fingerprint, addedAt])));
  }

  async #verify(id: string, record: Uint8Array): Promise<string> {
    const bad = (why: string) =>
      new TrustError(
        `the pin for ${id} in the trust store ${why}: it was written without this identity's key`,
      );
    if (record.length > MAX_RECORD_BYTES) throw bad("is too large");
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(record));
    } catch {
      throw bad("is not a pin record");
    }
    if (typeof o !== "object" || o === null || Array.isArray(o)) throw bad("is not a pin record");
    for (const k of Object.keys(o)) if (!["f", "t", "s", "p"].includes(k)) throw bad("has unknown fields");
    const { f, t, s, p } = o;
    if (typeof f !== "string" || !FINGERPRINT_PATTERN.test(f)) throw bad("has no valid fingerprint");
    if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0) throw bad("has no valid time");
    const decode = (v: unknown): Uint8Array => {
      if (typeof v !== "string" || v.length > 8192) throw bad("has no valid signature");
      try {
        return base64.decode(v);
      } catch {
        throw bad("has no valid signature");
      }
    };
    const signatures = p === undefined
      ? { signature: decode(s) }
      : { signature: decode(s), pqSignature: decode(p) };
    if (!(await verifySelf(this.#identity, this.#message(id, f, t), signatures))) {
      throw bad("fails its signature check");
    }
    return f;
  }

  #remember(id: string, fingerprint: string): string {
    if (!this.#seen.has(id) && this.#seen.size >= this.#limit) {
      throw new TrustError(`more than ${this.#limit} agents pinned in this process`);
    }
    this.#seen.set(id, fingerprint);
    return fingerprint;
  }

  /** The fingerprint pinned for `id` (verified). */
  async get(id: string): Promise<string | undefined> {
    const seen = this.#seen.get(id);
    if (seen) return seen;
    const record = await this.#kv.get(checkId(id, "agent id"));
    return record ? this.#remember(id, await this.#verify(id, record)) : undefined;
  }

  /** Pins `fingerprint` for `id` on first use, signed; returns the fingerprint pinned (verified). */
  async setIfAbsent(id: string, fingerprint: string): Promise<string> {
    const seen = this.#seen.get(id);
    if (seen) return seen;
    checkId(id, "agent id");
    const addedAt = Date.now();
    const message = this.#message(id, fingerprint, addedAt);
    const { signature, pqSignature } = await signSelf(this.#identity, message);
    const record: Record<string, unknown> = { f: fingerprint, t: addedAt, s: base64.encode(signature) };
    if (pqSignature) record.p = base64.encode(pqSignature);
    const kept = await this.#kv.setIfAbsent(id, utf8(JSON.stringify(record)));
    return this.#remember(id, await this.#verify(id, kept));
  }
}
