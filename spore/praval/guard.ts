/**
 * Replay defence for Praval peers. Praval signs only the ciphertext and its
 * nonce: the spore id and its times can be rewritten by anyone on the path.
 * The one signed value that is unique per spore is the 24-byte random nonce,
 * so this guard remembers the nonces of each peer's last spores (a bounded
 * memory per peer) and refuses a nonce seen before.
 *
 * @module
 */
import { hex } from "../../crypto/bytes.ts";
import { ConfigError } from "../../crypto/errors.ts";

/** What the guard knows of a nonce. */
export type PravalClaim = "new" | "busy" | "done";

/**
 * Bounded per-peer memory of the nonces of accepted Praval spores.
 *
 * @example
 * ```ts
 * import { PravalReplayGuard } from "@spores/spores/spore";
 * const guard = new PravalReplayGuard({ perPeer: 2 });
 * const n = new Uint8Array(24);
 * console.assert(guard.claim("py", n) === "new");
 * guard.complete("py", n);
 * console.assert(guard.claim("py", n) === "done");
 * ```
 */
export class PravalReplayGuard {
  /** Nonces remembered per peer. */
  readonly perPeer: number;
  readonly #seen = new Map<string, Map<string, "busy" | "done">>();

  /** @param options `perPeer`: nonces remembered per peer (default 100,000). */
  constructor(options: { perPeer?: number } = {}) {
    this.perPeer = options.perPeer ?? 100_000;
    if (!Number.isInteger(this.perPeer) || this.perPeer < 1) {
      throw new ConfigError("perPeer must be a positive integer");
    }
  }

  /** Marks `nonce` of `peer` as being handled, or says it was seen. */
  claim(peer: string, nonce: Uint8Array): PravalClaim {
    let seen = this.#seen.get(peer);
    if (!seen) this.#seen.set(peer, seen = new Map());
    const key = hex.encode(nonce);
    const state = seen.get(key);
    if (state) return state;
    seen.set(key, "busy");
    if (seen.size > this.perPeer) seen.delete(seen.keys().next().value!);
    return "new";
  }

  /** The handler of `nonce` succeeded: any later copy is a replay. */
  complete(peer: string, nonce: Uint8Array): void {
    const seen = this.#seen.get(peer);
    const key = hex.encode(nonce);
    if (seen?.has(key)) seen.set(key, "done");
  }

  /** The handler of `nonce` failed: a redelivery may run it again. */
  release(peer: string, nonce: Uint8Array): void {
    this.#seen.get(peer)?.delete(hex.encode(nonce));
  }

  /** Nonces remembered for `peer`. */
  size(peer: string): number {
    return this.#seen.get(peer)?.size ?? 0;
  }

  /** Forgets a peer (when it is no longer declared). */
  forget(peer: string): void {
    this.#seen.delete(peer);
  }
}
