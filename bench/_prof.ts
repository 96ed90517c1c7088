import { Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";
const directory = new MemoryDirectory();
const engine = async (id: string) => {
  const e = await SporeEngine.create({
    id,
    identity: await Identity.generate(),
    directory,
    trust: new TofuTrust(),
    session: { rotateAfterMessages: 1e9, replayWindow: 1 << 20 },
  });
  await e.publishCard();
  return e;
};
const alice = await engine("alice");
const bob = await engine("bob");
const { bytes, established } = await alice.hello("bob");
const answer = await bob.open(bytes);
if (answer.status !== "handshake" || !answer.reply) throw new Error();
await alice.open(answer.reply);
await established;
const message = { type: "blob", content: new Uint8Array(1024) };
for (let k = 0; k < 20; k++) {
  const s: Uint8Array[] = [];
  for (let i = 0; i < 5000; i++) s.push(await alice.seal("bob", message));
  for (const x of s) await bob.open(x);
}
