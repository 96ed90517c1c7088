// What an agent under load must not do to itself: start a re-key per send once one is due, or defer a spore
// forever because a look-up keeps failing.
import assert from "node:assert/strict";
import { Agent, type AgentCard, type CardListener, type Directory, TransportError } from "../mod.ts";
import type { MemoryBroker } from "../transports/memory.ts";

const unique = () => `memory://load-${crypto.randomUUID().slice(0, 8)}`;
const until = async (cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
};

Deno.test("a re-key that is due is started once per peer, not once per send", async () => {
  const url = unique();
  // A re-handshake is due after 2 epochs of 10 spores: every 20 spores.
  const session = { rotateAfterMessages: 10, rehandshakeAfterEpochs: 2 };
  await using alice = await Agent.start({ id: "alice", transport: url, session });
  await using bob = await Agent.start({ id: "bob", transport: url, session });
  const got = new Set<number>();
  bob.on("n", (m) => void got.add(m.content as number));
  await alice.connect("bob");
  const total = 400;
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < total) await alice.send("bob", { type: "n", content: next++ });
  }));
  await until(() => got.size === total);
  // At most one re-key per 20 spores sent (plus the first handshake); before, every send after the point
  // where a re-key fell due started one of its own.
  const handshakes = bob.metrics().handshakes;
  assert.ok(handshakes <= total / 20 + 1, `${handshakes} handshakes for ${total} spores`);
  assert.deepEqual(bob.metrics().rejected, {});
});

/** A directory that cannot reach its store for one agent's card. */
class FailingFor implements Directory {
  constructor(readonly inner: Directory, readonly failing: string) {}
  publish(card: Uint8Array): Promise<void> {
    return this.inner.publish(card);
  }
  lookup(id: string): Promise<AgentCard | undefined> {
    if (id === this.failing) return Promise.reject(new TransportError("directory unreachable"));
    return this.inner.lookup(id);
  }
  watch(listener: CardListener): () => void {
    return this.inner.watch(listener);
  }
}

Deno.test("a spore whose sender cannot be looked up is deferred a bounded number of times, then dead-lettered", async () => {
  const url = unique();
  await using alice = await Agent.start({ id: "alice", transport: url });
  const directory = new FailingFor(alice.transport.directory!, "alice");
  await using bob = await Agent.start({ id: "bob", transport: url, directory, maxRedeliveries: 2 });
  bob.on("n", () => {});
  await alice.send("bob", { type: "n", content: 1 });
  const broker = (bob.transport as unknown as { broker: MemoryBroker }).broker;
  await until(() => broker.deadLetters("bob").length === 1);
  assert.equal(bob.metrics().deadLetters, 1);
  assert.equal(bob.metrics().delivered, 0);
  assert.equal(broker.depth("bob"), 0, "not requeued forever");
});

Deno.test("epoch rotations with 256 spores in flight: every spore opens (no seal uses an erased key)", async () => {
  const url = unique();
  // A new epoch every 10 spores, no re-handshake: seals that took a counter before a rotation finish after it.
  const session = { rotateAfterMessages: 10, rehandshakeAfterEpochs: 10_000 };
  await using alice = await Agent.start({ id: "alice", transport: url, session });
  await using bob = await Agent.start({ id: "bob", transport: url, session });
  const got = new Set<number>();
  bob.on("n", (m) => void got.add(m.content as number));
  await alice.connect("bob");
  const total = 2000;
  let next = 0;
  await Promise.all(Array.from({ length: 256 }, async () => {
    while (next < total) await alice.send("bob", { type: "n", content: next++ });
  }));
  await until(() => got.size === total || Object.keys(bob.metrics().rejected).length > 0);
  assert.deepEqual(bob.metrics().rejected, {});
  assert.equal(got.size, total);
});

Deno.test("a peer that sends while this agent's handshake with it is under way loses nothing (10 rounds)", async () => {
  for (let round = 0; round < 10; round++) {
    const url = unique();
    await using alice = await Agent.start({ id: "alice", transport: url });
    await using bob = await Agent.start({ id: "bob", transport: url });
    const got = new Set<number>();
    alice.on("n", (m) => void got.add(m.content as number));
    let sending = true;
    let sent = 0;
    const stream = (async () => {
      while (sending) {
        await bob.send("alice", { type: "n", content: sent++ });
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    await new Promise((r) => setTimeout(r, 20));
    await alice.connect("bob");
    await new Promise((r) => setTimeout(r, 50));
    sending = false;
    await stream;
    await until(() => got.size === sent || Object.keys(alice.metrics().rejected).length > 0);
    assert.deepEqual(alice.metrics().rejected, {}, `round ${round}`);
    assert.equal(got.size, sent);
  }
});

Deno.test("simultaneous connect (40 rounds): both sides end with one working session, neither connect times out", async () => {
  for (let round = 0; round < 40; round++) {
    const url = unique();
    await using alice = await Agent.start({ id: "alice", transport: url, connectTimeoutMs: 3000 });
    await using bob = await Agent.start({ id: "bob", transport: url, connectTimeoutMs: 3000 });
    const got: string[] = [];
    alice.on("m", (m) => void got.push(`alice got ${m.content}`));
    bob.on("m", (m) => void got.push(`bob got ${m.content}`));
    const [a, b] = await Promise.all([alice.connect("bob"), bob.connect("alice")]);
    assert.equal(a.peer, "bob");
    assert.equal(b.peer, "alice");
    await alice.send("bob", { type: "m", content: 1 });
    await bob.send("alice", { type: "m", content: 2 });
    await until(() => got.length === 2);
    assert.deepEqual(got.sort(), ["alice got 2", "bob got 1"], `round ${round}`);
    assert.deepEqual({ ...alice.metrics().rejected, ...bob.metrics().rejected }, {}, `round ${round}`);
  }
});
