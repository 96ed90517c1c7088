// Session spores against Praval's per-message design (PyNaCl Box + Ed25519, through Debian's python3-nacl),
// in one run: rounds alternate the Python anchor and Spores, and ratios are taken within each round.
//
// Run: deno run --allow-read=. --allow-run=/usr/bin/python3 bench/anchor.ts [rounds=3] [size=1024]
import { Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";

const ROUNDS = Number(Deno.args[0] ?? 3);
const SIZE = Number(Deno.args[1] ?? 1024);
const N = 5000;

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
if (answer.status !== "handshake" || !answer.reply) throw new Error("handshake failed");
await alice.open(answer.reply);
await established;
const message = { type: "blob", content: new Uint8Array(SIZE) };

/** µs per seal and per open, the minimum of 3 repeats of N, one spore at a time. */
async function spores(): Promise<{ seal_us: number; open_us: number }> {
  let seal = Infinity;
  let open = Infinity;
  for (let r = 0; r < 3; r++) {
    const sealed: Uint8Array[] = new Array(N);
    let t = performance.now();
    for (let i = 0; i < N; i++) sealed[i] = await alice.seal("bob", message);
    seal = Math.min(seal, (performance.now() - t) / N * 1000);
    t = performance.now();
    for (let i = 0; i < N; i++) await bob.open(sealed[i]!);
    open = Math.min(open, (performance.now() - t) / N * 1000);
  }
  return { seal_us: seal, open_us: open };
}

async function pynacl(): Promise<{ seal_us: number; open_us: number }> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [new URL("./pynacl_anchor.py", import.meta.url).pathname, String(SIZE), String(N)],
    stdout: "piped",
  }).output();
  if (!out.success) throw new Error("python3-nacl anchor failed");
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const rows: { py: { seal_us: number; open_us: number }; js: { seal_us: number; open_us: number } }[] = [];
await spores(); // warm up
for (let r = 0; r < ROUNDS; r++) rows.push({ py: await pynacl(), js: await spores() });
console.log(`${SIZE} B, ${N} spores per repeat, one at a time, ${ROUNDS} alternating rounds`);
for (const op of ["seal_us", "open_us"] as const) {
  const py = sorted(rows.map((r) => r.py[op]));
  const js = sorted(rows.map((r) => r.js[op]));
  const ratio = sorted(rows.map((r) => r.py[op] / r.js[op]));
  const m = (xs: number[]) => xs[xs.length >> 1]!.toFixed(2);
  console.log(
    `  ${op.slice(0, 4)}: PyNaCl min ${py[0]!.toFixed(2)} / median ${m(py)} µs; Spores session min ${
      js[0]!.toFixed(2)
    } / median ${m(js)} µs; Spores ÷ PyNaCl speed: min ${ratio[0]!.toFixed(2)}×, median ${m(ratio)}×`,
  );
}
