/**
 * Trust policies: which verified agent cards an agent accepts. A card is
 * always verified first (`verifyCard`); the policy then decides whether the
 * keys in it speak for the agent id it names.
 *
 * | policy          | accepts                                       | protects against                        |
 * | --------------- | --------------------------------------------- | --------------------------------------- |
 * | `PinnedTrust`   | only the fingerprint configured for the id    | everything, if pins are distributed well |
 * | `TofuTrust`     | the first fingerprint seen for an id, then only that one | a broker that swaps keys later (not on first contact) |
 * | `AuthorityTrust`| cards signed by a configured authority key    | anyone without the authority's key       |
 *
 * @module
 */
import { base64, equalBytes } from "../crypto/bytes.ts";
import { ConfigError, KeyChangedError, TrustError } from "../crypto/errors.ts";
import type { AgentCard } from "./card.ts";
import { checkId } from "./limits.ts";
import { VersionFloor } from "./version_floor.ts";

/**
 * Decides whether a verified card is trusted; throws a `TrustError` (or a
 * subclass) when it is not.
 *
 * @example
 * ```ts
 * import { createCard, Identity, TofuTrust, verifyCard } from "@spores/spores";
 * const trust = new TofuTrust();
 * await trust.check(await verifyCard(await createCard("alice", await Identity.generate())));
 * ```
 */
export interface TrustPolicy {
  /** Resolves if `card` is trusted at `now`; rejects with a `TrustError` otherwise. */
  check(card: AgentCard, now?: number): Promise<void>;
}

function checkExpiry(card: AgentCard, now: number): void {
  if (card.expiresAt !== undefined && now > card.expiresAt) {
    throw new TrustError(`agent card of ${card.id} expired`);
  }
}

/**
 * Trusts exactly the configured fingerprint for each agent id; any other id
 * or fingerprint is a `TrustError`.
 *
 * @example
 * ```ts
 * import { createCard, Identity, PinnedTrust, verifyCard } from "@spores/spores";
 * const alice = await Identity.generate();
 * const trust = new PinnedTrust({ alice: alice.fingerprint });
 * await trust.check(await verifyCard(await createCard("alice", alice)));
 * ```
 */
export class PinnedTrust implements TrustPolicy {
  readonly #pins: Map<string, string>;
  readonly #floor = new VersionFloor();

