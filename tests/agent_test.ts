// The agent runtime on the in-process broker: API, handler semantics, broadcast, logging and metrics.
import assert from "node:assert/strict";
import {
  type Address,
  Agent,
  base64,
  ConfigError,
  type DeadLetter,
  hex,
  Identity,
  MemoryLogger,
  type Message,
  nobleX25519,
  openTransport,
  provider,
  Reef,
  type Spore,
  type Transport,
  TransportError,
} from "../mod.ts";
import { createTransport, type MemoryBroker } from "../transports/memory.ts";

const unique = () => `memory://agents-${crypto.randomUUID().slice(0, 8)}`;
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
};

Deno.test("typed agents: sealed first message, then a session after connect", async () => {
  const url = unique();
  type Chat = { chat: { text: string } };
  await using alice = await Agent.start<Chat>({ id: "alice", transport: url });
  await using bob = await Agent.start<Chat>({ id: "bob", transport: url });
  const got: Message<{ text: string }>[] = [];
  bob.on("chat", (m) => void got.push(m));
  await alice.send("bob", { type: "chat", content: { text: "before" } });
  const session = await alice.connect("bob");
  await alice.send("bob", { type: "chat", content: { text: "after" }, priority: 8 });
  await until(() => got.length === 2);
  const [first, second] = got.sort((a, b) => a.createdAt - b.createdAt);
  assert.equal(first!.kind, "sealed");
  assert.equal(second!.kind, "session");
  assert.equal(second!.content.text, "after");
  assert.equal(second!.priority, 8);
  assert.equal(second!.from, "alice");
  assert.equal(session.peer, "bob");
  assert.equal(alice.metrics().sent, 2);
  assert.equal(bob.metrics().delivered, 2);
  assert.ok(bob.metrics().handshakes >= 1);
  assert.equal(bob.metrics().deliveryLatency.count, 2);
});

Deno.test("request/response between two agents", async () => {
  const url = unique();
  await using server = await Agent.start({ id: "server", transport: url });
  await using client = await Agent.start({ id: "client", transport: url });
  server.on("add", async (m) => {
    const { a, b } = m.content as { a: number; b: number };
    await server.send(m.from, { type: "sum", content: { re: m.id, value: a + b } });
  });
  const answer = Promise.withResolvers<number>();
  client.on("sum", (m) => answer.resolve((m.content as { value: number }).value));
  await client.connect("server");
  await client.send("server", { type: "add", content: { a: 2, b: 40 } });
  assert.equal(await answer.promise, 42);
});

Deno.test("a throwing handler is retried until it succeeds, and runs to success once", async () => {
  const url = unique();
  await using a = await Agent.start({ id: "a", transport: url });
  await using b = await Agent.start({ id: "b", transport: url, maxRedeliveries: 5 });
  let calls = 0;
  let successes = 0;
  b.on("job", () => {
    calls++;
    if (calls < 3) throw new Error("transient");
    successes++;
  });
  await a.connect("b");
  await a.send("b", { type: "job", content: 1 });
  await until(() => successes === 1);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(calls, 3);
  assert.equal(successes, 1);
  const m = b.metrics();
  assert.equal(m.redeliveries, 2);
  assert.equal(m.delivered, 1);
  assert.equal(m.deadLetters, 0);
});

Deno.test("poison message: after the redelivery limit it becomes a dead letter and stops looping", async () => {
  const url = unique();
  await using a = await Agent.start({ id: "a", transport: url });
  await using b = await Agent.start({ id: "b", transport: url, maxRedeliveries: 3 });
  let calls = 0;
  b.on("poison", () => {
    calls++;
    throw new Error("always fails");
  });
  const dead = Promise.withResolvers<DeadLetter>();
  b.addEventListener("dead-letter", (e) => dead.resolve((e as CustomEvent<DeadLetter>).detail));
  await a.send("b", { type: "poison", content: "x" });
  const letter = await dead.promise;
  assert.equal(letter.attempts, 4);
  assert.ok(letter.source === "agent", "given up on by the agent");
  assert.equal(letter.message.type, "poison");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(calls, 4, "no more attempts after the dead letter");
  assert.equal(b.metrics().deadLetters, 1);
  assert.equal(b.metrics().redeliveries, 3);
  const broker = (b.transport as unknown as { broker: MemoryBroker }).broker;
  assert.equal(broker.depth("b"), 0);
  assert.equal(broker.deadLetters("b").length, 1, "the broker keeps the dead letter");
});

/** Wraps a transport and records every publication. */
function recording(inner: Transport): Transport & { published: { to: Address; bytes: Uint8Array }[] } {
  const published: { to: Address; bytes: Uint8Array }[] = [];
  return {
    name: inner.name,
    capabilities: inner.capabilities,
    directory: inner.directory,
    published,
    publish(to, bytes, options) {
      published.push({ to, bytes: bytes.slice() });
      return inner.publish(to, bytes, options);
    },
    subscribe: (from, handler, options) => inner.subscribe(from, handler, options),
    close: () => inner.close(),
  };
}

