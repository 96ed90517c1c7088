// Link events: every broker transport reports its link lost and back, once per outage and in order, and the
// agent re-emits them as `disconnected` / `reconnected`; a message sent after the link is back arrives.
// Transport dead letters: a message a transport moves to its dead-letter store by itself reaches the agent's
// metrics and its `dead-letter` event.
import assert from "node:assert/strict";
import { Agent, type DeadLetter, type Disconnected, Identity, type Reconnected } from "../mod.ts";
import { RedisSessionStore, RedisTransport } from "../transports/redis.ts";
import { spawnFixture } from "./_process.ts";
import { cleanRabbit, cleanRedis } from "./_cleanup.ts";
import { requireBroker, requireTool } from "./_env.ts";
import { startRedisCluster } from "./_redis_cluster.ts";
import { type Relay, startRelay } from "./_relay.ts";
import { sqsOptions, startSqs } from "./_fauxqs.ts";
import { cleanNats, natsPrefix } from "./_nats.ts";
import { MqttTransport } from "../transports/mqtt.ts";

const until = async (cond: () => boolean | Promise<boolean>, ms = 30_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

interface LinkCase {
  /** The broker's port (the relay's target). */
  port: number;
  /** The URL of the broker at `port` (direct, or through the relay). */
  url(port: number): string;
  transportOptions?: Record<string, unknown>;
  /** Removes what the test made. */
  clean?(): Promise<void>;
  /** Makes the outage (`seen`: the link events so far); default: one cut of every relayed connection. */
  outage?(relay: Relay, seen: () => string[]): Promise<void>;
}

/**
 * Bob's link goes through a relay that is cut once; alice's goes straight to the broker. Bob's agent reports
 * `disconnected` then `reconnected`, once each; then messages go both ways again.
 */
async function linkLostAndBack(c: LinkCase): Promise<void> {
  const relay = startRelay(c.port);
  const events: { type: string; detail: Disconnected | Reconnected }[] = [];
  let alice: Agent | undefined;
  let bob: Agent | undefined;
  try {
    alice = await Agent.start({
      id: "alice",
      transport: c.url(c.port),
      transportOptions: c.transportOptions,
    });
    bob = await Agent.start({
      id: "bob",
      transport: c.url(relay.port),
      transportOptions: c.transportOptions,
    });
    bob.addEventListener("disconnected", (e) => events.push({ type: e.type, detail: e.detail }));
    bob.addEventListener("reconnected", (e) => events.push({ type: e.type, detail: e.detail }));
    const atBob: string[] = [];
    const atAlice: string[] = [];
    bob.on("note", (m) => void atBob.push(m.content as string));
    alice.on("note", (m) => void atAlice.push(m.content as string));
    await alice.connect("bob");
    await alice.send("bob", { type: "note", content: "before" });
    await until(() => atBob.includes("before"), 30_000, "bob got the message sent before the cut");
    assert.equal(events.length, 0, "no link event while the link works");

    if (c.outage) await c.outage(relay, () => events.map((e) => e.type));
    else assert.ok(relay.cut() > 0, "the relay carried bob's connections");
    await until(() => events.some((e) => e.type === "reconnected"), 60_000, "reconnected");
    await new Promise((r) => setTimeout(r, 1000)); // time for a second, wrong event to show
    assert.deepEqual(events.map((e) => e.type), ["disconnected", "reconnected"]);
    const [down, up] = events.map((e) => e.detail) as [Disconnected, Reconnected];
    assert.equal(down.transport, bob.transport.name);
    assert.equal(down.broker, up.broker);
    assert.ok(down.broker.includes(`127.0.0.1:${relay.port}`), down.broker);
    assert.ok(!/guest|secret|@/.test(down.broker), "no credentials in the broker address");
    assert.equal(typeof down.reason, "string");
    assert.ok(up.downMs >= 0);
    assert.equal(bob.metrics().disconnections, 1);

    await alice.send("bob", { type: "note", content: "after" });
    await until(() => atBob.includes("after"), 60_000, "bob got the message sent after the reconnection");
    await bob.send("alice", { type: "note", content: "from bob" });
    await until(() => atAlice.includes("from bob"), 60_000, "alice got bob's message sent after it");
    assert.deepEqual(events.map((e) => e.type), ["disconnected", "reconnected"], "still one outage");
  } finally {
    await bob?.close().catch(() => {});
    await alice?.close().catch(() => {});
    relay.close();
    await c.clean?.();
  }
}

interface DeadLetterCase {
  url: string;
  /** Transport options that set its own delivery limit to 2. */
  transportOptions: Record<string, unknown>;
  /** Attempts the transport reports when it gives up. */
  attempts: number;
  clean?(): Promise<void>;
}

/**
 * Bob's handler always fails and his agent would try 10 times; his transport gives up after 2 deliveries and
 * dead-letters the message itself. Bob's agent counts it and raises one `dead-letter` event (source transport).
 */
async function transportDeadLetter(c: DeadLetterCase): Promise<void> {
  let alice: Agent | undefined;
  let bob: Agent | undefined;
  try {
    alice = await Agent.start({ id: "alice", transport: c.url, transportOptions: c.transportOptions });
    bob = await Agent.start({
      id: "bob",
      transport: c.url,
      transportOptions: c.transportOptions,
      maxRedeliveries: 10,
      refusals: "silent",
    });
    const seen: DeadLetter[] = [];
    bob.addEventListener("dead-letter", (e) => void seen.push(e.detail));
    let calls = 0;
    bob.on("fail", () => {
      calls++;
      throw new Error("this handler always fails");
    });
    await alice.connect("bob");
    await alice.send("bob", { type: "fail", content: "x" });
    await until(() => seen.length === 1, 60_000, "the transport's dead letter reached the agent");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(seen.length, 1);
    const d = seen[0]!;
    assert.equal(d.source, "transport");
    if (d.source !== "transport") return;
    assert.equal(d.transport, bob.transport.name);
    assert.deepEqual(d.address, { agent: "bob" });
    assert.ok(d.size > 0);
    assert.equal(d.attempts, c.attempts);
    assert.ok(calls >= 2 && calls <= c.attempts, `${calls} handler calls`);
    const m = bob.metrics();
    assert.equal(m.transportDeadLetters, 1);
    assert.equal(m.deadLetters, 1);
  } finally {
    await bob?.close().catch(() => {});
    await alice?.close().catch(() => {});
    await c.clean?.();
  }
}

const fresh = () => `spores-test-${crypto.randomUUID().slice(0, 8)}`;

/** Removes the persistent sessions (agents' and dead letters') and retained cards a test made on Mosquitto. */
async function cleanMqtt(prefix: string): Promise<void> {
  const t = await MqttTransport.connect("mqtt://127.0.0.1:1883", { prefix });
  try {
    for (const id of ["alice", "bob"]) {
      await t.removeSession(`${prefix}/agent/${id}`);
      await t.removeSession(`${prefix}/dlq/${id}`);
      await t.directory.remove(id);
    }
  } finally {
    await t.close();
  }
}

Deno.test("events: memory transport has no link to lose and reports nothing", async () => {
  const alice = await Agent.start({ id: "alice", transport: `memory://${fresh()}` });
  try {
    assert.equal(alice.transport.events, undefined);
    assert.equal(alice.metrics().disconnections, 0);
  } finally {
    await alice.close();
  }
});

Deno.test("events: redis link lost and back", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = fresh();
  await linkLostAndBack({
    port: 6379,
    url: (port) => `redis://127.0.0.1:${port}`,
    transportOptions: { prefix, blockMs: 200 },
    clean: () => cleanRedis(prefix),
  });
});

