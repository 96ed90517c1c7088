// Recovery after a receiver lost its state (a restart with the default, volatile store): spores it can no longer
// open are asked for again, in an authenticated request, and their sender sends them again with the same ids on a
// new session; what the sender no longer holds is a `lost` event there. Nothing whose send resolved goes silently.
import assert from "node:assert/strict";
import { createTransport } from "../transports/memory.ts";
import {
  Agent,
  ConfigError,
  hex,
  Identity,
  inspect,
  type Lost,
  type Message,
  parseResendRequest,
  ProtocolError,
  type Rejection,
  SentMessages,
  SporeEngine,
  TofuTrust,
} from "../mod.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 10_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await sleep(5);
  }
};
const unique = () => `memory://recovery-${crypto.randomUUID().slice(0, 8)}`;

/** Bob on `url` with the default (volatile) store, counting what he handles and refuses. */
async function startBob(url: string, identity: Identity, got: number[], rejected: Rejection[]) {
  const bob = await Agent.start({
    id: "bob",
    transport: url,
    identity,
    refusals: "silent",
    handlers: { n: (m: Message) => void got.push(m.content as number) },
  });
  bob.addEventListener("rejected", (e) => rejected.push(e.detail));
  return bob;
}

Deno.test("recovery: session spores sent while the receiver was down are asked for again and handled once", async () => {
  const url = unique();
  const identity = await Identity.generate();
  const got: number[] = [];
  const rejected: Rejection[] = [];
  let bob = await startBob(url, identity, got, rejected);
  await using alice = await Agent.start({ id: "alice", transport: url, refusals: "silent" });
  const lost: Lost[] = [];
  alice.addEventListener("lost", (e) => lost.push(e.detail));
  await alice.connect("bob");
  for (let i = 0; i < 20; i++) await alice.send("bob", { type: "n", content: i });
  await until(() => got.length === 20);
  await bob.close(); // its sessions were in memory: gone
  for (let i = 20; i < 60; i++) await alice.send("bob", { type: "n", content: i });
  bob = await startBob(url, identity, got, rejected);
  try {
    await until(() => got.length >= 60, 10_000, "all 60 handled");
    await sleep(300);
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: 60 }, (_, i) => i), "each once");
    assert.deepEqual(rejected.map((r) => r.code), [], "nothing refused");
    assert.deepEqual(lost, []);
    assert.equal(bob.metrics().resendRequested, 40);
    assert.equal(alice.metrics().resent, 40);
    // Later sends go on a new session, without further requests.
    for (let i = 60; i < 70; i++) await alice.send("bob", { type: "n", content: i });
    await until(() => got.length === 70);
    assert.equal(bob.metrics().resendRequested, 40);
    await until(() => alice.metrics().handshakes === 2, 10_000, "a new session");
  } finally {
    await bob.close();
  }
});

Deno.test("recovery: one-shot spores made before a volatile restart are asked for again, not refused", async () => {
  const url = unique();
  const identity = await Identity.generate();
  const got: number[] = [];
  const rejected: Rejection[] = [];
  const first = await startBob(url, identity, got, rejected);
  await first.close();
  await using alice = await Agent.start({ id: "alice", transport: url, refusals: "silent" });
  for (let i = 0; i < 10; i++) await alice.send("bob", { type: "n", content: i });
  await sleep(5); // created before bob's replay memory begins
  const bob = await startBob(url, identity, got, rejected);
  try {
    await until(() => got.length >= 10, 10_000, "all 10 handled");
    await sleep(200);
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i));
    assert.deepEqual(rejected.map((r) => r.code), []);
    assert.equal(alice.metrics().resent, 10);
  } finally {
    await bob.close();
  }
});

