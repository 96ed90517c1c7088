// A long run on memory://: session spores between two agents, with the rate and the heap reported every
// `step` messages, to check that neither drifts (delivery receipts, replay windows, epochs and sessions stay
// bounded however long the agents run).
//
// Run: deno run --v8-flags=--expose-gc --allow-read=. --allow-env bench/soak.ts [messages=200000] [step=20000]
import { Agent } from "../mod.ts";

const total = Number(Deno.args[0] ?? 200_000);
const step = Number(Deno.args[1] ?? 20_000);
const WINDOW = 64;
const gc = (globalThis as { gc?: () => void }).gc;

const url = `memory://soak-${crypto.randomUUID().slice(0, 8)}`;
await using alice = await Agent.start({ id: "alice", transport: url });
await using bob = await Agent.start({ id: "bob", transport: url });
let received = 0;
bob.on("soak", () => void received++);
await alice.connect("bob");
const content = new Uint8Array(1024).fill(1);

const heap = () => {
  gc?.();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external; // typed arrays keep their bytes outside the V8 heap
};
const start = heap();
console.log(`messages | msg/s in the step | heap used (MiB) | heap growth per message since start (B)`);
let sent = 0;
let last = performance.now();
const rates: number[] = [];
while (sent < total) {
  const goal = Math.min(total, sent + step);
  await Promise.all(Array.from({ length: WINDOW }, async () => {
    while (sent < goal) {
      sent++;
      await alice.send("bob", { type: "soak", content });
    }
  }));
  while (received < goal) await new Promise((r) => setTimeout(r, 1));
  const now = performance.now();
  const rate = step / ((now - last) / 1000);
  rates.push(rate);
  last = now;
  const h = heap();
  console.log(
    `${goal} | ${rate.toFixed(0)} | ${(h / 2 ** 20).toFixed(1)} | ${((h - start) / goal).toFixed(1)}`,
  );
}
const first = rates.slice(0, 2).reduce((a, b) => a + b) / 2;
const lastTwo = rates.slice(-2).reduce((a, b) => a + b) / 2;
console.log(`rate, last two steps ÷ first two: ${(lastTwo / first * 100).toFixed(0)} %`);
console.log(`rejected: ${JSON.stringify(bob.metrics().rejected)}`);
