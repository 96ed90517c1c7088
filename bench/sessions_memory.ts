// Memory of live sessions on one side: an agent holds sessions with `count` peers (as initiator, or as
// responder); the peers' own engines are dropped after their handshake, so the heap growth is this side's
// sessions, replay state and cached cards.
//
// Run: deno run --v8-flags=--expose-gc --allow-read=. bench/sessions_memory.ts [initiator|responder] [count=10000]
import { type AgentCard, type Directory, Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";

const role = (Deno.args[0] ?? "initiator") as "initiator" | "responder";
const COUNT = Number(Deno.args[1] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

/** A directory that can be emptied, so its cards can be taken out of the measurement. */
class Droppable implements Directory {
  inner = new MemoryDirectory();
  publish(card: Uint8Array): Promise<void> {
    return this.inner.publish(card);
  }
  lookup(id: string): Promise<AgentCard | undefined> {
    return this.inner.lookup(id);
  }
  watch(listener: (card: AgentCard) => void): () => void {
    return this.inner.watch(listener);
  }
}
const directory = new Droppable();
const engine = async (id: string) => {
  const e = await SporeEngine.create({
    id,
    identity: await Identity.generate(),
    directory,
    trust: new TofuTrust(),
  });
  await e.publishCard();
  return e;
};
// Typed arrays keep their bytes outside the V8 heap (`external`): both count.
const heap = () => {
  gc();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
};

const me = await engine("me");
// A first session warms every code path and cache before the baseline.
const warm = await engine("warm");
await handshake(role === "initiator" ? me : warm, role === "initiator" ? warm : me);
const before = heap();

async function handshake(a: SporeEngine, b: SporeEngine): Promise<void> {
  const { bytes, established } = await a.hello(b.id);
  const r = await b.open(bytes);
  if (r.status !== "handshake" || !r.reply) throw new Error("handshake failed");
  await a.open(r.reply);
  await established;
  // One data spore each way, so that the replay state exists as in use.
  await b.open(await a.seal(b.id, { type: "x", content: 1 }));
  await a.open(await b.seal(a.id, { type: "x", content: 1 }));
}

const start = performance.now();
for (let i = 0; i < COUNT; i++) {
  const peer = await engine(`peer-${i}`);
  if (role === "initiator") await handshake(me, peer);
  else await handshake(peer, me);
}
const withDirectory = heap();
directory.inner = new MemoryDirectory(); // the peers' published cards are the directory's, not this side's
const after = heap();
const total = after - before;
console.log(
  `${COUNT} live sessions as ${role}: ${(total / 2 ** 20).toFixed(1)} MiB on this side (${
    (total / COUNT / 1024).toFixed(2)
  } KiB each; the shared directory's ${
    ((withDirectory - after) / 2 ** 20).toFixed(1)
  } MiB of cards left out), built in ${((performance.now() - start) / 1000).toFixed(0)} s`,
);
