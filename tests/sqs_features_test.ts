// The SQS transport's own promises, against fauxqs started in this process: names, size limit, visibility
// extension, redrive to the dead-letter queue, SNS fan-out, FIFO, batching, the card directory, agents.
import assert from "node:assert/strict";
import {
  DeleteQueueCommand,
  GetQueueUrlCommand,
  type Message as SqsMessage,
  ReceiveMessageCommand,
  SendMessageCommand,
  TagQueueCommand,
} from "@aws-sdk/client-sqs";
import { Agent, createCard, type DeadLetter, Identity, type Message, TransportError } from "../mod.ts";
import { Batcher, createTransport, escapeId, sqsName, type SqsTransport } from "../transports/sqs.ts";
import { type Fauxqs, sqsOptions, startSqs } from "./_fauxqs.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const prefix = () => `t${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await sleep(20);
  }
}

let server: Fauxqs | undefined;
const sqsTest = (name: string, fn: (s: Fauxqs) => Promise<void>) =>
  Deno.test({ name: `sqs: ${name}`, ...noSanitize, fn: async () => fn(server ??= await startSqs()) });
const open = async (s: Fauxqs, p: string, extra: Record<string, unknown> = {}) =>
  await createTransport(s.url, sqsOptions(p, extra)) as SqsTransport;

Deno.test("sqs: queue names are valid, injective on tricky ids, and hashed when too long", () => {
  const ids = ["a", "a_", "a__", "a.", "a_d", "a:", "a_c", "_d", ".", "a-b", "a_xb", "A", "x".repeat(128)];
  const names = new Set<string>();
  for (const id of ids) {
    for (const kind of ["a", "d"] as const) {
      const n = sqsName("spores", kind, id);
      assert.match(n, /^[A-Za-z0-9_-]{1,80}$/);
      names.add(n);
    }
  }
  assert.equal(names.size, ids.length * 2);
  // Channel and member are separated by a token no escaped id contains.
  assert.notEqual(sqsName("p", "c", "a_x", "b"), sqsName("p", "c", "a", "x_b"));
  assert.notEqual(sqsName("p", "c", "a", "b_xc"), sqsName("p", "c", "a_xb", "c"));
  // Random ids of every allowed character never collide and always fit, FIFO suffix included.
  const seen = new Map<string, string>();
  const alphabet = "abAB09._:-_";
  for (let i = 0; i < 3000; i++) {
    const len = 1 + Math.floor(Math.random() * 100);
    const id = Array.from({ length: len }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join(
      "",
    );
    const n = sqsName("spores-prod", "a", id, undefined, true);
    assert.match(n, /^[A-Za-z0-9_-]{1,75}\.fifo$/);
    const before = seen.get(n);
    assert.ok(before === undefined || before === id, `${id} and ${before} share ${n}`);
    seen.set(n, id);
  }
  assert.equal(escapeId("eu:a_1.x"), "eu_ca__1_dx");
  assert.match(sqsName("p", "a", "y".repeat(128)), /^p_a-_h[0-9a-f]{36}$/);
  assert.throws(() => sqsName("has_underscore", "a", "x"));
  assert.throws(() => sqsName("p", "a", "no/slash"));
});

Deno.test("sqs: the batcher sends a lone item at once and groups items that wait", async () => {
  const batches: number[][] = [];
  let release: () => void = () => {};
  const b = new Batcher<number>(async (items) => {
    batches.push(items);
    await new Promise<void>((r) => release = r);
    return items.map((i) => i === 13 ? new Error("refused") : undefined);
  }, { maxInFlight: 1 });
  const lone = b.add(0);
  await sleep(0);
  assert.deepEqual(batches, [[0]], "a lone item waited");
  const more = Array.from({ length: 14 }, (_, i) => b.add(i + 1));
  release();
  await lone;
  await sleep(0);
  assert.deepEqual(batches[1], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  release();
  await sleep(0);
  release();
  const results = await Promise.allSettled(more);
  assert.equal(results.filter((r) => r.status === "rejected").length, 1);
  assert.equal((results[12] as PromiseRejectedResult).reason.message, "refused");
  await b.drained();
});

sqsTest(
  "a spore over the queue's MaximumMessageSize is refused before publishing, naming both sizes",
  async (s) => {
    const p = prefix();
    const t = await open(s, p, { maxMessageBytes: 1024 });
    try {
      const sub = await t.subscribe({ agent: "bob" }, async (d) => await d.ack());
      await sub.close();
      await assert.rejects(
        () => t.publish({ agent: "bob" }, new Uint8Array(1000)),
        (e: Error) =>
          e instanceof TransportError && /1000 bytes/.test(e.message) && /1024 bytes/.test(e.message),
      );
      const q = await t.sqs.send(new GetQueueUrlCommand({ QueueName: sqsName(p, "a", "bob") }));
      const r = await t.sqs.send(new ReceiveMessageCommand({ QueueUrl: q.QueueUrl, WaitTimeSeconds: 1 }));
      assert.equal(r.Messages?.length ?? 0, 0, "an oversize spore reached the queue");
      await t.publish({ agent: "bob" }, new Uint8Array(700)); // within the limit
      await assert.rejects(() => t.publish({ agent: "nobody" }, enc("x")), /no queue for agent nobody/);
    } finally {
      await t.close();
    }
  },
);

sqsTest("a slow handler keeps its message invisible; deleted only once it finishes", async (s) => {
  const p = prefix();
  const a = await open(s, p, { visibilityTimeoutSeconds: 1 });
  const b = await open(s, p, { visibilityTimeoutSeconds: 1 });
  try {
    const got: string[] = [];
    const first = Promise.withResolvers<void>();
    const subA = await a.subscribe({ agent: "bob" }, async (d) => {
      got.push(`a${d.redeliveries}`);
      first.resolve();
      await sleep(3500); // more than three visibility timeouts
      await d.ack();
    });
    await a.publish({ agent: "bob" }, enc("slow"));
    await first.promise;
    const subB = await b.subscribe({ agent: "bob" }, async (d) => {
      got.push(`b${d.redeliveries}`);
      await d.ack();
    });
    await sleep(5000);
    await subB.close();
    await subA.close();
    assert.deepEqual(got, ["a0"], "the message was redelivered while its handler ran, or after it finished");
  } finally {
    await a.close();
    await b.close();
  }
});

sqsTest("a message that keeps failing moves to the dead-letter queue after maxRedeliveries", async (s) => {
  const p = prefix();
  const t = await open(s, p, { maxRedeliveries: 2, visibilityTimeoutSeconds: 5 });
  try {
    const counts: number[] = [];
    const sub = await t.subscribe({ agent: "bob" }, async (d) => {
      counts.push(d.redeliveries);
      await d.nack();
    });
    await t.publish({ agent: "bob" }, enc("poison"), { dedupId: "p1" });
    await sleep(3000);
    await sub.close();
    assert.deepEqual(counts, [0, 1, 2], "maxRedeliveries 2 allows three receives");
    const dlq = await t.deadLetterQueue("bob");
    const r = await t.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: dlq.url, WaitTimeSeconds: 1, MessageAttributeNames: ["All"] }),
    );
    assert.equal(r.Messages?.length, 1);
    assert.equal(dec(r.Messages![0]!.MessageAttributes!.s!.BinaryValue!), "poison");
  } finally {
    await t.close();
  }
});