Deno.test("recovery: a sender that no longer holds a message says so in a lost event, with its ids", async () => {
  const url = unique();
  const identity = await Identity.generate();
  const got: number[] = [];
  const rejected: Rejection[] = [];
  let bob = await startBob(url, identity, got, rejected);
  await using alice = await Agent.start({ id: "alice", transport: url, refusals: "silent", resend: false });
  const lost: Lost[] = [];
  alice.addEventListener("lost", (e) => lost.push(e.detail));
  await alice.connect("bob");
  await alice.send("bob", { type: "n", content: 0 });
  await until(() => got.length === 1);
  await bob.close();
  const ids: string[] = [];
  for (let i = 1; i < 6; i++) ids.push(await alice.send("bob", { type: "n", content: i }));
  bob = await startBob(url, identity, got, rejected);
  try {
    await until(() => lost.flatMap((l) => l.ids).length === 5, 10_000, "lost events");
    assert.deepEqual(lost.flatMap((l) => l.ids).sort(), [...ids].sort());
    assert.ok(lost.every((l) => l.to === "bob" && l.reason === "no longer held"));
    assert.equal(alice.metrics().lost, 5);
    assert.deepEqual(got, [0]);
    // The session bob lost is gone on alice's side too: the next message arrives.
    await alice.send("bob", { type: "n", content: 99 });
    await until(() => got.includes(99));
  } finally {
    await bob.close();
  }
});

Deno.test("recovery: a request from another agent neither ends a session nor sends it someone else's messages", async () => {
  const url = unique();
  await using _bob = await Agent.start({ id: "bob", transport: url, handlers: { n: () => {} } });
  await using alice = await Agent.start({ id: "alice", transport: url, refusals: "silent" });
  await using carol = await Agent.start({ id: "carol", transport: url, refusals: "silent" });
  const carolGot: Message[] = [];
  carol.on("n", (m) => void carolGot.push(m));
  const session = await alice.connect("bob");
  const id = await alice.send("bob", { type: "n", content: "for bob only" });
  const handshakes = alice.metrics().handshakes;
  // The public API refuses the reserved type; a peer implementation could still send it, signed.
  await assert.rejects(carol.send("alice", { type: "spores.resend", content: { ids: [id] } }), ConfigError);
  const mallory = await SporeEngine.create({
    id: "carol",
    identity: carol.identity,
    directory: alice.transport.directory!,
    trust: new TofuTrust(),
  });
  const bytes = await mallory.seal("alice", {
    type: "spores.resend",
    content: { session: session.id, ids: [id] },
  });
  await alice.transport.publish({ agent: "alice" }, bytes);
  await sleep(300);
  assert.equal(alice.metrics().resent, 0);
  await alice.send("bob", { type: "n", content: "still on the session" });
  await sleep(100);
  assert.equal(alice.metrics().handshakes, handshakes, "alice's session with bob was not ended");
  assert.equal(
    alice.metrics().lost,
    0,
    "a request naming another pair's session is ignored: nothing reported",
  );
  assert.deepEqual(carolGot, []);
});

Deno.test("recovery: forged spores under many unknown sessions cost a bounded number of requests, then are refused", async () => {
  const url = unique();
  const transport = await createTransport(url);
  const captured: Uint8Array[] = [];
  const publish = transport.publish.bind(transport);
  (transport as { publish: typeof transport.publish }).publish = async (to, bytes, o) => {
    if ("agent" in to && to.agent === "bob") captured.push(bytes.slice());
    await publish(to, bytes, o);
  };
  const got: unknown[] = [];
  const rejected: Rejection[] = [];
  await using bob = await Agent.start({
    id: "bob",
    transport: url,
    refusals: "silent",
    handlers: { n: (m: Message) => void got.push(m.content) },
  });
  bob.addEventListener("rejected", (e) => rejected.push(e.detail));
  await using alice = await Agent.start({ id: "alice", transport, refusals: "silent" });
  await alice.connect("bob");
  await alice.send("bob", { type: "n", content: "real" });
  await until(() => got.length === 1);
  const real = captured.find((b) => inspect(b).kind === "session" && inspect(b).type === "n")!;
  const info = inspect(real);
  const sid = hex.decode(info.sessionId!);
  const at = (needle: Uint8Array) => real.findIndex((_, i) => needle.every((v, j) => real[i + j] === v));
  const sidAt = at(sid);
  const idAt = at(new TextEncoder().encode(info.id));
  assert.ok(sidAt > 0 && idAt > 0);
  for (let i = 0; i < 50; i++) {
    const forged = real.slice();
    forged.set(crypto.getRandomValues(new Uint8Array(sid.length)), sidAt);
    forged.set(new TextEncoder().encode(crypto.randomUUID().replaceAll("-", "")), idAt);
    await publish({ agent: "bob" }, forged);
  }
  await until(
    () => bob.metrics().resendRequested + rejected.length >= 50,
    10_000,
    "every forged spore decided",
  );
  assert.ok(
    bob.metrics().resendRequested <= 8,
    `at most 8 unknown sessions asked about (${bob.metrics().resendRequested})`,
  );
  assert.ok(rejected.length >= 42 && rejected.every((r) => r.code === "ERR_SESSION"));
  await sleep(200);
  assert.equal(alice.metrics().resent, 0, "alice sends nothing again for sessions she never had");
  assert.equal(alice.metrics().lost, 0, "and reports no loss");
  await alice.send("bob", { type: "n", content: "still works" });
  await until(() => got.includes("still works"));
});

