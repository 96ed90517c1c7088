/**
 * Agent cards: an agent's public keys, self-signed, optionally signed by a
 * deployment authority, in a deterministic binary encoding.
 *
 * ```text
 * body  = msgpack [1, id, ed25519, mlDsa65 | nil, box, [[keyId, xwing, notBefore, notAfter | nil], ...],
 *                  issuedAt, expiresAt | nil]
 * card  = msgpack [body, sig, pqSig | nil, [authorityKey, authoritySig] | nil (, [oldKey, successorSig])?]
 * sig          = Ed25519(identity,  "spores/v1 card" ‖ body)
 * pqSig        = ML-DSA-65(identity, "spores/v1 card" ‖ body)        (when the card has an ML-DSA key)
 * authoritySig = Ed25519(authority, "spores/v1 card issuer" ‖ body)
 * successorSig = Ed25519(old identity, "spores/v1 card successor" ‖ body)   (a new identity for the same id)
 * ```
 *
 * `issuedAt` is the card's version: a newer card of an agent has a strictly
 * greater one, and everything that accepts cards refuses an older one
 * ({@linkcode checkSuccession}).
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { concat, equalBytes, utf8 } from "../crypto/bytes.ts";
import {
  ConfigError,
  KeyChangedError,
  ProtocolError,
  RollbackError,
  SignatureError,
  TooLargeError,
} from "../crypto/errors.ts";
import { fingerprint, type Identity, kemKeyId, MAX_KEM_KEYS } from "../crypto/identity.ts";
import { provider } from "../crypto/provider.ts";
import { checkId, checkReceivedId } from "./limits.ts";

/** A published X-Wing key. */
export interface CardKemKey {
  /** 8-byte key id. */
  keyId: Uint8Array;
  /** 1,216-byte X-Wing public key. */
  publicKey: Uint8Array;
  /** Senders may use it from (Unix ms). */
  notBefore: number;
  /** Receivers refuse spores sealed to it after (Unix ms); absent while current. */
  notAfter?: number;
}

/** A verified agent card. */
export interface AgentCard {
  /** The agent id. */
  id: string;
  /** Ed25519 identity key. */
  ed25519: Uint8Array;
  /** ML-DSA-65 identity key, for hybrid signatures. */
  mlDsa65?: Uint8Array;
  /** X25519 key of the classic NaCl box suite. */
  box: Uint8Array;
  /** X-Wing keys, oldest first. */
  kem: CardKemKey[];
  /** Issue time (Unix ms). */
  issuedAt: number;
  /** Expiry (Unix ms), if any. */
  expiresAt?: number;
  /** The authority key that signed the card, if one did (verified). */
  issuer?: Uint8Array;
  /** The previous identity's Ed25519 key, when that identity signed this card as its successor (verified). */
  predecessor?: Uint8Array;
  /** Fingerprint of the identity keys. */
  fingerprint: string;
  /** The encoded card, as published. */
  bytes: Uint8Array;
}

/** Largest encoded card accepted. */
export const MAX_CARD_BYTES = 64 * 1024;
const CARD_LABEL = utf8("spores/v1 card");
const ISSUER_LABEL = utf8("spores/v1 card issuer");
const SUCCESSOR_LABEL = utf8("spores/v1 card successor");
/** How long a card is valid when its maker says nothing: 30 days. */
export const DEFAULT_CARD_LIFETIME_MS = 30 * 86_400_000;

/** Options for {@linkcode createCard}. */
export interface CardOptions {
  /** Issue time; default now. */
  issuedAt?: number;
  /** Lifetime in ms from issue; default 30 days; `null` for a card that never expires. */
  lifetimeMs?: number | null;
  /** The X25519 public key of the classic suite; default the identity's. */
  box?: Uint8Array;
}

/**
 * Makes and self-signs the agent card of `identity` under `id`.
 *
 * @example
 * ```ts
 * import { createCard, Identity, verifyCard } from "@spores/spores";
 * const id = await Identity.generate();
 * const bytes = await createCard("alice", id);
 * const card = await verifyCard(bytes);
 * console.assert(card.id === "alice" && card.fingerprint === id.fingerprint);
 * ```
 */
export async function createCard(
  id: string,
  identity: Identity,
  options: CardOptions = {},
): Promise<Uint8Array> {
  checkId(id, "agent id");
  const issuedAt = options.issuedAt ?? Date.now();
  const body = encode([
    1,
    id,
    identity.signingKey.publicKey,
    identity.pqSigningKey?.publicKey ?? null,
    options.box ?? identity.boxKey.publicKey,
    identity.kemKeys.map((k) => [k.keyId, k.publicKey, k.notBefore, k.notAfter ?? null]),
    issuedAt,
    options.lifetimeMs === null ? null : issuedAt + (options.lifetimeMs ?? DEFAULT_CARD_LIFETIME_MS),
  ]);
  const signed = concat(CARD_LABEL, body);
  const [sig, pqSig] = await Promise.all([
    identity.sign(signed),
    identity.pqSigningKey ? identity.signPostQuantum(signed) : null,
  ]);
  return encode([body, sig, pqSig, null]);
}

