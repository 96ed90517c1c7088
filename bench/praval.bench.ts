// The Praval profile: sealing and opening a Praval SecureSpore with 1 KiB of
// knowledge (NaCl box + Ed25519 + MessagePack + JSON), and the strict decoder alone.
// The baseline is PyNaCl + msgpack doing the same in Python (see bench/README.md).
// Run: deno bench --allow-read=. bench/praval.bench.ts
import { decodePravalSpore, openPravalSpore, PravalKeyPair, sealPravalSpore } from "../mod.ts";

const alice = await PravalKeyPair.generate("alice");
const bob = await PravalKeyPair.generate("bob");
const peers = new Map([["alice", alice.publicKeys()]]);
const knowledge = { text: "x".repeat(1000), n: 1 };
const spore = await sealPravalSpore(alice, bob.publicKeys(), { sporeType: "knowledge", knowledge });

Deno.bench("praval seal, 1 KiB knowledge", { group: "praval" }, async () => {
  await sealPravalSpore(alice, bob.publicKeys(), { sporeType: "knowledge", knowledge });
});
Deno.bench("praval open, 1 KiB knowledge", { group: "praval", baseline: true }, async () => {
  await openPravalSpore(spore, bob, { peers });
});
Deno.bench("praval decode only", { group: "praval" }, () => {
  decodePravalSpore(spore);
});
