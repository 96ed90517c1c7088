// The agent API a user meets first: no message lost before its handler exists, content refused at send when it
// would not arrive as given, one typed event model, request/reply, async iteration, AbortSignal, bounded close.
import assert from "node:assert/strict";
import {
  Agent,
  ConfigError,
  ContentError,
  type DeadLetter,
  Identity,
  type Message,
  type Rejection,
  TransportError,
  UnknownSenderError,
} from "../mod.ts";
import { createTransport, type MemoryBroker } from "../transports/memory.ts";

const unique = () => `memory://api-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(5);
  }
};

Deno.test("a message that arrives before its handler is registered waits for it, not acknowledged away", async () => {
  const url = unique();
  await using bob = await Agent.start({ id: "bob", transport: url });
  await using alice = await Agent.start({ id: "alice", transport: url });
  await alice.send("bob", { type: "chat", content: "early" });
  await sleep(150); // bob has the message, and no handler for it yet
  const got: unknown[] = [];
  bob.on("chat", (m) => void got.push(m.content));
  await until(() => got.length === 1);
  assert.deepEqual(got, ["early"]);
  assert.ok(bob.metrics().unhandled >= 1, "the early delivery is counted as unhandled");
  assert.equal(bob.metrics().delivered, 1);
});

Deno.test("handlers given to start see messages that waited in the broker while the agent was away", async () => {
  const url = unique();
  const identity = await Identity.generate({ extractable: true });
  const first = await Agent.start({ id: "bob", transport: url, identity });
  await first.close();
  await using alice = await Agent.start({ id: "alice", transport: url });
  for (let i = 0; i < 5; i++) await alice.send("bob", { type: "chat", content: i });
  const got: unknown[] = [];
  await using _bob = await Agent.start({
    id: "bob",
    transport: url,
    identity,
    // With a volatile store, one-shot spores made before a restart are refused as possible replays
    // (docs/PROTOCOL.md §8); an agent with a persistent store accepts them, as this one does.
    replayMemorySince: 0,
    handlers: { chat: (m: Message) => void got.push(m.content) },
  });
  await until(() => got.length === 5);
  assert.deepEqual([...got].sort(), [0, 1, 2, 3, 4]);
});

Deno.test("a type that never gets a handler is dead-lettered with an event, never dropped in silence", async () => {
  const url = unique();
  await using bob = await Agent.start({ id: "bob", transport: url, maxRedeliveries: 2 });
  await using alice = await Agent.start({ id: "alice", transport: url });
  const dead = Promise.withResolvers<DeadLetter>();
  bob.addEventListener("dead-letter", (e) => dead.resolve(e.detail));
  await alice.send("bob", { type: "nobody-listens", content: { x: 1 } });
  const letter = await dead.promise;
  assert.ok(letter.source === "agent", "given up on by the agent");
  assert.equal(letter.message.type, "nobody-listens");
  assert.deepEqual(letter.message.content, { x: 1 });
  assert.equal(letter.attempts, 3);
  assert.ok(letter.error instanceof ConfigError);
  const broker = (bob.transport as unknown as { broker: MemoryBroker }).broker;
  assert.equal(broker.deadLetters("bob").length, 1, "the broker keeps it");
  assert.equal(bob.metrics().deadLetters, 1);
});

Deno.test("content that would not arrive as given is refused at send, naming where it is", async () => {
  const url = unique();
  await using bob = await Agent.start({ id: "bob", transport: url });
  await using alice = await Agent.start({ id: "alice", transport: url });
  const refused = async (content: unknown, path: string) => {
    const e = await alice.send("bob", { type: "t", content }).then(() => undefined, (e) => e);
    assert.ok(e instanceof ContentError, `refused: ${path}`);
    assert.equal(e.code, "ERR_CONTENT");
    assert.equal(e.path, path);
  };
  await refused(new Date(), "content");
  await refused({ when: new Date() }, "content.when");
  await refused({ m: new Map([["a", 1]]) }, "content.m");
  await refused({ a: 1, gone: undefined }, "content.gone");
  await refused({ list: [1, 2, new Set([3])] }, "content.list[2]");
  await refused([1, , 3], "content[1]");
  await refused({ n: 10n }, "content.n");
  await refused({ big: [2 ** 60] }, "content.big[0]");
  await refused({ f: () => 1 }, "content.f");
  await refused({ s: "\ud800" }, "content.s");
  await refused({ "odd key": new Uint16Array(2) }, 'content["odd key"]');
  class Point {
    x = 1;
  }
  await refused({ p: new Point() }, "content.p");
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  await refused(cycle, "content.self");
  let deep: unknown = 1;
  for (let i = 0; i < 70; i++) deep = [deep];
  assert.ok(await alice.send("bob", { type: "t", content: deep }).catch((e) => e) instanceof ContentError);
  alice.setMembers("room", { members: ["alice", "bob"] });
  await assert.rejects(alice.broadcast("room", { type: "t", content: { d: new Date() } }), ContentError);
  // What is allowed arrives exactly as given.
  const content = {
    text: "héllo ✓",
    n: [0, 1.5, Number.MAX_SAFE_INTEGER, -123.456e-200, 5e-324, NaN, Infinity, -Infinity],
    blob: new Uint8Array([0, 255]),
    nested: { list: [null, true, false, { x: "y" }] },
    empty: {},
    none: null,
  };
  const got = Promise.withResolvers<unknown>();
  bob.on("t", (m) => got.resolve(m.content));
  await alice.send("bob", { type: "t", content });
  assert.deepEqual(await got.promise, content);
  // As in JSON, -0 arrives as 0 (MessagePack writes it as the integer 0): the one documented exception.
  const zero = Promise.withResolvers<unknown>();
  bob.on("z", (m) => zero.resolve(m.content));
  await alice.send("bob", { type: "z", content: -0 });
  assert.ok(Object.is(await zero.promise, 0));
});

Deno.test("one event model: message types and lifecycle events are separate, and nothing is replaced silently", async () => {
  const url = unique();
  await using bob = await Agent.start({ id: "bob", transport: url });
  for (const name of ["dead-letter", "rejected", "connected", "key-changed"]) {
    assert.throws(() => bob.on(name, () => {}), ConfigError, `on("${name}") is refused`);
  }
  bob.on("chat", () => {});
  assert.throws(() => bob.on("chat", () => {}), ConfigError);
  const got: string[] = [];
  bob.on("chat", (m) => void got.push(m.content as string), { replace: true });
  await using alice = await Agent.start({ id: "alice", transport: url });
  const connected = Promise.withResolvers<string>();
  bob.addEventListener("connected", (e) => connected.resolve(`${e.detail.peer} ${e.detail.role}`));
  await alice.connect("bob");
  assert.equal(await connected.promise, "alice responder");
  await alice.send("bob", { type: "chat", content: "one" });
  await until(() => got.length === 1);
  bob.off("chat");
  bob.on("chat", (m) => void got.push(`again ${m.content}`));
  await alice.send("bob", { type: "chat", content: "two" });
  await until(() => got.length === 2);
  assert.deepEqual(got, ["one", "again two"]);
});

Deno.test("refusals are visible: a rejected event each, and one stderr line per code with the default logger", async () => {
  const url = unique();
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args.join(" "));
  try {
    await using bob = await Agent.start({ id: "bob", transport: url });
    await using quiet = await Agent.start({ id: "quiet", transport: url, refusals: "silent" });
    const rejections: Rejection[] = [];
    bob.addEventListener("rejected", (e) => void rejections.push(e.detail));
    const raw = await createTransport(url);
    for (const to of ["bob", "bob", "quiet"]) {
      await raw.publish({ agent: to }, crypto.getRandomValues(new Uint8Array(64)));
    }
    await until(() => rejections.length === 2 && quiet.metrics().rejected["ERR_PROTOCOL"] === 1);
    assert.deepEqual(rejections.map((r) => r.code), ["ERR_PROTOCOL", "ERR_PROTOCOL"]);
    const lines = warnings.filter((w) => w.includes("refused a spore"));
    assert.equal(lines.length, 1, "one line for two refusals with the same code");
    assert.match(lines[0]!, /agent bob refused a spore \(ERR_PROTOCOL/);
    await raw.close();
  } finally {
    console.warn = warn;
  }
});

Deno.test("request and reply: correlated answers, a timeout, and an AbortSignal", async () => {
  const url = unique();
  await using server = await Agent.start({ id: "server", transport: url });
  await using client = await Agent.start({ id: "client", transport: url });
  server.on("add", async (m) => {
    const [a, b] = m.content as [number, number];
    await m.reply(a + b);
  });
  server.on("ignore", () => {});
  await client.connect("server");
  const answers = await Promise.all(
    [1, 2, 3].map((n) => client.request("server", { type: "add", content: [n, n] })),
  );
  assert.deepEqual(answers.map((a) => a.content), [2, 4, 6]);
  assert.ok(answers.every((a) => a.from === "server" && a.type === "add"));
  await assert.rejects(
    client.request("server", { type: "ignore", content: null }, { timeoutMs: 200 }),
    TransportError,
  );
  const controller = new AbortController();
  const pending = client.request("server", { type: "ignore", content: null }, { signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  await assert.rejects(
    client.send("server", { type: "add", content: [1, 1] }, { signal: AbortSignal.abort() }),
    (e: unknown) => e instanceof DOMException && e.name === "AbortError",
  );
});

Deno.test("messages(type): a loop body is the handler; breaking returns undelivered messages to the broker", async () => {
  const url = unique();
  await using bob = await Agent.start({ id: "bob", transport: url });
  await using alice = await Agent.start({ id: "alice", transport: url });
  for (let i = 0; i < 6; i++) await alice.send("bob", { type: "n", content: i });
  const seen: number[] = [];
  for await (const m of bob.messages("n")) {
    seen.push(m.content as number);
    if (seen.length === 3) break;
  }
  assert.equal(seen.length, 3);
  const rest: number[] = [];
  bob.on("n", (m) => void rest.push(m.content as number));
  await until(() => seen.length + rest.length === 6);
  assert.deepEqual([...seen, ...rest].sort(), [0, 1, 2, 3, 4, 5]);
});

Deno.test("close({ timeoutMs }) does not hang on a handler that never finishes", async () => {
  const url = unique();
  const bob = await Agent.start({ id: "bob", transport: url });
  await using alice = await Agent.start({ id: "alice", transport: url });
  const started = Promise.withResolvers<void>();
  bob.on("hang", () => {
    started.resolve();
    return new Promise(() => {});
  });
  await alice.send("bob", { type: "hang", content: null });
  await started.promise;
  const t0 = Date.now();
  await bob.close({ timeoutMs: 200 });
  assert.ok(Date.now() - t0 < 2000, "close returned");
});

Deno.test("join(channel, { echo: false }) keeps an agent's own broadcasts from its handlers", async () => {
  const url = unique();
  await using alice = await Agent.start({ id: "alice", transport: url });
  await using bob = await Agent.start({ id: "bob", transport: url });
  const aliceGot: string[] = [];
  const bobGot: string[] = [];
  alice.on("news", (m) => void aliceGot.push(m.content as string));
  bob.on("news", (m) => void bobGot.push(m.content as string));
  const members = ["alice", "bob"];
  await alice.join("room", { members, echo: false });
  await bob.join("room", { members });
  await alice.broadcast("room", { type: "news", content: "from alice" });
  await bob.broadcast("room", { type: "news", content: "from bob" });
  await until(() => bobGot.length === 2 && aliceGot.length === 1);
  await sleep(100);
  assert.deepEqual(aliceGot, ["from bob"]);
  assert.deepEqual(bobGot.sort(), ["from alice", "from bob"]);
});

Deno.test("sending to an agent nobody knows says unknown recipient", async () => {
  await using alice = await Agent.start({ id: "alice", transport: unique() });
  const e = await alice.send("nobody", { type: "t", content: 1 }).catch((e) => e);
  assert.ok(e instanceof UnknownSenderError);
  assert.match(e.message, /unknown recipient nobody/);
});