sqsTest("a channel fans out through SNS to three members; the one that was away catches up", async (s) => {
  const p = prefix();
  const t = await open(s, p);
  try {
    const received = new Map<string, string[]>([["m1", []], ["m2", []], ["m3", []]]);
    const subs = new Map<string, { close(): Promise<void> }>();
    for (const m of received.keys()) {
      subs.set(
        m,
        await t.subscribe({ channel: "ops" }, async (d) => {
          received.get(m)!.push(dec(d.bytes));
          await d.ack();
        }, { member: m }),
      );
    }
    await subs.get("m3")!.close(); // away
    for (let i = 0; i < 5; i++) await t.publish({ channel: "ops" }, enc(`b${i}`));
    await until(() => received.get("m1")!.length === 5 && received.get("m2")!.length === 5, 8000, "m1, m2");
    assert.deepEqual(received.get("m3"), []);
    await t.subscribe({ channel: "ops" }, async (d) => {
      received.get("m3")!.push(dec(d.bytes));
      await d.ack();
    }, { member: "m3" });
    await until(() => received.get("m3")!.length === 5, 8000, "m3 catching up");
    for (const got of received.values()) assert.deepEqual(got.sort(), ["b0", "b1", "b2", "b3", "b4"]);
  } finally {
    await t.close();
  }
});

sqsTest("FIFO queues keep one sender's order and drop a duplicate publication", async (s) => {
  const p = prefix();
  const t = await open(s, p, { fifo: true });
  try {
    assert.equal(t.capabilities.ordered, true);
    const got: string[] = [];
    const sub = await t.subscribe({ agent: "bob" }, async (d) => {
      got.push(dec(d.bytes));
      await d.ack();
    });
    const sends = [];
    for (let i = 0; i < 30; i++) sends.push(t.publish({ agent: "bob" }, enc(`f${i}`), { dedupId: `id${i}` }));
    await Promise.all(sends);
    await t.publish({ agent: "bob" }, enc("f0 again"), { dedupId: "id0" });
    await until(() => got.length >= 30, 15_000, "30 FIFO messages");
    await sleep(1200);
    await sub.close();
    assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => `f${i}`));
  } finally {
    await t.close();
  }
});

