/**
 * Records an agent signs for itself (its trust file, its trust pins): signed
 * with every signing key of its identity (Ed25519, and ML-DSA-65 for a hybrid
 * identity) and checked against those same keys.
 *
 * @module
 */
import type { Identity } from "../crypto/identity.ts";
import { provider } from "../crypto/provider.ts";

/** The shape of an identity fingerprint: eight groups of four base32 letters. */
export const FINGERPRINT_PATTERN: RegExp = /^([a-z2-7]{4}-){7}[a-z2-7]{4}$/;

/** Signatures of a record an agent signed for itself. */
export interface SelfSignature {
  /** Ed25519. */
  signature: Uint8Array;
  /** ML-DSA-65, for a hybrid identity. */
  pqSignature?: Uint8Array;
}

/**
 * Signs `message` with every signing key of `identity`.
 *
 * @example
 * ```ts
 * import { Identity, signSelf, verifySelf } from "@spores/spores";
 * const me = await Identity.generate();
 * const message = new TextEncoder().encode("mine");
 * console.assert(await verifySelf(me, message, await signSelf(me, message)));
 * ```
 */
export async function signSelf(identity: Identity, message: Uint8Array): Promise<SelfSignature> {
  const [signature, pqSignature] = await Promise.all([
    identity.sign(message),
    identity.pqSigningKey ? identity.signPostQuantum(message) : undefined,
  ]);
  return pqSignature ? { signature, pqSignature } : { signature };
}

/**
 * Whether `signatures` over `message` are `identity`'s own: Ed25519, and
 * ML-DSA-65 as well when the identity has that key (a missing one fails).
 *
 * @example
 * ```ts
 * import { Identity, signSelf, verifySelf } from "@spores/spores";
 * const me = await Identity.generate();
 * const other = await Identity.generate();
 * const message = new TextEncoder().encode("mine");
 * console.assert(!(await verifySelf(me, message, await signSelf(other, message))));
 * ```
 */
export async function verifySelf(
  identity: Identity,
  message: Uint8Array,
  signatures: SelfSignature,
): Promise<boolean> {
  const p = await provider();
  return await p.ed25519.verify(identity.signingKey.publicKey, signatures.signature, message) &&
    (identity.pqSigningKey === undefined ||
      (signatures.pqSignature !== undefined &&
        await p.mlDsa65.verify(identity.pqSigningKey.publicKey, signatures.pqSignature, message)));
}
