// Full handshakes per second (both sides, Ed25519 suite, in one process): one at a time, and with 16 pairs
// handshaking concurrently. Rounds alternate; min and median are reported.
//
// Run: deno run --allow-read=. bench/handshake.ts [rounds=3] [handshakes per round=320]
import { Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";

const ROUNDS = Number(Deno.args[0] ?? 3);
const PER_ROUND = Number(Deno.args[1] ?? 320);
const PAIRS = 16;

const directory = new MemoryDirectory();
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
const pairs: [SporeEngine, SporeEngine][] = [];
for (let i = 0; i < PAIRS; i++) pairs.push([await engine(`a${i}`), await engine(`b${i}`)]);

async function handshake(a: SporeEngine, b: SporeEngine): Promise<void> {
  const { bytes, established } = await a.hello(b.id, { force: true });
  const r = await b.open(bytes);
  if (r.status !== "handshake" || !r.reply) throw new Error("handshake failed");
  await a.open(r.reply);
  await established;
}

async function rate(concurrent: number): Promise<number> {
  const start = performance.now();
  let next = 0;
  await Promise.all(
    pairs.slice(0, concurrent).map(async ([a, b]) => {
      while (next < PER_ROUND) {
        next++;
        await handshake(a, b);
      }
    }),
  );
  return PER_ROUND / ((performance.now() - start) / 1000);
}

await rate(PAIRS); // warm up
const rows: { one: number; many: number }[] = [];
for (let r = 0; r < ROUNDS; r++) rows.push({ one: await rate(1), many: await rate(PAIRS) });
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const report = (name: string, xs: number[]) =>
  console.log(
    `  ${name}: min ${sorted(xs)[0]!.toFixed(0)}, median ${
      sorted(xs)[xs.length >> 1]!.toFixed(0)
    } handshakes/s`,
  );
console.log(`full handshakes (both sides), ${PER_ROUND} per round, ${ROUNDS} alternating rounds`);
report("one at a time", rows.map((r) => r.one));
report(`${PAIRS} pairs concurrently`, rows.map((r) => r.many));