sqsTest("cards live in queue tags, verified on read; a tampered or misfiled card is refused", async (s) => {
  const p = prefix();
  const t = await open(s, p);
  try {
    const identity = await Identity.generate({ postQuantumSignatures: true });
    const card = await createCard("carol", identity);
    const seen: string[] = [];
    const stop = t.directory.watch((c) => seen.push(c.id));
    await sleep(300);
    await t.directory.publish(card);
    const found = await t.directory.lookup("carol");
    assert.equal(found?.id, "carol");
    assert.equal(await t.directory.lookup("nobody"), undefined);
    await until(() => seen.includes("carol"), 8000, "watch");
    stop();
    // Tamper with one character of the stored card.
    const url = (await t.sqs.send(new GetQueueUrlCommand({ QueueName: sqsName(p, "a", "carol") }))).QueueUrl;
    const { ListQueueTagsCommand } = await import("@aws-sdk/client-sqs");
    const tags = (await t.sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags!;
    const chunk = tags["spores:card:3"]!;
    const flipped = chunk[10] === "A" ? "B" : "A";
    await t.sqs.send(
      new TagQueueCommand({
        QueueUrl: url,
        Tags: { "spores:card:3": chunk.slice(0, 10) + flipped + chunk.slice(11) },
      }),
    );
    await assert.rejects(() => t.directory.lookup("carol"));
    // Dave's queue holding carol's card.
    const dave = await t.agentQueue("dave");
    await t.sqs.send(new TagQueueCommand({ QueueUrl: dave.url, Tags: tags }));
    await assert.rejects(() => t.directory.lookup("dave"), /filed under dave/);
  } finally {
    await t.close();
  }
});

sqsTest(
  "agents by sqs:// URL: handshake, send, broadcast, and a failing handler dead-lettered",
  async (s) => {
    const p = prefix();
    const transportOptions = sqsOptions(p, { maxRedeliveries: 2, visibilityTimeoutSeconds: 5 });
    await using alice = await Agent.start({ id: "alice", transport: s.url, transportOptions });
    await using bob = await Agent.start({
      id: "bob",
      transport: s.url,
      transportOptions,
      maxRedeliveries: 2,
    });
    assert.equal(alice.transport.name, "sqs");
    const chat = Promise.withResolvers<Message>();
    bob.on("chat", (m) => chat.resolve(m));
    let attempts = 0;
    bob.on("poison", () => {
      attempts++;
      throw new Error("cannot handle");
    });
    const dead = Promise.withResolvers<DeadLetter>();
    bob.addEventListener("dead-letter", (e) => dead.resolve((e as CustomEvent<DeadLetter>).detail));
    const news = Promise.withResolvers<Message>();
    bob.on("news", (m) => news.resolve(m));
    const ops = { members: ["alice", "bob"] };
    alice.setMembers("ops", ops);
    await bob.join("ops", ops);
    await alice.connect("bob");
    await alice.send("bob", { type: "chat", content: { text: "over sqs" } });
    assert.deepEqual((await chat.promise).content, { text: "over sqs" });
    await alice.broadcast("ops", { type: "news", content: "to all" });
    assert.equal((await news.promise).content, "to all");
    await alice.send("bob", { type: "poison", content: 1 });
    const letter = await dead.promise;
    assert.equal(letter.attempts, 3);
    assert.equal(attempts, 3);
    const dlq = await (bob.transport as SqsTransport).deadLetterQueue("bob");
    const r = await (bob.transport as SqsTransport).sqs.send(
      new ReceiveMessageCommand({ QueueUrl: dlq.url, WaitTimeSeconds: 2 }),
    );
    assert.equal(r.Messages?.length, 1, "the dead letter is not in the dead-letter queue");
  },
);

sqsTest("a queue deleted under a subscription is created again, and receives", async (s) => {
  const p = prefix();
  const t = await open(s, p);
  try {
    const got: string[] = [];
    await t.subscribe({ agent: "bob" }, async (d) => {
      got.push(dec(d.bytes));
      await d.ack();
    });
    const q = await t.agentQueue("bob");
    await t.sqs.send(new DeleteQueueCommand({ QueueUrl: q.url }));
    const name = sqsName(p, "a", "bob");
    let back = false;
    const end = Date.now() + 10_000;
    while (!back && Date.now() < end) {
      await sleep(200);
      back = await t.sqs.send(new GetQueueUrlCommand({ QueueName: name })).then(() => true, () => false);
    }
    assert.ok(back, "the queue was not created again");
    await t.publish({ agent: "bob" }, enc("after"));
    await until(() => got.includes("after"), 8000, "delivery after re-creation");
  } finally {
    await t.close();
  }
});

sqsTest("a message this transport did not send goes to the dead-letter queue, no handler runs", async (s) => {
  const p = prefix();
  const t = await open(s, p);
  try {
    let handled = 0;
    const sub = await t.subscribe({ agent: "bob" }, async (d) => {
      handled++;
      await d.ack();
    });
    const q = await t.agentQueue("bob");
    await t.sqs.send(
      new SendMessageCommand({
        QueueUrl: q.url,
        MessageBody: "not a spore",
        MessageAttributes: { origin: { DataType: "String", StringValue: "elsewhere" } },
      }),
    );
    const dlq = await t.deadLetterQueue("bob");
    let moved: SqsMessage | undefined;
    const end = Date.now() + 8000;
    while (!moved && Date.now() < end) {
      const r = await t.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: dlq.url, WaitTimeSeconds: 1, MessageAttributeNames: ["All"] }),
      );
      moved = r.Messages?.[0];
    }
    await sub.close();
    assert.equal(moved?.Body, "not a spore");
    assert.equal(moved?.MessageAttributes?.origin?.StringValue, "elsewhere");
    assert.equal(handled, 0);
  } finally {
    await t.close();
  }
});