Deno.test("events: redis link gone silent (frozen, not closed) and back", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = fresh();
  await linkLostAndBack({
    port: 6379,
    url: (port) => `redis://127.0.0.1:${port}`,
    transportOptions: { prefix, blockMs: 200 },
    clean: () => cleanRedis(prefix),
    // No socket closes: the blocking read that gets no answer in blockMs + 5 s is the link lost.
    outage: async (relay, seen) => {
      relay.freeze();
      await until(() => seen().includes("disconnected"), 30_000, "disconnected while frozen");
      relay.thaw();
    },
  });
});

Deno.test("events: amqp link gone silent is found by the heartbeat", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const prefix = fresh();
  await linkLostAndBack({
    port: 5672,
    url: (port) => `amqp://guest:guest@127.0.0.1:${port}`,
    transportOptions: { exchange: prefix, heartbeatSeconds: 1 },
    clean: () => cleanRabbit(prefix),
    outage: async (relay, seen) => {
      relay.freeze();
      await until(() => seen().includes("disconnected"), 30_000, "disconnected while frozen");
      relay.thaw();
    },
  });
});

Deno.test("events: amqp link lost and back", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const prefix = fresh();
  await linkLostAndBack({
    port: 5672,
    url: (port) => `amqp://guest:guest@127.0.0.1:${port}`,
    transportOptions: { exchange: prefix },
    clean: () => cleanRabbit(prefix),
  });
});

