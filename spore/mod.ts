/**
 * The secure spore protocol, free of any transport: the envelope and its
 * strict parser, MessagePack payloads, agent cards, directories, trust
 * policies, sealed and classic spores, the handshake, sessions with epoch
 * rotation, and replay defence. `docs/PROTOCOL.md` is its specification.
 *
 * @example
 * ```ts
 * import { inspect, Identity, MemoryDirectory, SporeEngine, TofuTrust } from "@spores/spores";
 * const directory = new MemoryDirectory();
 * const make = async (id: string) => {
 *   const e = await SporeEngine.create({ id, identity: await Identity.generate(), directory, trust: new TofuTrust() });
 *   await e.publishCard();
 *   return e;
 * };
 * const [alice, bob] = [await make("alice"), await make("bob")];
 * const spore = await alice.seal("bob", { type: "greeting", content: { text: "hi" } });
 * console.log(inspect(spore).kind); // "sealed"
 * const result = await bob.open(spore);
 * console.assert(result.status === "message");
 * ```
 *
 * @module
 */
export * from "./card.ts";
export * from "./content.ts";
export * from "./directory.ts";
export * from "./engine.ts";
export * from "./file_store.ts";
export * from "./envelope.ts";
export * from "./limits.ts";
export * from "./payload.ts";
export * from "./replay.ts";
export * from "./resend.ts";
export * from "./self_signature.ts";
export * from "./session.ts";
export * from "./signed_pins.ts";
export * from "./state_seal.ts";
export * from "./trust.ts";
export * from "./types.ts";
export * from "./agent.ts";
export * from "./logger.ts";
export * from "./metrics.ts";
export * from "./reef.ts";
export * from "./trust_file.ts";
export type { SessionSecrets } from "./schedule.ts";
export * from "./praval/mod.ts";
