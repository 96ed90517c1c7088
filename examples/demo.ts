/**
 * The Spores demo: three agents on the in-process broker.
 *
 * Run: `deno task demo` (no permission needed: `deno run examples/demo.ts`).
 *
 * It shows a post-quantum handshake, a request and its response, a broadcast
 * under a sender key, a tampered spore refused, and key rotation (session
 * epochs and the KEM key), with sizes and timings.
 *
 * @module
 */
import { type Address, Agent, inspect, provider, type Transport } from "../mod.ts";
import { createTransport } from "../transports/memory.ts";

const ms = (t: number) => `${(performance.now() - t).toFixed(1)} ms`;
const line = (who: string, what: string) => console.log(`${who.padEnd(7)} ${what}`);

// A tap on alice's connection, so the demo can show (and tamper with) the bytes on the wire.
const wire: { to: Address; bytes: Uint8Array }[] = [];
const inner = await createTransport("memory://demo");
const tap: Transport = {
  name: inner.name,
  capabilities: inner.capabilities,
  directory: inner.directory,
  publish(to, bytes, options) {
    wire.push({ to, bytes: bytes.slice() });
    return inner.publish(to, bytes, options);
  },
  subscribe: (from, handler, options) => inner.subscribe(from, handler, options),
  close: () => inner.close(),
};

const { backends } = await provider();
console.log(`crypto  ${Object.entries(backends).map(([k, v]) => `${k} ${v}`).join(", ")}\n`);

let t = performance.now();
await using alice = await Agent.start({ id: "alice", transport: tap, session: { rotateAfterMessages: 4 } });
await using bob = await Agent.start({ id: "bob", transport: "memory://demo" });
await using carol = await Agent.start({ id: "carol", transport: "memory://demo" });
line("start", `alice, bob, carol with fresh identities (${ms(t)})`);
for (const a of [alice, bob, carol]) line("", `${a.id.padEnd(6)} ${a.identity.fingerprint}`);

// 1. Handshake.
t = performance.now();
const session = await alice.connect("bob");
const hello = wire.find((w) => inspect(w.bytes).kind === "hello")!;
line(
  "alice",
  `⇄ bob  handshake, suite ${inspect(hello.bytes).suite}, hello ${hello.bytes.length} B, ` +
    `session ${session.id.slice(0, 8)}… (${ms(t)})`,
);

// 2. Request and response.
bob.on("question", async (m) => {
  const { a, b } = m.content as { a: number; b: number };
  await bob.send(m.from, { type: "answer", content: { sum: a + b } });
});
const answered = Promise.withResolvers<number>();
alice.on("answer", (m) => answered.resolve((m.content as { sum: number }).sum));
t = performance.now();
await alice.send("bob", { type: "question", content: { a: 19, b: 23 } });
const sum = await answered.promise;
const q = wire.findLast((w) => inspect(w.bytes).type === "question")!;
line(
  "alice",
  `→ bob  question (${inspect(q.bytes).kind} spore, ${q.bytes.length} B); bob answered ${sum} (${ms(t)})`,
);

// 3. Broadcast.
const heard = Promise.withResolvers<void>();
let listeners = 0;
for (const a of [bob, carol]) {
  a.on("alert", (m) => {
    line(a.id, `← ${m.from} on #${m.channel}: ${JSON.stringify(m.content)} (${m.kind})`);
    if (++listeners === 2) heard.resolve();
  });
  await a.join("ops", { members: ["alice", "bob", "carol"] });
}
alice.setMembers("ops", { members: ["alice", "bob", "carol"] });
t = performance.now();
await alice.broadcast("ops", { type: "alert", content: { level: 2, text: "tide rising" } });
await heard.promise;
line("alice", `→ #ops one spore for every member, sender key delivered pairwise (${ms(t)})`);

// 4. A tampered spore.
const original = wire.findLast((w) => inspect(w.bytes).type === "question")!.bytes;
const forged = original.slice();
forged[forged.length - 5]! ^= 0x01;
const before = Object.values(bob.metrics().rejected).reduce((x, y) => x + y, 0);
await inner.publish({ agent: "bob" }, forged);
while (Object.values(bob.metrics().rejected).reduce((x, y) => x + y, 0) === before) {
  await new Promise((r) => setTimeout(r, 5));
}
line("mallory", `→ bob  one flipped bit: refused ${JSON.stringify(bob.metrics().rejected)}, no handler ran`);

// 5. Rotation: session epochs every 4 messages here, then a new KEM key for bob.
for (let i = 0; i < 9; i++) await alice.send("bob", { type: "question", content: { a: i, b: 0 } });
const epochs = new Set(
  wire.filter((w) => inspect(w.bytes).kind === "session").map((w) => inspect(w.bytes).epoch),
);
line("alice", `→ bob  ${[...epochs].length} session epochs so far (keys ratchet forward, old ones erased)`);
t = performance.now();
await bob.rotateKemKey(60_000);
line("bob", `rotated its X-Wing key; the old one stays valid 60 s (${ms(t)})`);

await new Promise((r) => setTimeout(r, 50));
const m = bob.metrics();
console.log(
  `\nbob     delivered ${m.delivered}, duplicates ${m.duplicates}, handshakes ${m.handshakes}, ` +
    `rejected ${JSON.stringify(m.rejected)}, mean latency ${
      (m.deliveryLatency.sum / m.deliveryLatency.count).toFixed(1)
    } ms`,
);
