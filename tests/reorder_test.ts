// Concurrency and order: no valid spore is refused because of the order in which work finished.
import assert from "node:assert/strict";
import { Agent, InOrder, MemorySessionStore, useBackend } from "../mod.ts";
import { World } from "./_agents.ts";

async function flood(size: number, total: number, inFlight: number, backend: "auto" | "native") {
  useBackend(backend);
  try {
    const url = `memory://reorder-${crypto.randomUUID().slice(0, 8)}`;
    // A small window and short epochs make any reordering beyond the broker's own visible within a few
    // thousand spores (the defaults, 4,096 and 10,000, need tens of thousands).
    const session = { replayWindow: 64, rotateAfterMessages: 700 };
    const store = new MemorySessionStore({ replayWindow: 64 });
    await using alice = await Agent.start({ id: "alice", transport: url, session });
    await using bob = await Agent.start({ id: "bob", transport: url, session, store, prefetch: 256 });
    const seen = new Set<number>();
    bob.on("n", (m) => void seen.add((m.content as { n: number }).n));
    const { id } = await alice.connect("bob");
    const body = new Uint8Array(size).fill(7);
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < total) await alice.send("bob", { type: "n", content: { n: next++, body } });
    }));
    const end = Date.now() + 30_000;
    while (seen.size < total && Object.keys(bob.metrics().rejected).length === 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(bob.metrics().rejected, {}, `${size} B: spores refused`);
    assert.equal(seen.size, total, `${size} B: every spore delivered once`);
    const state = await store.get(id);
    const epochs = state!.recv.epochs.map((e) => e.epoch);
    assert.equal(new Set(epochs).size, epochs.length, "each receive epoch held once");
    assert.ok(epochs.length <= Math.ceil(total / session.rotateAfterMessages) + 1);
  } finally {
    useBackend("auto");
  }
}

for (const size of [1024, 8192, 65536]) {
  Deno.test(`256 spores in flight at ${size} B: every one delivered, none refused`, async () => {
    await flood(size, size === 65536 ? 1500 : 3000, 256, "native");
  });
}

Deno.test("spores of new epochs opened concurrently and out of order derive each epoch once", async () => {
  const world = new World();
  const store = new MemorySessionStore({ replayWindow: 64 });
  const policy = { rotateAfterMessages: 5, replayWindow: 64 };
  const alice = await world.agent("alice", { session: policy });
  const bob = await world.agent("bob", { session: policy, store });
  const { bytes, established } = await alice.hello("bob");
  const answer = await bob.open(bytes);
  if (answer.status !== "handshake" || !answer.reply) throw new Error("no welcome");
  await alice.open(answer.reply);
  const { id } = await established;
  const spores: Uint8Array[] = [];
  for (let i = 0; i < 35; i++) spores.push(await alice.seal("bob", { type: "n", content: i }));
  // Latest first, each epoch's spores all in flight at once.
  const results = await Promise.all(spores.reverse().map((s) => bob.open(s)));
  assert.ok(results.every((r) => r.status === "message"));
  const epochs = (await store.get(id))!.recv.epochs.map((e) => e.epoch).sort((a, b) => a - b);
  assert.deepEqual(epochs, [0, 1, 2, 3, 4, 5, 6]);
  // Replays of each are duplicates, not fresh.
  const again = await Promise.all(spores.map((s) => bob.open(s)));
  assert.ok(again.every((r) => r.status === "duplicate"));
});

Deno.test("InOrder: a later entrant's ordered step waits for every earlier one, per key", async () => {
  const order = new InOrder();
  const log: string[] = [];
  const a = order.enter("k");
  const b = order.enter("k");
  const c = order.enter("k");
  const other = order.enter("j");
  await other.earlier;
  log.push("j");
  other.leave();
  const cDone = c.earlier.then(() => log.push("c"));
  const bDone = b.earlier.then(() => log.push("b"));
  b.leave(); // b finished its work first, c must still wait for a
  c.leave();
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(log, ["j"]);
  log.push("a");
  a.leave();
  await Promise.all([bDone, cDone]);
  assert.deepEqual(log, ["j", "a", "b", "c"]);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(order.size, 0, "nothing held once all left");
});

Deno.test("delivery receipts are capped, and a replay whose receipt was dropped is still not handled twice", async () => {
  const url = `memory://receipts-${crypto.randomUUID().slice(0, 8)}`;
  const store = new MemorySessionStore({ receiptLimit: 16 });
  await using alice = await Agent.start({ id: "alice", transport: url });
  await using bob = await Agent.start({ id: "bob", transport: url, store });
  let handled = 0;
  bob.on("n", () => void handled++);
  await alice.connect("bob");
  const published: Uint8Array[] = [];
  const publish = alice.transport.publish.bind(alice.transport);
  alice.transport.publish = (to, bytes, options) => {
    published.push(bytes);
    return publish(to, bytes, options);
  };
  for (let i = 0; i < 200; i++) await alice.send("bob", { type: "n", content: i });
  const end = Date.now() + 10_000;
  while (handled < 200 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  assert.equal(handled, 200);
  await store.claimReceipt("x/y", 1000); // pruning runs on claims
  assert.ok(store.receipts <= 16, `${store.receipts} receipts held`);
  // The first spore's receipt is long gone; its counter is still inside the replay window.
  await publish({ agent: "bob" }, published[0]!, {});
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(handled, 200);
  assert.equal(bob.metrics().duplicates, 1);
});

Deno.test("256 broadcasts in flight: every one delivered to a member, none refused", async () => {
  const url = `memory://reorder-b-${crypto.randomUUID().slice(0, 8)}`;
  const store = new MemorySessionStore({ replayWindow: 64 });
  await using alice = await Agent.start({ id: "alice", transport: url });
  await using bob = await Agent.start({ id: "bob", transport: url, store, prefetch: 256 });
  const seen = new Set<number>();
  bob.on("n", (m) => void seen.add((m.content as { n: number }).n));
  const ops = { members: ["alice", "bob"] };
  await alice.join("ops", ops);
  await bob.join("ops", ops);
  const body = new Uint8Array(4096).fill(7);
  const total = 1500;
  // The first broadcast makes alice hand bob her sender key. Spores that arrive before their key are held and
  // reopened when it comes; spores in flight meanwhile can pass them by up to the prefetch, which the default
  // window (4,096) covers but this test's window of 64 does not: so the flood starts once the key is there.
  await alice.broadcast("ops", { type: "n", content: { n: 0, body } });
  while (!seen.has(0)) await new Promise((r) => setTimeout(r, 5));
  let next = 1;
  await Promise.all(Array.from({ length: 256 }, async () => {
    while (next < total) await alice.broadcast("ops", { type: "n", content: { n: next++, body } });
  }));
  const end = Date.now() + 30_000;
  while (seen.size < total && Object.keys(bob.metrics().rejected).length === 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(bob.metrics().rejected, {}, `broadcasts refused (${seen.size} seen)`);
  assert.equal(seen.size, total);
});