Deno.test("events: redis dead-letters an entry past its delivery limit, and the agent counts it", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = fresh();
  const { Redis } = await import("ioredis");
  const raw = new Redis("redis://127.0.0.1:6379", { lazyConnect: true });
  let bob: Agent | undefined;
  try {
    await raw.connect();
    // An entry that 16 consumers took and none acknowledged (their processes died), idle since.
    const stream = `${prefix}:agent:{bob}`;
    await raw.xgroup("CREATE", stream, "bob", "0", "MKSTREAM");
    const id = await raw.xadd(stream, "*", "d", "sealed bytes", "p", "4", "e", "0", "i", "");
    await raw.xreadgroup("GROUP", "bob", "dead-1", "COUNT", 1, "STREAMS", stream, ">");
    for (let i = 2; i <= 16; i++) await raw.xclaim(stream, "bob", `dead-${i}`, 0, id!);
    await new Promise((r) => setTimeout(r, 150));
    const seen: DeadLetter[] = [];
    const listening = Promise.withResolvers<void>();
    bob = await Agent.start({
      id: "bob",
      transport: "redis://127.0.0.1:6379",
      transportOptions: { prefix, visibilityTimeoutMs: 100, claimIntervalMs: 100, blockMs: 100 },
      handlers: {},
    });
    bob.addEventListener("dead-letter", (e) => {
      seen.push(e.detail);
      listening.resolve();
    });
    await until(() => seen.length === 1, 20_000, "the transport's dead letter reached the agent");
    const d = seen[0]!;
    assert.equal(d.source, "transport");
    if (d.source !== "transport") return;
    assert.equal(d.transport, "redis");
    assert.deepEqual(d.address, { agent: "bob" });
    assert.equal(d.size, "sealed bytes".length);
    assert.equal(d.attempts, 17);
    assert.equal(d.store, `${prefix}:dlq:{bob}`);
    assert.match(d.reason, /limit 16/);
    const m = bob.metrics();
    assert.equal(m.transportDeadLetters, 1);
    assert.equal(m.deadLetters, 1);
    assert.equal(await raw.xlen(`${prefix}:dlq:{bob}`), 1, "moved to the dead-letter stream");
    const pending = await raw.xpending(stream, "bob") as unknown[];
    assert.equal(Number(pending[0]), 0, "and acknowledged in the agent's stream");
  } finally {
    await bob?.close();
    raw.disconnect();
    await cleanRedis(prefix);
  }
});

