/**
 * The rollback check every trust policy shares (internal: not exported from
 * the package).
 *
 * @module
 */
import { RollbackError } from "../crypto/errors.ts";
import type { AgentCard } from "./card.ts";

/**
 * The newest card version (`issuedAt`) accepted per agent, bounded; an older
 * card is a `RollbackError`. Every trust policy keeps one, so a peer never
 * goes back to a card whose keys a newer card retired.
 */
export class VersionFloor {
  readonly #floor = new Map<string, number>();
  /** Refuses `card` if an agent's newer card was accepted; records its version otherwise. */
  check(card: AgentCard): void {
    const floor = this.#floor.get(card.id);
    if (floor !== undefined && card.issuedAt < floor) {
      throw new RollbackError(`card of ${card.id} is older than one already trusted`);
    }
    if (floor === undefined || card.issuedAt > floor) {
      this.#floor.delete(card.id);
      this.#floor.set(card.id, card.issuedAt);
      if (this.#floor.size > 100_000) this.#floor.delete(this.#floor.keys().next().value!);
    }
  }
}
