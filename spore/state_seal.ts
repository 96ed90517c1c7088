/**
 * Sealing of the state an agent persists. Session keys, chain keys and
 * every other secret a `SessionStore` holds outside this process are sealed
 * (XChaCha20-Poly1305) under a key only the agent can derive:
 *
 * ```text
 * s   = Ed25519.Sign(identity, "spores/v1 state key" ‖ agent id)      deterministic (RFC 8032)
 * k   = HKDF(ikm = s, salt = "", info = "spores/v1 state key" ‖ agent id, 32)
 * box = 0x01 ‖ nonce[24] ‖ XChaCha20-Poly1305(k, nonce, record, aad = "spores/v1 state" ‖ agent id ‖ 0x00 ‖ context)
 * ```
 *
 * The context names what the record is (`session:<id>`, `send:<id>:<epoch>:key`, ...), so a sealed record
 * moved to another place in the store does not open there. A store compromise reveals no key and lets no
 * one forge a spore; a tampered record is a `DecryptError`.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { concat, randomBytes, utf8 } from "../crypto/bytes.ts";
import { DecryptError } from "../crypto/errors.ts";
import type { Identity } from "../crypto/identity.ts";
import { hkdfSync } from "../crypto/kdf.ts";
import { checkId } from "./limits.ts";
import type { SessionState } from "./session.ts";

const KEY_LABEL = utf8("spores/v1 state key");
const AAD_LABEL = utf8("spores/v1 state");
const VERSION = 1;

/**
 * Seals and opens records of one agent's persisted state.
 *
 * @example
 * ```ts
 * import { Identity, StateSealer } from "@spores/spores";
 * const sealer = await StateSealer.fromIdentity(await Identity.generate(), "alice");
 * const box = sealer.seal(new Uint8Array([1, 2, 3]), "example");
 * console.assert(sealer.open(box, "example")[2] === 3);
 * ```
 */
export class StateSealer {
  /** The agent whose state this seals. */
  readonly agent: string;
  readonly #key: Uint8Array;
  readonly #aad: Uint8Array;

  private constructor(agent: string, key: Uint8Array) {
    this.agent = agent;
    this.#key = key;
    this.#aad = concat(AAD_LABEL, utf8(agent), new Uint8Array([0]));
  }

  /** The sealer of `agent`'s state, with a key derived from its identity's signing key. */
  static async fromIdentity(identity: Identity, agent: string): Promise<StateSealer> {
    checkId(agent, "agent id");
    const info = concat(KEY_LABEL, utf8(agent));
    const sig = await identity.sign(info);
    const key = hkdfSync(sig, new Uint8Array(0), info, 32);
    sig.fill(0);
    return new StateSealer(agent, key);
  }

  /** Seals `record` for the place `context` names. */
  seal(record: Uint8Array, context: string): Uint8Array {
    const nonce = randomBytes(24);
    const ct = xchacha20poly1305(this.#key, nonce, concat(this.#aad, utf8(context))).encrypt(record);
    return concat(new Uint8Array([VERSION]), nonce, ct);
  }

  /** Opens a record sealed for `context`; a `DecryptError` if it was altered, moved or is not this agent's. */
  open(box: Uint8Array, context: string): Uint8Array {
    if (box.length < 1 + 24 + 16 || box[0] !== VERSION) throw new DecryptError();
    try {
      return xchacha20poly1305(this.#key, box.subarray(1, 25), concat(this.#aad, utf8(context)))
        .decrypt(box.subarray(25));
    } catch {
      throw new DecryptError();
    }
  }

  /** Seals a whole session. */
  sealSession(state: SessionState): Uint8Array {
    return this.seal(encode(state), `session:${state.id}`);
  }

  /** Opens a sealed session `id`. */
  openSession(box: Uint8Array, id: string): SessionState {
    const state = decode(this.open(box, `session:${id}`)) as SessionState;
    if (state.id !== id) throw new DecryptError();
    return state;
  }
}
