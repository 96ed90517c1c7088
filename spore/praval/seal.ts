/**
 * Sealing and opening Praval spores: the knowledge in a NaCl `Box` from the
 * sender's box key to the recipient's, and an Ed25519 signature over exactly
 * what Praval signs (`encrypted_knowledge ‖ nonce`, followed by the canonical
 * trace-context bytes when the spore carries a `trace_context`).
 *
 * Opening checks, in this order: format, recipient, freshness (expiry and
 * clock skew on the stated times), the sender's pinned keys, the signature,
 * the box, the knowledge. Each failure is its own typed error.
 *
 * @module
 */
import { concat, copyBytes, equalBytes, randomBytes } from "../../crypto/bytes.ts";
import {
  ClockSkewError,
  ExpiredError,
  KeyChangedError,
  ProtocolError,
  RecipientError,
  SignatureError,
  UnknownSenderError,
} from "../../crypto/errors.ts";
import { ConfigError } from "../../crypto/errors.ts";
import nacl from "tweetnacl";
import { DecryptError } from "../../crypto/errors.ts";
import { BOX_NONCE_LENGTH, BOX_OVERHEAD } from "../../crypto/nacl.ts";
import { provider } from "../../crypto/provider.ts";
import { decodePravalSpore, encodePravalSpore, PRAVAL_SPORE_TYPES, type PravalSpore } from "./codec.ts";
import { canonicalTraceContext, decodeKnowledge, encodeKnowledge, type PravalJson } from "./json.ts";
import type { PravalKeyPair, PravalPublicKeys } from "./keys.ts";

/** What to seal for one Praval agent. */
export interface PravalSealInput {
  /** One of Praval's spore types. */
  sporeType: string;
  /** The knowledge: a plain JSON object. */
  knowledge: Record<string, unknown>;
  /** Praval's 1..10. Default 5. */
  priority?: number;
  /** Creation time, Unix ms. Default now. */
  createdAt?: number;
  /** Expiry, Unix ms; `null` for none. Default `createdAt` + 300 s. */
  expiresAt?: number | null;
  /** Spore id. Default a random UUID, as Praval makes. */
  id?: string;
  /** Box nonce (24 bytes). Default random; give one only for test vectors. */
  nonce?: Uint8Array;
  /**
   * A trace context to carry and sign. Omitted by default: every Praval 0.8
   * release reads a spore without one, while a release without trace-context
   * support cannot verify a spore that carries one.
   */
  traceContext?: Record<string, string>;
}

/**
 * Seals `input` from `keys` to the Praval agent `to`: the bytes Praval's
 * `SecureSpore.to_bytes()` would produce for the same spore.
 *
 * @example
 * ```ts
 * import { openPravalSpore, PravalKeyPair, sealPravalSpore } from "@spores/spores/spore";
 * const [a, b] = [await PravalKeyPair.generate("a"), await PravalKeyPair.generate("b")];
 * const bytes = await sealPravalSpore(a, b.publicKeys(), { sporeType: "request", knowledge: { q: 1 } });
 * const opened = await openPravalSpore(bytes, b, { peers: new Map([["a", a.publicKeys()]]) });
 * console.assert(opened.knowledge.q === 1);
 * ```
 */
export async function sealPravalSpore(
  keys: PravalKeyPair,
  to: PravalPublicKeys,
  input: PravalSealInput,
): Promise<Uint8Array> {
  if (!PRAVAL_SPORE_TYPES.includes(input.sporeType)) {
    throw new ConfigError(`a Praval spore type is one of ${PRAVAL_SPORE_TYPES.join(", ")}`);
  }
  const priority = input.priority ?? 5;
  if (!Number.isInteger(priority) || priority < 1 || priority > 10) {
    throw new ConfigError("Praval priority must be an integer 1..10");
  }
  const createdAt = input.createdAt ?? Date.now();
  const expiresAt = input.expiresAt === undefined ? createdAt + 300_000 : input.expiresAt;
  const nonce = input.nonce ?? randomBytes(BOX_NONCE_LENGTH);
  const plaintext = encodeKnowledge(input.knowledge);
  if (!(nonce instanceof Uint8Array) || nonce.length !== BOX_NONCE_LENGTH) {
    throw new ConfigError("a box nonce is 24 bytes");
  }
  // crypto_box = crypto_box_afternm(crypto_box_beforenm(pk, sk)): the same bytes as naclBox.seal,
  // without a scalar multiplication per spore.
  const encryptedKnowledge = nacl.secretbox(plaintext, copyBytes(nonce), keys.sharedBoxKey(to.publicKey));
  const trace = input.traceContext ? canonicalTraceContext(input.traceContext) : new Uint8Array(0);
  const { ed25519 } = await provider();
  const knowledgeSignature = await ed25519.sign(keys.signingKey, concat(encryptedKnowledge, nonce, trace));
  return encodePravalSpore({
    id: input.id ?? crypto.randomUUID(),
    sporeType: input.sporeType,
    fromAgent: keys.agentName,
    toAgent: to.agentName,
    createdAt: createdAt / 1000,
    expiresAt: expiresAt === null ? null : expiresAt / 1000,
    priority,
    encryptedKnowledge,
    knowledgeSignature,
    senderPublicKey: keys.publicKeys().publicKey,
    nonce,
    ...(input.traceContext ? { traceContext: { ...input.traceContext } } : {}),
  });
}