Deno.test("redelivered copies are acknowledged as duplicates; tampered ones are rejected; no handler sees either", async () => {
  const url = unique();
  const tap = recording(await createTransport(url));
  const raw = await createTransport(url);
  await using a = await Agent.start({ id: "a", transport: tap });
  await using b = await Agent.start({ id: "b", transport: url });
  const got: unknown[] = [];
  b.on("t", (m) => void got.push(m.content));
  await a.send("b", { type: "t", content: "sealed" });
  await a.connect("b");
  await a.send("b", { type: "t", content: "session" });
  await until(() => got.length === 2);
  const toB = tap.published.filter((p) => "agent" in p.to && p.to.agent === "b").map((p) => p.bytes);
  const sealed = toB[0]!;
  const session = toB[toB.length - 1]!;
  // The broker (or an attacker) redelivers both, twice.
  for (const bytes of [sealed, session, sealed, session]) await raw.publish({ agent: "b" }, bytes);
  await until(() => b.metrics().duplicates === 4);
  // Tampered copies: a flipped ciphertext byte, a flipped header byte, noise.
  const flip = (bytes: Uint8Array, i: number) => {
    const c = bytes.slice();
    c[i]! ^= 1;
    return c;
  };
  await raw.publish({ agent: "b" }, flip(session, session.length - 3));
  await raw.publish({ agent: "b" }, flip(sealed, 12));
  await raw.publish({ agent: "b" }, new Uint8Array(300).fill(7));
  await until(() => Object.values(b.metrics().rejected).reduce((x, y) => x + y, 0) === 3);
  assert.equal(b.metrics().rejected["ERR_DECRYPT"], 1);
  // The noise is malformed; the flipped header byte lands in the random spore id, where it makes either an
  // invalid identifier (ERR_PROTOCOL) or a valid one the signature no longer covers (ERR_SIGNATURE).
  const header = b.metrics().rejected["ERR_SIGNATURE"] ?? 0;
  assert.equal(b.metrics().rejected["ERR_PROTOCOL"], 2 - header);
  // Handlers run concurrently: the session spore may finish before the sealed one (which waits on a KEM).
  assert.deepEqual(got.toSorted(), ["sealed", "session"]);
  assert.equal(b.metrics().delivered, 2);
  const broker = (b.transport as unknown as { broker: MemoryBroker }).broker;
  await until(() => broker.depth("b") === 0);
  await raw.close();
});

Deno.test("broadcast with sender keys reaches every member once, including one that was away", async () => {
  const url = unique();
  await using alice = await Agent.start({ id: "alice", transport: url });
  await using bob = await Agent.start({ id: "bob", transport: url });
  const carolIdentity = await Agent.start({ id: "carol", transport: url });
  const bobGot: Message[] = [];
  bob.on("alert", (m) => void bobGot.push(m));
  const ops = { members: ["alice", "bob", "carol"] };
  alice.setMembers("ops", ops);
  await bob.join("ops", ops);
  await carolIdentity.join("ops", ops);
  const identity = carolIdentity.identity;
  await carolIdentity.close(); // carol is away
  for (let i = 0; i < 5; i++) await alice.broadcast("ops", { type: "alert", content: { level: i } });
  await until(() => bobGot.length === 5);
  assert.ok(bobGot.every((m) => m.kind === "broadcast" && m.channel === "ops" && m.from === "alice"));
  assert.deepEqual(bobGot.map((m) => (m.content as { level: number }).level).sort(), [0, 1, 2, 3, 4]);
  // carol comes back with the same identity and catches up.
  await using carol = await Agent.start({ id: "carol", transport: url, identity });
  const carolGot: Message[] = [];
  carol.on("alert", (m) => void carolGot.push(m));
  await carol.join("ops", ops);
  await until(() => carolGot.length === 5);
  assert.equal(new Set(carolGot.map((m) => m.id)).size, 5);
});