/**
 * Adds an authority's signature to a card (the deployment root key signs the
 * body). The authority is an `Identity` whose Ed25519 key the deployment
 * distributes to every agent.
 *
 * @example
 * ```ts
 * import { createCard, endorseCard, Identity, verifyCard } from "@spores/spores";
 * const root = await Identity.generate();
 * const card = await endorseCard(await createCard("alice", await Identity.generate()), root);
 * console.assert((await verifyCard(card)).issuer !== undefined);
 * ```
 */
export async function endorseCard(card: Uint8Array, authority: Identity): Promise<Uint8Array> {
  const [body, sig, pqSig, , successor] = splitCard(card);
  const issuerSig = await authority.sign(concat(ISSUER_LABEL, body));
  const out: unknown[] = [body, sig, pqSig, [authority.signingKey.publicKey, issuerSig]];
  if (successor !== undefined) out.push(successor);
  return encode(out);
}

/**
 * Signs `card` (of a new identity) with the agent's previous identity, so
 * that directories and peers accept the new identity for the same id
 * (key continuity). Without it, a card with other identity keys for an id
 * that already has a live card is refused.
 *
 * @example
 * ```ts
 * import { createCard, Identity, succeedCard, verifyCard } from "@spores/spores";
 * const old = await Identity.generate();
 * const card = await succeedCard(await createCard("alice", await Identity.generate()), old);
 * console.assert((await verifyCard(card)).predecessor !== undefined);
 * ```
 */
export async function succeedCard(card: Uint8Array, previous: Identity): Promise<Uint8Array> {
  const [body, sig, pqSig, issuer] = splitCard(card);
  const successorSig = await previous.sign(concat(SUCCESSOR_LABEL, body));
  return encode([body, sig, pqSig, issuer, [previous.signingKey.publicKey, successorSig]]);
}

function bytesOf(v: unknown, length: number | undefined, what: string): Uint8Array {
  if (!(v instanceof Uint8Array) || (length !== undefined && v.length !== length)) {
    throw new ProtocolError(`card ${what} is malformed`);
  }
  return v;
}
function timeOf(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ProtocolError(`card ${what} is malformed`);
  }
  return v;
}

function splitCard(card: Uint8Array): [Uint8Array, Uint8Array, Uint8Array | null, unknown, unknown] {
  if (!(card instanceof Uint8Array)) throw new ProtocolError("a card must be bytes");
  if (card.length > MAX_CARD_BYTES) throw new TooLargeError(`card over ${MAX_CARD_BYTES} bytes`);
  let outer: unknown;
  try {
    outer = decode(card, { maxExtLength: 0 });
  } catch (cause) {
    throw new ProtocolError("card is not valid MessagePack", { cause });
  }
  if (!Array.isArray(outer) || (outer.length !== 4 && outer.length !== 5)) {
    throw new ProtocolError("card is malformed");
  }
  const [body, sig, pqSig, issuer, successor] = outer;
  return [
    bytesOf(body, undefined, "body"),
    bytesOf(sig, 64, "signature"),
    pqSig === null ? null : bytesOf(pqSig, 3309, "ML-DSA signature"),
    issuer,
    successor,
  ];
}

/**
 * Decodes a card strictly and verifies its self-signature(s) and, if present,
 * its authority signature. A `ProtocolError` for malformed bytes, a
 * `SignatureError` for a bad signature. Whether the card is *trusted* is the
 * trust policy's decision, not this function's.
 *
 * @example
 * ```ts
 * import { createCard, Identity, SporeError, verifyCard } from "@spores/spores";
 * const bytes = await createCard("bob", await Identity.generate());
 * const forged = bytes.slice();
 * forged[20]! ^= 1;
 * await verifyCard(forged).then(
 *   () => console.assert(false, "a forged card verified"),
 *   (e) => console.assert(e instanceof SporeError),
 * );
 * ```
 */
