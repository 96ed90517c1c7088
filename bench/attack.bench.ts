// What an attacker's spore costs the receiver: an unknown sender, a bad
// signature, a replay of a spore already accepted, and a flood of hellos from
// one (trusted) peer; a fresh, valid sealed spore is the baseline.
// Run: deno bench --allow-read=. bench/attack.bench.ts
import { Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";

const directory = new MemoryDirectory();
async function agent(id: string, dir = directory): Promise<SporeEngine> {
  const engine = await SporeEngine.create({
    id,
    identity: await Identity.generate(),
    directory: dir,
    trust: new TofuTrust(),
  });
  await engine.publishCard();
  return engine;
}
const swallow = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch {
    // refused, as it should be
  }
};

const bob = await agent("bob");
const alice = await agent("alice");
const mallory = await agent("mallory");
// An agent bob has never heard of: its card is in a directory bob does not read.
const elsewhere = new MemoryDirectory();
await elsewhere.publish(await bob.card());
const stranger = await agent("stranger", elsewhere);

const N = 400;
const kib = { type: "blob", content: new Uint8Array(1024) };
const valid: Uint8Array[] = [];
for (let i = 0; i < N; i++) valid.push(await alice.seal("bob", kib, { mode: "sealed" }));
const unknown = await stranger.seal("bob", kib, { mode: "sealed" });
const badSig = (await alice.seal("bob", kib, { mode: "sealed" })).slice();
badSig[badSig.length - 1]! ^= 1;
// A hybrid (Ed25519 + ML-DSA-65) sender whose Ed25519 signature is broken.
const pq = await SporeEngine.create({
  id: "pq",
  identity: await Identity.generate({ postQuantumSignatures: true }),
  directory,
  trust: new TofuTrust(),
});
await pq.publishCard();
const badHybrid = (await pq.seal("bob", kib, { mode: "sealed" })).slice();
badHybrid[badHybrid.length - 3309 - 4 - 10]! ^= 1; // inside the Ed25519 signature
const replayed = await alice.seal("bob", kib, { mode: "sealed" });
await bob.open(replayed);
const hellos: Uint8Array[] = [];
for (let i = 0; i < N; i++) hellos.push((await mallory.hello("bob", { force: true })).bytes);

let v = 0;
Deno.bench(
  { name: "valid sealed spore (baseline)", group: "attacker", baseline: true, n: N, warmup: 0 },
  async () => {
    await bob.open(valid[v++ % N]!);
  },
);
Deno.bench({ name: "unknown sender", group: "attacker", n: N }, async () => {
  await swallow(bob.open(unknown));
});
Deno.bench({ name: "bad signature", group: "attacker", n: N }, async () => {
  await swallow(bob.open(badSig));
});
Deno.bench({ name: "bad signature, hybrid suite", group: "attacker", n: N }, async () => {
  await swallow(bob.open(badHybrid));
});
Deno.bench({ name: "replay of an accepted spore", group: "attacker", n: N }, async () => {
  await swallow(bob.open(replayed));
});
let h = 0;
Deno.bench({ name: "hello flood, one peer", group: "attacker", n: N, warmup: 0 }, async () => {
  await swallow(bob.open(hellos[h++ % N]!));
});