Deno.test("events: redis dead-letters after its own limit (a handler that always fails), and the agent counts it", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = fresh();
  await transportDeadLetter({
    url: "redis://127.0.0.1:6379",
    transportOptions: { prefix, maxDeliveries: 2, blockMs: 100 },
    attempts: 3,
    clean: () => cleanRedis(prefix),
  });
});

Deno.test("events: mqtt link lost and back", async () => {
  if (!(await requireBroker("Mosquitto", 1883))) return;
  const prefix = fresh();
  await linkLostAndBack({
    port: 1883,
    url: (port) => `mqtt://127.0.0.1:${port}`,
    transportOptions: { prefix },
    clean: () => cleanMqtt(prefix),
  });
});

Deno.test("events: mqtt dead-letters after its own limit, and the agent counts it", async () => {
  if (!(await requireBroker("Mosquitto", 1883))) return;
  const prefix = fresh();
  await transportDeadLetter({
    url: "mqtt://127.0.0.1:1883",
    transportOptions: { prefix, maxDeliveries: 2 },
    attempts: 2,
    clean: () => cleanMqtt(prefix),
  });
});

Deno.test("events: stomp link lost and back", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const prefix = fresh();
  await linkLostAndBack({
    port: 61613,
    url: (port) => `stomp://guest:guest@127.0.0.1:${port}`,
    transportOptions: { prefix },
    clean: () => cleanRabbit(prefix),
  });
});

Deno.test("events: amqp with ?nodes= fails over to the next node and reports the link back", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const prefix = fresh();
  await linkLostAndBack({
    port: 5672,
    url: (port) =>
      port === 5672
        ? "amqp://guest:guest@127.0.0.1:5672"
        : `amqp://guest:guest@127.0.0.1:${port}?nodes=127.0.0.1:5672`,
    transportOptions: { exchange: prefix },
    clean: () => cleanRabbit(prefix),
  });
});

Deno.test("events: nats link lost and back", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const prefix = natsPrefix();
  await linkLostAndBack({
    port: 4222,
    url: (port) => `nats://127.0.0.1:${port}`,
    transportOptions: { prefix },
    clean: () => cleanNats(prefix),
  });
});

Deno.test("events: nats dead-letters after its own limit, and the agent counts it", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const prefix = natsPrefix();
  await transportDeadLetter({
    url: "nats://127.0.0.1:4222",
    transportOptions: { prefix, maxRedeliveries: 1 },
    attempts: 2,
    clean: () => cleanNats(prefix),
  });
});

Deno.test("events: sqs requests failing and answered again are the link lost and back", async () => {
  const sqs = await startSqs();
  try {
    const prefix = fresh();
    await linkLostAndBack({
      port: sqs.port,
      url: (port) => `sqs://us-east-1?endpoint=${encodeURIComponent(`http://127.0.0.1:${port}`)}`,
      transportOptions: sqsOptions(prefix),
      // HTTP opens a new connection for each retry: refuse every one for a while, so the SDK's retries fail.
      outage: async (relay) => {
        const end = Date.now() + 3000;
        let cut = 0;
        while (Date.now() < end) {
          cut += relay.cut();
          await new Promise((r) => setTimeout(r, 5));
        }
        assert.ok(cut > 0, "the relay carried bob's requests");
      },
    });
  } finally {
    await sqs.stop();
  }
});

Deno.test("events: sqs dead-letters at the receive limit, and the agent counts it", async () => {
  const sqs = await startSqs();
  try {
    await transportDeadLetter({
      url: sqs.url,
      transportOptions: sqsOptions(fresh(), { maxRedeliveries: 1 }),
      attempts: 2,
    });
  } finally {
    await sqs.stop();
  }
});