export async function verifyCard(card: Uint8Array): Promise<AgentCard> {
  const [body, sig, pqSig, issuer, successor] = splitCard(card);
  let fields: unknown;
  try {
    fields = decode(body, { maxExtLength: 0 });
  } catch (cause) {
    throw new ProtocolError("card body is not valid MessagePack", { cause });
  }
  if (!Array.isArray(fields) || fields.length !== 8 || fields[0] !== 1) {
    throw new ProtocolError("card body is malformed or of an unknown version");
  }
  const [, id, ed, mlDsa, box, kem, issuedAt, expiresAt] = fields;
  if (typeof id !== "string") throw new ProtocolError("card id is malformed");
  checkReceivedId(id, "card id");
  if (!Array.isArray(kem) || kem.length < 1 || kem.length > MAX_KEM_KEYS) {
    throw new ProtocolError("card KEM keys are malformed");
  }
  const result: AgentCard = {
    id,
    ed25519: bytesOf(ed, 32, "Ed25519 key"),
    box: bytesOf(box, 32, "box key"),
    kem: kem.map((k: unknown) => {
      if (!Array.isArray(k) || k.length !== 4) throw new ProtocolError("card KEM key is malformed");
      const entry: CardKemKey = {
        keyId: bytesOf(k[0], 8, "KEM key id"),
        publicKey: bytesOf(k[1], 1216, "KEM key"),
        notBefore: timeOf(k[2], "KEM key notBefore"),
      };
      if (k[3] !== null) entry.notAfter = timeOf(k[3], "KEM key notAfter");
      if (!equalBytes(entry.keyId, kemKeyId(entry.publicKey))) {
        throw new ProtocolError("card KEM key id mismatch");
      }
      return entry;
    }),
    issuedAt: timeOf(issuedAt, "issuedAt"),
    fingerprint: "",
    bytes: card,
  };
  if (mlDsa !== null) result.mlDsa65 = bytesOf(mlDsa, 1952, "ML-DSA-65 key");
  if (expiresAt !== null) result.expiresAt = timeOf(expiresAt, "expiresAt");
  if ((result.mlDsa65 === undefined) !== (pqSig === null)) {
    throw new ProtocolError("card ML-DSA-65 key and signature must come together");
  }
  result.fingerprint = fingerprint(result.ed25519, result.mlDsa65);

  const p = await provider();
  const signed = concat(CARD_LABEL, body);
  const checks = [p.ed25519.verify(result.ed25519, sig, signed)];
  if (result.mlDsa65 && pqSig) checks.push(p.mlDsa65.verify(result.mlDsa65, pqSig, signed));
  if (issuer !== null) {
    if (!Array.isArray(issuer) || issuer.length !== 2) throw new ProtocolError("card issuer is malformed");
    result.issuer = bytesOf(issuer[0], 32, "issuer key");
    checks.push(
      p.ed25519.verify(result.issuer, bytesOf(issuer[1], 64, "issuer signature"), concat(ISSUER_LABEL, body)),
    );
  }
  if (successor !== undefined) {
    if (!Array.isArray(successor) || successor.length !== 2) {
      throw new ProtocolError("card successor is malformed");
    }
    result.predecessor = bytesOf(successor[0], 32, "predecessor key");
    checks.push(
      p.ed25519.verify(
        result.predecessor,
        bytesOf(successor[1], 64, "successor signature"),
        concat(SUCCESSOR_LABEL, body),
      ),
    );
  }
  const verdicts = await Promise.all(checks);
  if (!verdicts.every(Boolean)) throw new SignatureError(`agent card of ${id} has an invalid signature`);
  return result;
}

/**
 * The KEM key a sender should seal to at `now`: the newest that has not
 * ended and whose start is not further ahead than the clock skew allows.
 * A `ConfigError` if there is none.
 */
export function currentKemKey(card: AgentCard, now: number = Date.now(), skewMs = 300_000): CardKemKey {
  for (let i = card.kem.length - 1; i >= 0; i--) {
    const k = card.kem[i]!;
    if (k.notBefore <= now + skewMs && (k.notAfter === undefined || now <= k.notAfter)) return k;
  }
  throw new ConfigError(`agent card of ${card.id} has no KEM key valid now`);
}

/**
 * Whether `next` may replace `known` as the card of the same agent:
 * `"same"` for the same card, `"newer"` for a valid successor. A
 * `RollbackError` for a card that is not newer (`issuedAt` is the version),
 * a `KeyChangedError` for other identity keys that the known identity did
 * not sign for (unless the known card has expired).
 *
 * @example
 * ```ts
 * import { checkSuccession, createCard, Identity, RollbackError, verifyCard } from "@spores/spores";
 * const id = await Identity.generate();
 * const old = await verifyCard(await createCard("alice", id, { issuedAt: 1000 }));
 * const now = await verifyCard(await createCard("alice", id, { issuedAt: 2000 }));
 * console.assert(checkSuccession(old, now) === "newer");
 * try {
 *   checkSuccession(now, old);
 * } catch (e) {
 *   console.assert(e instanceof RollbackError);
 * }
 * ```
 */
export function checkSuccession(
  known: AgentCard,
  next: AgentCard,
  now: number = Date.now(),
): "same" | "newer" {
  if (known.id !== next.id) throw new ConfigError("cards of two agents compared");
  if (equalBytes(known.bytes, next.bytes)) return "same";
  // The same body with more attestations (an authority's endorsement added) is the same version, re-signed.
  if (
    next.issuedAt === known.issuedAt && next.fingerprint === known.fingerprint &&
    (next.issuer !== undefined || known.issuer === undefined) &&
    (next.predecessor !== undefined || known.predecessor === undefined) &&
    next.kem.length === known.kem.length && next.kem.every((k, i) => equalBytes(k.keyId, known.kem[i]!.keyId))
  ) {
    return "newer";
  }
  if (next.issuedAt <= known.issuedAt) {
    throw new RollbackError(`card of ${next.id} is not newer than the one already accepted`);
  }
  if (next.fingerprint === known.fingerprint) return "newer";
  if (next.predecessor && equalBytes(next.predecessor, known.ed25519)) return "newer";
  if (known.expiresAt !== undefined && now > known.expiresAt) return "newer";
  throw new KeyChangedError(
    `card of ${next.id} has new identity keys its previous identity did not sign for`,
  );
}