Deno.test("the log holds no key, no plaintext and no whole ciphertext", async () => {
  const url = unique();
  const logger = new MemoryLogger();
  const secret = "the-plaintext-that-must-never-be-logged-" + crypto.randomUUID();
  const aliceId = await Identity.generate({ extractable: true });
  const bobId = await Identity.generate({ extractable: true });
  await using alice = await Agent.start({
    id: "alice",
    transport: url,
    logger,
    identity: aliceId,
    session: { rotateAfterMessages: 3 },
  });
  await using bob = await Agent.start({
    id: "bob",
    transport: url,
    logger,
    identity: bobId,
    maxRedeliveries: 1,
  });
  let failOnce = true;
  bob.on("secret", () => {
    if (failOnce) {
      failOnce = false;
      throw new Error("retry");
    }
  });
  bob.on("poison", () => {
    throw new Error(secret);
  });
  await bob.join("c", { members: ["alice", "bob"] });
  alice.setMembers("c", { members: ["bob"] });
  await alice.connect("bob");
  for (let i = 0; i < 10; i++) await alice.send("bob", { type: "secret", content: { secret, i } });
  await alice.send("bob", { type: "poison", content: secret });
  await alice.broadcast("c", { type: "secret", content: secret });
  await until(() => bob.metrics().delivered >= 11 && bob.metrics().deadLetters === 1);
  const text = JSON.stringify(logger.events);
  assert.ok(logger.events.length > 20, `only ${logger.events.length} events`);
  assert.ok(logger.events.some((e) => e.event === "dead-letter"));
  assert.ok(!text.includes(secret), "plaintext in the log");
  const p = await provider();
  for (const id of [aliceId, bobId]) {
    const keys = [
      id.signingKey.publicKey,
      id.kemKey.publicKey,
      await p.ed25519.exportSeed(id.signingKey.privateKey),
      await p.xwing.exportSeed(id.kemKey.privateKey),
      await nobleX25519.exportSecret(id.boxKey.privateKey),
    ];
    for (const key of keys) {
      for (const encoded of [hex.encode(key), base64.encode(key), key.join(",")]) {
        assert.ok(!text.includes(encoded.slice(0, 24)), "key material in the log");
      }
    }
  }
  assert.ok(!/[A-Za-z0-9+/]{200,}/.test(text), "a long encoded blob in the log");
});

Deno.test("configuration errors are typed and clear", async () => {
  await assert.rejects(openTransport("carrier-pigeon://x"), (e) => {
    return e instanceof ConfigError && /known: memory:\/\//.test(e.message);
  });
  await assert.rejects(openTransport("not a url"), ConfigError);
  await assert.rejects(Agent.start({ id: "bad/id", transport: "memory://" }), ConfigError);
  await using a = await Agent.start({ id: "a", transport: unique() });
  assert.throws(() => a.on("spores.hello" as string, () => {}), ConfigError);
  await assert.rejects(a.connect("nobody", { timeoutMs: 300 }), Error);
  const gone = await Agent.start({ id: "g", transport: unique() });
  await gone.close();
  await assert.rejects(gone.send("a", { type: "t" }), ConfigError);
  await assert.rejects(a.connect("a"), ConfigError);
  void TransportError;
});

Deno.test("AbortSignal closes the agent; close drains running handlers", async () => {
  const url = unique();
  const controller = new AbortController();
  const a = await Agent.start({ id: "a", transport: url });
  const b = await Agent.start({ id: "b", transport: url, signal: controller.signal });
  let finished = false;
  const started = Promise.withResolvers<void>();
  b.on("slow", async () => {
    started.resolve();
    await new Promise((r) => setTimeout(r, 100));
    finished = true;
  });
  await a.send("b", { type: "slow" });
  await started.promise;
  controller.abort();
  await b.close();
  assert.equal(finished, true, "close waited for the running handler");
  await assert.rejects(b.send("a", { type: "t" }), ConfigError);
  await a.close();
});

Deno.test("Reef: Praval's call shape, secure underneath", async () => {
  await using reef = await Reef.start({ transport: unique() });
  const analyst: Spore[] = [];
  const watcher: Spore[] = [];
  await reef.subscribe("analyst", (s) => void analyst.push(s));
  await reef.subscribe("watcher", (s) => void watcher.push(s));
  await reef.send("researcher", "analyst", { topic: "tides" }, {
    sporeType: "request",
    priority: 9,
    expiresInSeconds: 60,
  });
  await reef.broadcast("researcher", { news: "storm" });
  await until(() => analyst.length === 2 && watcher.length === 1);
  const request = analyst.find((s) => s.sporeType === "request")!;
  assert.equal(request.fromAgent, "researcher");
  assert.equal(request.toAgent, "analyst");
  assert.deepEqual(request.knowledge, { topic: "tides" });
  assert.equal(request.priority, 9);
  assert.ok(request.expiresAt.getTime() - request.createdAt.getTime() === 60_000);
  assert.equal(watcher[0]!.sporeType, "broadcast");
  assert.equal(watcher[0]!.toAgent, null);
  await assert.rejects(reef.send("a", "b", {}, { sporeType: "gossip" as "request" }), ConfigError);
  await assert.rejects(reef.send("a", "b", {}, { priority: 11 }), ConfigError);
});

Deno.test("connect honours an AbortSignal, and a later abort is harmless", async () => {
  const url = unique();
  await using a = await Agent.start({ id: "a", transport: url });
  await using b = await Agent.start({ id: "b", transport: url });
  const late = new AbortController();
  await a.connect("b", { signal: late.signal });
  late.abort(); // after the handshake: must not surface as an unhandled rejection
  await new Promise((r) => setTimeout(r, 10));
  const away = await Agent.start({ id: "away", transport: url });
  await away.close(); // its card stays; nobody answers its hellos
  const early = new AbortController();
  const pending = a.connect("away", { signal: early.signal, timeoutMs: 5000 });
  early.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  assert.ok(b);
});