Deno.test({
  name: "sqs: an unreachable endpoint is a TransportError, a bad URL or option a ConfigError",
  ...noSanitize,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    await assert.rejects(
      () => createTransport(`sqs://us-east-1?endpoint=http://127.0.0.1:${port}`, sqsOptions("x")),
      (e: Error) => e instanceof TransportError && /cannot reach SQS/.test(e.message),
    );
    await assert.rejects(() => createTransport("sqs://", sqsOptions("x")), /region/);
    await assert.rejects(() => createTransport("redis://x", sqsOptions("x")), /sqs:\/\//);
    await assert.rejects(() => createTransport("sqs://us-east-1", sqsOptions("bad_prefix")), /prefix/);
    await assert.rejects(
      () => createTransport("sqs://us-east-1", sqsOptions("x", { visibilityTimeoutSeconds: 0 })),
      /visibilityTimeoutSeconds/,
    );
  },
});

sqsTest("agents on FIFO queues and topics: cards, handshake, ordered sends, broadcast", async (s) => {
  const p = prefix();
  const transportOptions = sqsOptions(p, { fifo: true });
  await using alice = await Agent.start({ id: "alice", transport: `${s.url}&fifo=1`, transportOptions });
  await using bob = await Agent.start({ id: "bob", transport: s.url, transportOptions });
  assert.equal(bob.transport.capabilities.ordered, true);
  const got: number[] = [];
  bob.on("n", (m) => void got.push(m.content as number));
  const news = Promise.withResolvers<Message>();
  bob.on("news", (m) => news.resolve(m));
  const ops = { members: ["alice", "bob"] };
  alice.setMembers("ops", ops);
  await bob.join("ops", ops);
  await alice.connect("bob");
  for (let i = 0; i < 20; i++) await alice.send("bob", { type: "n", content: i });
  await alice.broadcast("ops", { type: "news", content: "fifo" });
  assert.equal((await news.promise).content, "fifo");
  await until(() => got.length === 20, 10_000, "20 ordered messages");
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i));
});

Deno.test({
  name: "sqs: the server goes away and comes back empty; publishing fails meanwhile, receiving resumes",
  ...noSanitize,
  fn: async () => {
    let own = await startSqs();
    const port = own.port;
    const t = await open(own, prefix(), { closeGraceMs: 500 });
    try {
      const got: string[] = [];
      await t.subscribe({ agent: "bob" }, async (d) => {
        got.push(dec(d.bytes));
        await d.ack();
      });
      await t.publish({ agent: "bob" }, enc("before"));
      await until(() => got.includes("before"), 5000, "delivery before the outage");
      await own.stop();
      await assert.rejects(() => t.publish({ agent: "bob" }, enc("during")), TransportError);
      own = await startSqs(port); // in memory: every queue is gone
      let sent = false;
      const end = Date.now() + 15_000;
      while (!sent && Date.now() < end) {
        // The subscription creates its queue again; until then a publish finds no queue.
        sent = await t.publish({ agent: "bob" }, enc("after")).then(() => true, () => false);
        if (!sent) await sleep(200);
      }
      assert.ok(sent, "no publish succeeded after the server came back");
      await until(() => got.includes("after"), 8000, "delivery after the outage");
      assert.ok(!got.includes("during"));
    } finally {
      await t.close();
      await own.stop();
    }
  },
});

Deno.test({
  name: "sqs: stop the test server",
  ...noSanitize,
  fn: async () => void await server?.stop(),
});