Deno.test({
  name: "events: redis cluster primary lost and failed over is the link lost and back",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    if (!(await requireTool("redis-server and redis-cli", ["redis-cli", "--version"]))) return;
    const cluster = await startRedisCluster();
    let alice: Agent | undefined;
    let bob: Agent | undefined;
    try {
      await cluster.waitOk();
      const prefix = fresh();
      const transportOptions = { prefix, blockMs: 200, visibilityTimeoutMs: 1500, claimIntervalMs: 300 };
      alice = await Agent.start({ id: "alice", transport: cluster.url, transportOptions });
      bob = await Agent.start({ id: "bob", transport: cluster.url, transportOptions });
      const events: string[] = [];
      bob.addEventListener("disconnected", (e) => events.push(`${e.type} ${e.detail.reason}`));
      bob.addEventListener("reconnected", (e) => events.push(e.type));
      const atBob: string[] = [];
      bob.on("note", (m) => void atBob.push(m.content as string));
      await alice.connect("bob");
      await alice.send("bob", { type: "note", content: "before" });
      await until(() => atBob.includes("before"));
      cluster.kill(await cluster.primaryOf(`${prefix}:agent:{bob}`));
      await until(() => events.includes("reconnected"), 60_000, "reconnected");
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(events.length, 2, events.join("; "));
      assert.match(events[0]!, /^disconnected/);
      assert.equal(events[1], "reconnected");
      await alice.send("bob", { type: "note", content: "after" });
      await until(() => atBob.includes("after"), 60_000, "bob got the message sent after the failover");
    } finally {
      await bob?.close().catch(() => {});
      await alice?.close().catch(() => {});
      await cluster.stop();
    }
  },
});

Deno.test("events: redis dead-letters a message whose handler's process was SIGKILLed, and the restarted agent counts it", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = fresh();
  const identity = await Identity.generate({ extractable: true });
  const passphrase = crypto.randomUUID();
  const file = await Deno.makeTempFile({ suffix: ".key" });
  await Deno.writeFile(file, await identity.seal(passphrase, { logN: 10, r: 8, p: 1 }));
  const dying = spawnFixture("redis_bob.ts", [file, passphrase, prefix, "hang"]);
  let alice: Agent | undefined;
  let bob: Agent | undefined;
  let transport: RedisTransport | undefined;
  try {
    await until(() => dying.lines.includes("ready"), 30_000, "bob's process ready");
    alice = await Agent.start({
      id: "alice",
      transport: "redis://127.0.0.1:6379",
      transportOptions: { prefix },
    });
    await alice.connect("bob");
    await alice.send("bob", { type: "n", content: 1 });
    await until(() => dying.got().includes(1), 30_000, "bob's process took the message");
    dying.child.kill("SIGKILL");
    await dying.child.status;
    // Bob again, with a delivery limit of 1: the message its dead process held is its second delivery.
    transport = await RedisTransport.connect("redis://127.0.0.1:6379", {
      prefix,
      maxDeliveries: 1,
      visibilityTimeoutMs: 300,
      claimIntervalMs: 100,
      blockMs: 200,
    });
    const seen: DeadLetter[] = [];
    let handled = 0;
    bob = await Agent.start({
      id: "bob",
      transport,
      identity: await Identity.open(await Deno.readFile(file), passphrase),
      store: new RedisSessionStore(transport.client, "bob", { prefix }),
      handlers: { n: () => void handled++ },
    });
    bob.addEventListener("dead-letter", (e) => void seen.push(e.detail));
    await until(() => seen.length === 1, 30_000, "the transport's dead letter reached the restarted agent");
    const d = seen[0]!;
    assert.ok(d.source === "transport");
    assert.equal(d.attempts, 2);
    assert.equal(handled, 0, "not handed to a handler past the limit");
    assert.equal(bob.metrics().transportDeadLetters, 1);
    assert.equal(await transport.client.xlen(`${prefix}:dlq:{bob}`), 1);
  } finally {
    try {
      dying.child.kill("SIGKILL");
    } catch { /* gone */ }
    await dying.child.status;
    await dying.reading;
    await bob?.close().catch(() => {});
    await transport?.close().catch(() => {});
    await alice?.close().catch(() => {});
    await Deno.remove(file).catch(() => {});
    await cleanRedis(prefix);
  }
});