Deno.test("recovery: a one-shot spore from before a restart is asked for only if its signature holds", async () => {
  const url = unique();
  const identity = await Identity.generate();
  const got: number[] = [];
  const rejected: Rejection[] = [];
  const first = await startBob(url, identity, got, rejected);
  await first.close();
  const transport = await createTransport(url);
  const captured: Uint8Array[] = [];
  const publish = transport.publish.bind(transport);
  (transport as { publish: typeof transport.publish }).publish = async (to, bytes, o) => {
    if ("agent" in to && to.agent === "bob") {
      // Held back: the test publishes a damaged copy instead.
      captured.push(bytes.slice());
      return;
    }
    await publish(to, bytes, o);
  };
  await using alice = await Agent.start({ id: "alice", transport, refusals: "silent" });
  await alice.send("bob", { type: "n", content: 1 });
  await sleep(5);
  const bob = await startBob(url, identity, got, rejected);
  try {
    const damaged = captured[0]!.slice();
    damaged[damaged.length - 3]! ^= 1; // in the signature
    await publish({ agent: "bob" }, damaged);
    await until(() => rejected.length === 1);
    assert.equal(rejected[0]!.code, "ERR_SIGNATURE");
    assert.equal(bob.metrics().resendRequested, 0, "an unauthenticated claim asks nobody for anything");
  } finally {
    await bob.close();
  }
});

Deno.test("recovery: requests are parsed strictly and the sent-message memory is bounded", () => {
  assert.throws(() => parseResendRequest({ ids: [] }), ProtocolError);
  assert.throws(() => parseResendRequest({ ids: ["a"], extra: 1 }), ProtocolError);
  assert.throws(() => parseResendRequest({ ids: ["bad id"] }), ProtocolError);
  assert.throws(() => parseResendRequest({ ids: ["a"], session: "zz" }), ProtocolError);
  assert.throws(
    () => parseResendRequest({ ids: Array.from({ length: 513 }, (_, i) => `i${i}`) }),
    ProtocolError,
  );
  assert.deepEqual(parseResendRequest({ ids: ["a1"], session: "ab".repeat(16) }), {
    ids: ["a1"],
    session: "ab".repeat(16),
  });
  const sent = new SentMessages({ maxBytes: 1000, maxEntries: 3 });
  const m = (size: number, ttl = 10_000) => ({
    type: "t",
    payload: new Uint8Array(1),
    priority: 4,
    expiresAt: Date.now() + ttl,
    size,
  });
  for (let i = 0; i < 10; i++) sent.add("bob", `m${i}`, m(100));
  assert.equal(sent.size, 3, "entry bound");
  assert.equal(sent.take("bob", "m0"), undefined, "oldest gone first");
  assert.ok(sent.take("bob", "m9"));
  sent.add("bob", "big1", m(600));
  sent.add("bob", "big2", m(600));
  assert.ok(sent.bytes <= 1000, "byte bound");
  assert.equal(sent.take("carol", "big2"), undefined, "keyed by recipient");
  sent.add("bob", "old", m(10, -1));
  assert.equal(sent.take("bob", "old"), undefined, "expired");
});
