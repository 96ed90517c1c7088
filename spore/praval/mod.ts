/**
 * The Praval profile: Praval's `SecureSpore` v1.0 on the wire (strict
 * MessagePack codec), Praval key shapes, sealing and opening with a NaCl box
 * and an Ed25519 signature, and a replay guard for Praval peers.
 * `docs/PROTOCOL.md` ("Praval profile") says what it protects and what not.
 *
 * @example
 * ```ts
 * import { openPravalSpore, PravalKeyPair, sealPravalSpore } from "@spores/spores/spore";
 * const bridge = await PravalKeyPair.generate("bridge");
 * const praval = await PravalKeyPair.generate("researcher");
 * const bytes = await sealPravalSpore(bridge, praval.publicKeys(), {
 *   sporeType: "knowledge",
 *   knowledge: { finding: "tides follow the moon" },
 * });
 * const { knowledge } = await openPravalSpore(bytes, praval, {
 *   peers: new Map([["bridge", bridge.publicKeys()]]),
 * });
 * console.assert(knowledge.finding === "tides follow the moon");
 * ```
 *
 * @module
 */
export * from "./codec.ts";
export * from "./guard.ts";
export * from "./json.ts";
export * from "./keys.ts";
export * from "./profile.ts";
export * from "./seal.ts";
