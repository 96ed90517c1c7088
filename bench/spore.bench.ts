// The protocol layer: session spores (sequential and pipelined), one-shot
// sealed spores, and full handshakes.
// Run: deno bench --allow-read=. bench/spore.bench.ts
import { Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";

const directory = new MemoryDirectory();
async function agent(id: string, postQuantumSignatures = false): Promise<SporeEngine> {
  const engine = await SporeEngine.create({
    id,
    identity: await Identity.generate({ postQuantumSignatures }),
    directory,
    trust: new TofuTrust(),
    // No rotation or replay window overflow inside a bench run.
    session: { rotateAfterMessages: 1e9, replayWindow: 1 << 20 },
  });
  await engine.publishCard();
  return engine;
}

const alice = await agent("alice");
const bob = await agent("bob");
const handshake = async (a: SporeEngine, b: SporeEngine) => {
  const { bytes, established } = await a.hello(b.id, { force: true });
  const r = await b.open(bytes);
  if (r.status !== "handshake" || !r.reply) throw new Error("handshake failed");
  await a.open(r.reply);
  await established;
};
await handshake(alice, bob);

const kib = { type: "blob", content: crypto.getRandomValues(new Uint8Array(1024)) };
const BATCH = 32;

Deno.bench({ name: "seal, 1 at a time", group: "session spore 1 KiB", baseline: true }, async () => {
  await alice.seal("bob", kib);
});
Deno.bench({ name: "seal ×32, pipelined", group: "session spore 1 KiB" }, async () => {
  const all = [];
  for (let i = 0; i < BATCH; i++) all.push(alice.seal("bob", kib));
  await Promise.all(all);
});
Deno.bench({ name: "seal + open, 1 at a time", group: "session spore 1 KiB" }, async () => {
  await bob.open(await alice.seal("bob", kib));
});
Deno.bench({ name: "seal + open ×32, pipelined", group: "session spore 1 KiB" }, async () => {
  const all = [];
  for (let i = 0; i < BATCH; i++) all.push(alice.seal("bob", kib).then((s) => bob.open(s)));
  await Promise.all(all);
});

Deno.bench({ name: "seal", group: "sealed one-shot spore 1 KiB", baseline: true }, async () => {
  await alice.seal("bob", kib, { mode: "sealed" });
});
Deno.bench({ name: "seal + open", group: "sealed one-shot spore 1 KiB" }, async () => {
  await bob.open(await alice.seal("bob", kib, { mode: "sealed" }));
});

const carol = await agent("carol", true);
const dave = await agent("dave", true);
Deno.bench({ name: "Ed25519 suite", group: "full handshake, both sides", baseline: true }, async () => {
  await handshake(alice, bob);
});
Deno.bench({ name: "Ed25519 + ML-DSA-65 suite", group: "full handshake, both sides" }, async () => {
  await handshake(carol, dave);
});
Deno.bench(
  { name: "Ed25519 suite ×8 concurrent (8 pairs)", group: "full handshake, both sides" },
  async () => {
    await Promise.all(pairs.map(([a, b]) => handshake(a, b)));
  },
);
const pairs: [SporeEngine, SporeEngine][] = [];
for (let i = 0; i < 8; i++) pairs.push([await agent(`p${i}`), await agent(`q${i}`)]);