  /**
   * Trusts the given fingerprints.
   *
   * @param pins Agent id → fingerprint.
   */
  constructor(pins: Record<string, string> | Map<string, string>) {
    this.#pins = new Map(pins instanceof Map ? pins : Object.entries(pins));
    for (const id of this.#pins.keys()) checkId(id, "pinned agent id");
  }

  /** Resolves if `card`'s fingerprint is the one pinned for its id. */
  check(card: AgentCard, now: number = Date.now()): Promise<void> {
    const pinned = this.#pins.get(card.id);
    if (pinned === undefined) return Promise.reject(new TrustError(`no fingerprint pinned for ${card.id}`));
    if (pinned !== card.fingerprint) {
      return Promise.reject(new KeyChangedError(`fingerprint of ${card.id} does not match its pin`));
    }
    try {
      checkExpiry(card, now);
      this.#floor.check(card);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve();
  }
}

/** Where a `TofuTrust` remembers what it has seen (agent id → fingerprint). */
export interface TofuStore {
  /** The fingerprint recorded for `id`. */
  get(id: string): Promise<string | undefined> | string | undefined;
  /** Records `fingerprint` for `id` unless one is recorded; returns the recorded one. */
  setIfAbsent(id: string, fingerprint: string): Promise<string> | string;
}

/**
 * An in-memory `TofuStore`, bounded: it never forgets an agent (that would
 * let a new key pass as a first use), so when `limit` agents are recorded a
 * new one is refused with a `TrustError` instead.
 */
export class MemoryTofuStore implements TofuStore {
  readonly #seen = new Map<string, string>();
  readonly #limit: number;

  /**
   * An empty store.
   *
   * @param limit Most agents recorded. Default 100,000.
   */
  constructor(limit = 100_000) {
    this.#limit = limit;
  }

  /** The fingerprint recorded for `id`. */
  get(id: string): string | undefined {
    return this.#seen.get(id);
  }
  /** Records `fingerprint` for `id` unless one is recorded. */
  setIfAbsent(id: string, fingerprint: string): string {
    const seen = this.#seen.get(id);
    if (seen !== undefined) return seen;
    if (this.#seen.size >= this.#limit) {
      throw new TrustError(
        `TOFU store full (${this.#limit} agents): refusing a new agent rather than forgetting one`,
      );
    }
    this.#seen.set(id, fingerprint);
    return fingerprint;
  }
}

/**
 * Trust on first use: the first fingerprint seen for an agent id is
 * recorded; a later card with different identity keys is a loud
 * `KeyChangedError`. (KEM key rotation keeps the fingerprint, so it passes.)
 *
 * @example
 * ```ts
 * import { createCard, Identity, KeyChangedError, TofuTrust, verifyCard } from "@spores/spores";
 * const trust = new TofuTrust();
 * await trust.check(await verifyCard(await createCard("bob", await Identity.generate())));
 * const impostor = await verifyCard(await createCard("bob", await Identity.generate()));
 * await trust.check(impostor).catch((e) => console.assert(e instanceof KeyChangedError));
 * ```
 */
export class TofuTrust implements TrustPolicy {
  readonly #store: TofuStore;
  readonly #floor = new VersionFloor();

  /**
   * Trusts each agent's first fingerprint.
   *
   * @param store Where first-seen fingerprints are kept; default in memory.
   */
  constructor(store: TofuStore = new MemoryTofuStore()) {
    this.#store = store;
  }

  /** Resolves for a first-seen or unchanged fingerprint. */
  async check(card: AgentCard, now: number = Date.now()): Promise<void> {
    checkExpiry(card, now);
    this.#floor.check(card);
    const recorded = await this.#store.setIfAbsent(card.id, card.fingerprint);
    if (recorded !== card.fingerprint) {
      throw new KeyChangedError(
        `identity keys of ${card.id} changed (was ${recorded}, now ${card.fingerprint}): refusing under TOFU`,
      );
    }
  }
}

/**
 * Trusts cards signed by one of the configured authority keys (Ed25519
 * public keys of the deployment's root identities).
 *
 * @example
 * ```ts
 * import { AuthorityTrust, createCard, endorseCard, Identity, verifyCard } from "@spores/spores";
 * const root = await Identity.generate();
 * const trust = new AuthorityTrust([root.signingKey.publicKey]);
 * const card = await endorseCard(await createCard("alice", await Identity.generate()), root);
 * await trust.check(await verifyCard(card));
 * ```
 */
export class AuthorityTrust implements TrustPolicy {
  readonly #authorities: Uint8Array[];
  readonly #floor = new VersionFloor();

  /**
   * Trusts cards these authorities signed.
   *
   * @param authorities Ed25519 public keys (32 bytes each) of the authorities.
   */
  constructor(authorities: Uint8Array[]) {
    if (authorities.length === 0 || authorities.some((k) => k.length !== 32)) {
      throw new ConfigError("AuthorityTrust needs one or more 32-byte Ed25519 keys");
    }
    this.#authorities = authorities.map((k) => k.slice());
  }

  /** Resolves if an authority signed `card` (the signature was verified by `verifyCard`). */
  check(card: AgentCard, now: number = Date.now()): Promise<void> {
    try {
      checkExpiry(card, now);
      if (!card.issuer || !this.#authorities.some((a) => equalBytes(a, card.issuer!))) {
        throw new TrustError(
          `agent card of ${card.id} is not signed by a trusted authority${
            card.issuer ? ` (issuer ${base64.encode(card.issuer).slice(0, 12)}…)` : ""
          }`,
        );
      }
      this.#floor.check(card);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
}