/** Options of {@linkcode openPravalSpore}. */
export interface PravalOpenOptions {
  /** The pinned Praval agents, by name. A sender not in it is an `UnknownSenderError`. */
  peers: ReadonlyMap<string, PravalPublicKeys>;
  /** Clock skew tolerated on `created_at`, ms; older or further ahead is refused. Default 300,000. */
  skewMs?: number;
  /** The current time, Unix ms. Default now. */
  now?: number;
  /** Largest `encrypted_knowledge`, bytes. Default 1 MiB + 16. */
  maxKnowledgeBytes?: number;
}

/** A Praval spore that passed every check. */
export interface OpenedPravalSpore {
  /** The decoded wire fields. */
  spore: PravalSpore;
  /** The knowledge. */
  knowledge: Record<string, PravalJson>;
}

/**
 * Opens a Praval spore addressed to `keys`' agent. Refusals are typed:
 * `ProtocolError` (format), `RecipientError`, `ExpiredError`,
 * `ClockSkewError`, `UnknownSenderError`, `KeyChangedError` (the spore names
 * another box key than the pinned one), `SignatureError` (including an
 * unsigned broadcast), `DecryptError`.
 *
 * @example
 * ```ts ignore
 * const { spore, knowledge } = await openPravalSpore(bytes, myKeys, { peers });
 * ```
 */
export async function openPravalSpore(
  bytes: Uint8Array,
  keys: PravalKeyPair,
  options: PravalOpenOptions,
): Promise<OpenedPravalSpore> {
  const spore = decodePravalSpore(bytes, { maxKnowledgeBytes: options.maxKnowledgeBytes });
  if (spore.toAgent === null) {
    throw new SignatureError("unsigned, unencrypted Praval broadcast refused");
  }
  if (spore.toAgent !== keys.agentName) {
    throw new RecipientError("Praval spore is addressed to another agent");
  }
  checkFreshness(spore, options.now ?? Date.now(), options.skewMs ?? 300_000);
  const peer = options.peers.get(spore.fromAgent);
  if (!peer) throw new UnknownSenderError(`${spore.fromAgent} is not a declared Praval peer`);
  if (!equalBytes(spore.senderPublicKey, peer.publicKey)) {
    throw new KeyChangedError(`${spore.fromAgent} sent a box key other than the pinned one`);
  }
  if (spore.nonce.length !== BOX_NONCE_LENGTH || spore.knowledgeSignature.length !== 64) {
    throw new SignatureError("Praval spore is not signed");
  }
  if (spore.encryptedKnowledge.length < BOX_OVERHEAD) throw new ProtocolError("Praval box is truncated");
  const trace = spore.traceContext ? canonicalTraceContext(spore.traceContext) : new Uint8Array(0);
  const { ed25519 } = await provider();
  const signed = concat(spore.encryptedKnowledge, spore.nonce, trace);
  if (!(await ed25519.verify(peer.verifyKey, spore.knowledgeSignature, signed))) {
    throw new SignatureError("Praval spore signature does not verify");
  }
  const plaintext = nacl.secretbox.open(
    spore.encryptedKnowledge,
    spore.nonce,
    keys.sharedBoxKey(peer.publicKey),
  );
  if (plaintext === null) throw new DecryptError();
  return { spore, knowledge: decodeKnowledge(plaintext) };
}

function checkFreshness(spore: PravalSpore, now: number, skewMs: number): void {
  const created = spore.createdAt * 1000;
  if (created > now + skewMs) throw new ClockSkewError("Praval spore created in the future");
  if (created < now - skewMs) throw new ExpiredError("Praval spore created too long ago");
  if (spore.expiresAt !== null && spore.expiresAt * 1000 < now) {
    throw new ExpiredError("Praval spore expired");
  }
}
