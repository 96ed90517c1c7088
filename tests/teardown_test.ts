// Teardown on every broker: `Transport.purge` and `Agent.destroy` remove what an agent created (its queue with
// the spores waiting there, dead letters, card, session state, channel memberships), checked with each broker's
// own client; another agent's state is untouched, and an agent started again under the same id gets none of
// the old spores.
import assert from "node:assert/strict";
import { connect as amqpConnect } from "amqplib";
import { Redis } from "ioredis";
import mqtt from "mqtt";
import { GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { ListSubscriptionsByTopicCommand, ListTopicsCommand, SNSClient } from "@aws-sdk/client-sns";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { Agent, ConfigError, createCard, Identity, openTransport, type Transport } from "../mod.ts";
import { MemoryBroker, MemoryTransport } from "../transports/memory.ts";
import { RedisSessionStore, type RedisTransport } from "../transports/redis.ts";
import { sqsName } from "../transports/sqs/names.ts";
import { consumerNames } from "../transports/nats/subjects.ts";
import { cleanRabbit, cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { type Fauxqs, FAUXQS_CREDENTIALS, startSqs } from "./_fauxqs.ts";
import { cleanNats, NATS_URL, natsPrefix } from "./_nats.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const unique = () => `spores-td-${crypto.randomUUID().slice(0, 8)}`;
const CHANNEL = "news";
const SENT = 3;

/** One broker: how to open the transport under test, and how to look at the broker without it. */
interface Case {
  name: string;
  available(): Promise<boolean>;
  url: string;
  options: Record<string, unknown>;
  /** What of `agent` the broker still holds (names), seen with the broker's own client. */
  residue(agent: string): Promise<string[]>;
  clean(): Promise<void>;
}

/** Deliveries a fresh subscription gets within `ms` (each acknowledged). */
/**
 * Counts what a subscription to `from` receives: until `expect` arrived (then a short while more, for any
 * extra), or, when nothing is expected, for a while in which anything left over would have come.
 */
async function drain(
  t: Transport,
  from: { agent: string } | { channel: string },
  member: string | undefined,
  expect: number,
) {
  let n = 0;
  const sub = await t.subscribe(from, async (d) => {
    n++;
    await d.ack();
  }, { member });
  if (expect === 0) await sleep(1500);
  else {
    const end = Date.now() + 10_000;
    while (n < expect && Date.now() < end) await sleep(20);
    await sleep(300);
  }
  await sub.close();
  return n;
}

async function scenario(c: Case): Promise<void> {
  if (!(await c.available())) return;
  const t = await openTransport(c.url, c.options);
  try {
    // Both agents' queues and memberships exist, hold spores, and both have a card.
    for (const id of ["worker", "keeper"]) {
      await (await t.subscribe({ agent: id }, (d) => d.nack())).close();
      await (await t.subscribe({ channel: CHANNEL }, (d) => d.nack(), { member: id })).close();
      await t.directory!.publish(await createCard(id, await Identity.generate()));
    }
    for (let i = 0; i < SENT; i++) {
      for (const id of ["worker", "keeper"]) await t.publish({ agent: id }, new Uint8Array([1, i]));
      await t.publish({ channel: CHANNEL }, new Uint8Array([2, i]));
    }
    await sleep(300);
    assert.ok((await c.residue("worker")).length > 0, "the worker's state exists before the purge");

    const report = await t.purge!("worker", { channels: [CHANNEL] });
    assert.ok(report.removed.length > 0, "the report names what was removed");
    assert.deepEqual(await c.residue("worker"), [], "nothing of the worker remains on the broker");

    // A fresh connection (no cached card) finds no card for the worker, and the keeper's as it was.
    const fresh = await openTransport(c.url, c.options);
    try {
      assert.equal(await fresh.directory!.lookup("worker"), undefined, "the worker's card is gone");
      assert.ok(await fresh.directory!.lookup("keeper"), "the keeper's card stays");
      // The worker, subscribed again under the same id, gets none of the old spores.
      assert.equal(
        await drain(fresh, { agent: "worker" }, undefined, 0),
        0,
        "no old direct spore for the worker",
      );
      assert.equal(
        await drain(fresh, { channel: CHANNEL }, "worker", 0),
        0,
        "no old broadcast for the worker",
      );
      // The keeper's spores all wait for it.
      assert.equal(
        await drain(fresh, { agent: "keeper" }, undefined, SENT),
        SENT,
        "the keeper's direct spores stay",
      );
      assert.equal(
        await drain(fresh, { channel: CHANNEL }, "keeper", SENT),
        SENT,
        "the keeper's broadcasts stay",
      );
      await fresh.purge!("worker", { channels: [CHANNEL] });
      await fresh.purge!("keeper", { channels: [CHANNEL] });
    } finally {
      await fresh.close();
    }
  } finally {
    await t.close();
    await c.clean();
  }
}

// ---------------------------------------------------------------------------------------------------- memory

Deno.test("teardown memory: purge removes the agent's queue, membership and card, and nothing else", async () => {
  const name = unique();
  const broker = MemoryBroker.named(name);
  await scenario({
    name: "memory",
    available: () => Promise.resolve(true),
    url: `memory://${name}`,
    options: {},
    residue: async (agent) => {
      const left: string[] = [];
      if (broker.depth(agent) > 0) left.push(`agent/${agent}`);
      if (await broker.directory.lookup(agent)) left.push(`card/${agent}`);
      return left;
    },
    clean: () => Promise.resolve(MemoryBroker.drop(name)),
  });
});

Deno.test("teardown memory: a subscription still reading keeps its queue", async () => {
  const t = new MemoryTransport(new MemoryBroker());
  const sub = await t.subscribe({ agent: "busy" }, (d) => d.ack());
  const report = await t.purge("busy");
  assert.deepEqual(report.removed, []);
  assert.equal(report.kept[0]?.name, "agent/busy");
  await sub.close();
  assert.deepEqual((await t.purge("busy")).removed, ["agent/busy"]);
  await t.close();
});

// ----------------------------------------------------------------------------------------------------- redis

const REDIS = "redis://127.0.0.1:6379";

function redisCase(prefix: string): Case {
  return {
    name: "redis",
    available: () => requireBroker("Redis", 6379),
    url: REDIS,
    options: { prefix, blockMs: 200, claimIntervalMs: 300 },
    residue: async (agent) => {
      const r = new Redis(6379, "127.0.0.1", { lazyConnect: true });
      await r.connect();
      try {
        const left = (await r.keys(`${prefix}:*`)).filter((k) => k.includes(`{${agent}}`));
        if (await r.hexists(`${prefix}:cards`, agent)) left.push(`card ${agent}`);
        const stream = `${prefix}:channel:{${CHANNEL}}`;
        if (await r.exists(stream)) {
          const groups = await r.xinfo("GROUPS", stream) as unknown[][];
          for (const g of groups) if (String(g[1]) === agent) left.push(`${stream} group ${agent}`);
        }
        return left.sort();
      } finally {
        r.disconnect();
      }
    },
    clean: () => cleanRedis(prefix),
  };
}

Deno.test("teardown redis: purge removes the agent's stream, groups, card and session keys", async () => {
  await scenario(redisCase(unique()));
});

Deno.test("teardown redis: destroy removes the session store's keys, and the same id starts afresh", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = unique();
  const c = redisCase(prefix);
  const opts = { prefix, blockMs: 200, claimIntervalMs: 300 };
  const transport = await openTransport(REDIS, opts) as RedisTransport;
  try {
    const start = (id: string) =>
      Agent.start({
        id,
        transport,
        store: new RedisSessionStore(transport.client, id, { prefix }),
        refusals: "silent",
      });
    const keeper = await start("keeper");
    const worker = await start("worker");
    await worker.join(CHANNEL, { members: ["worker", "keeper"] });
    await keeper.join(CHANNEL, { members: ["worker", "keeper"] });
    // Sessions both ways: the session stores hold sealed state.
    const got: string[] = [];
    worker.on("ping", (m) => void got.push(String(m.content)));
    keeper.on("ping", () => {});
    await keeper.send("worker", { type: "ping", content: "one" });
    await worker.send("keeper", { type: "ping", content: "back" });
    const end = Date.now() + 10_000;
    while (got.length < 1 && Date.now() < end) await sleep(20);
    assert.deepEqual(got, ["one"]);
    assert.ok((await c.residue("worker")).some((k) => k.includes(":state:")), "session state exists");
    const keeperBefore = await c.residue("keeper");

    const report = await worker.destroy();
    assert.ok(report.removed.includes(`${prefix}:agent:{worker}`));
    assert.deepEqual(await c.residue("worker"), [], "nothing of the worker remains");
    assert.deepEqual(await c.residue("keeper"), keeperBefore, "the keeper's state is untouched");
    await assert.rejects(
      () => worker.send("keeper", { type: "ping" }),
      ConfigError,
      "a destroyed agent is closed",
    );

    // Spores sent to the old worker after its end wait for nobody it knew: a new worker with new keys starts
    // under the same id (its card may replace the old one: the old one is gone) and gets none of them.
    await transport.publish({ agent: "worker" }, new Uint8Array([9]));
    await transport.purge("worker");
    const again = await start("worker");
    const seen: unknown[] = [];
    again.addEventListener("rejected", (e) => seen.push(e.detail));
    again.on("ping", (m) => void seen.push(m));
    await sleep(1500);
    assert.deepEqual(seen, [], "the new worker gets none of the old spores");
    await again.destroy();
    await keeper.destroy();
  } finally {
    await transport.close();
    await c.clean();
  }
});

// ------------------------------------------------------------------------------------------------- rabbitmq

async function rabbitQueues(names: string[]): Promise<Map<string, number>> {
  const conn = await amqpConnect("amqp://guest:guest@127.0.0.1:5672");
  const found = new Map<string, number>();
  try {
    for (const q of names) {
      const ch = await conn.createChannel();
      ch.on("error", () => {});
      try {
        found.set(q, (await ch.checkQueue(q)).messageCount);
        await ch.close();
      } catch {
        // 404: no such queue (the channel is closed by the broker)
      }
    }
  } finally {
    await conn.close();
  }
  return found;
}

Deno.test("teardown amqp: purge deletes the agent's queues, card queue and member queue", async () => {
  const x = unique();
  await scenario({
    name: "amqp",
    available: () => requireBroker("RabbitMQ", 5672),
    url: "amqp://guest:guest@127.0.0.1:5672",
    options: { exchange: x },
    residue: async (agent) => {
      const names = ["agent", "dead", "card"].map((k) => `${x}.${k}.${agent}`);
      return [...(await rabbitQueues([...names, `${x}.channel.${CHANNEL}.${agent}`])).keys()];
    },
    clean: () => cleanRabbit(x),
  });
});

Deno.test("teardown amqp: a member queue whose name another (channel, member) pair could have is kept", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const x = unique();
  const t = await openTransport("amqp://guest:guest@127.0.0.1:5672", { exchange: x });
  try {
    await (await t.subscribe({ channel: "a" }, (d) => d.ack(), { member: "b.c" })).close();
    const report = await t.purge!("c", { channels: ["a.b"] });
    assert.deepEqual(report.kept.map((k) => k.name), [`${x}.channel.a.b.c`]);
    assert.ok(
      (await rabbitQueues([`${x}.channel.a.b.c`])).has(`${x}.channel.a.b.c`),
      "b.c's queue on a stays",
    );
  } finally {
    await t.close();
    await cleanRabbit(x);
  }
});

Deno.test("teardown stomp: purge deletes the agent's queues, card queue and member queue", async () => {
  const prefix = unique();
  await scenario({
    name: "stomp",
    available: () => requireBroker("RabbitMQ STOMP", 61613),
    url: "stomp://guest:guest@127.0.0.1:61613",
    options: { prefix },
    residue: async (agent) => {
      const member = `${prefix}.channel.${CHANNEL}.${agent}`;
      const queues = await rabbitQueues([
        ...["agent", "dead", "card"].map((k) => `${prefix}.${k}.${agent}`),
        member,
      ]);
      return [...queues.keys()];
    },
    clean: () => cleanRabbit(prefix),
  });
});

Deno.test("teardown stomp (amqp topology): purge deletes the agent's, dead-letter and member queues", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const prefix = unique();
  // The AMQP transport declares the exchanges the "amqp" topology needs.
  await (await openTransport("amqp://guest:guest@127.0.0.1:5672", { exchange: prefix })).close();
  await scenario({
    name: "stomp-amqp",
    available: () => Promise.resolve(true),
    url: "stomp://guest:guest@127.0.0.1:61613",
    options: { prefix, topology: "amqp" },
    residue: async (agent) => {
      const member = `${prefix}.channel.${CHANNEL}.${agent}`;
      const queues = await rabbitQueues([
        `${prefix}.agent.${agent}`,
        `${prefix}.dead.${agent}`,
        `${prefix}.stomp-card.${agent}`,
        member,
      ]);
      return [...queues.keys()];
    },
    clean: () => cleanRabbit(prefix),
  });
});

// ------------------------------------------------------------------------------------------------------ mqtt

async function mqttResidue(prefix: string, agent: string): Promise<string[]> {
  const left: string[] = [];
  for (
    const clientId of [
      `${prefix}/agent/${agent}`,
      `${prefix}/dlq/${agent}`,
      `${prefix}/broadcast/${CHANNEL}/${agent}`,
    ]
  ) {
    // Clean start off: an existing session is resumed and reported. Its messages are held unacknowledged (so they
    // stay), and a session this probe made is ended again at once.
    const c = mqtt.connect("mqtt://127.0.0.1:1883", {
      clientId,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: 0,
      customHandleAcks: () => {},
    });
    const present = await new Promise<boolean>((resolve, reject) => {
      c.once("connect", (connack) => resolve(connack.sessionPresent === true));
      c.once("error", reject);
    });
    if (present) await c.endAsync(true);
    else await c.endAsync(false, { properties: { sessionExpiryInterval: 0 } });
    if (present) left.push(`session ${clientId}`);
  }
  const c = await mqtt.connectAsync("mqtt://127.0.0.1:1883", { reconnectPeriod: 0 });
  let card = false;
  c.on("message", (_t, payload) => card ||= payload.length > 0);
  await c.subscribeAsync(`${prefix}/cards/${agent}`, { qos: 1 });
  await sleep(300);
  await c.endAsync(true);
  if (card) left.push(`card ${agent}`);
  return left;
}

Deno.test("teardown mqtt: purge ends the agent's sessions and clears its retained card", async () => {
  const prefix = unique();
  await scenario({
    name: "mqtt",
    available: () => requireBroker("Mosquitto", 1883),
    url: "mqtt://127.0.0.1:1883",
    options: { prefix },
    residue: (agent) => mqttResidue(prefix, agent),
    clean: async () => {
      const t = await openTransport("mqtt://127.0.0.1:1883", { prefix });
      try {
        for (const id of ["worker", "keeper"]) await t.purge!(id, { channels: [CHANNEL] });
      } finally {
        await t.close();
      }
    },
  });
});

// ------------------------------------------------------------------------------------------------------- sqs

let fauxqs: Fauxqs | undefined;

Deno.test("teardown sqs: purge deletes the agent's queues and its SNS subscriptions", async () => {
  fauxqs ??= await startSqs();
  const server = fauxqs;
  const prefix = `td${crypto.randomUUID().slice(0, 8)}`;
  const config = {
    region: "us-east-1",
    endpoint: server.endpoint,
    credentials: FAUXQS_CREDENTIALS,
    // The SDK's own would read the OS release (--allow-sys).
    defaultUserAgentProvider: () => Promise.resolve([["spores-test"]] as [string, string?][]),
  };
  const sqs = new SQSClient(config);
  const sns = new SNSClient(config);
  try {
    await scenario({
      name: "sqs",
      available: () => Promise.resolve(true),
      url: server.url,
      options: { prefix, credentials: FAUXQS_CREDENTIALS, waitTimeSeconds: 1 },
      residue: async (agent) => {
        const left: string[] = [];
        const member = sqsName(prefix, "c", CHANNEL, agent);
        for (const name of [sqsName(prefix, "a", agent), sqsName(prefix, "d", agent), member]) {
          try {
            await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
            left.push(name);
          } catch {
            // no such queue
          }
        }
        const topics = (await sns.send(new ListTopicsCommand({}))).Topics ?? [];
        const topic = topics.find((t) => t.TopicArn?.endsWith(`:${sqsName(prefix, "t", CHANNEL)}`));
        if (topic) {
          const subs = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topic.TopicArn }));
          for (const s of subs.Subscriptions ?? []) {
            if (s.Endpoint?.endsWith(`:${member}`)) left.push(`subscription ${s.SubscriptionArn}`);
          }
        }
        return left;
      },
      clean: () => Promise.resolve(),
    });
  } finally {
    sqs.destroy();
    sns.destroy();
    await server.stop();
    fauxqs = undefined;
  }
});

// ------------------------------------------------------------------------------------------------------ nats

Deno.test("teardown nats: purge deletes the agent's consumers, spores, dead letters and card", async () => {
  const prefix = natsPrefix();
  await scenario({
    name: "nats",
    available: () => requireBroker("NATS", 4222),
    url: NATS_URL,
    options: { prefix },
    residue: async (agent) => {
      const nc = await natsConnect({ servers: "127.0.0.1:4222" });
      const left: string[] = [];
      try {
        const jsm = await jetstreamManager(nc);
        const names = [
          await consumerNames(prefix, { agent }),
          await consumerNames(prefix, { channel: CHANNEL }, agent),
        ];
        for (const n of names) {
          const info = await jsm.consumers.info(prefix, n.durable).catch(() => undefined);
          if (info) left.push(`consumer ${n.durable}`);
        }
        const info = await jsm.streams.info(prefix, { subjects_filter: `${prefix}.>` });
        for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
          if (count > 0 && (subject.startsWith(`${prefix}.agent.${agent}.`) || subject.includes(`.dead.`))) {
            if (subject.endsWith(`.${agent}`) || subject.startsWith(`${prefix}.agent.${agent}.`)) {
              left.push(`${count} on ${subject}`);
            }
          }
        }
        const kv = await jsm.streams.info(`KV_${prefix}_cards`, { subjects_filter: ">" }).catch(() =>
          undefined
        );
        for (const [subject, count] of Object.entries(kv?.state.subjects ?? {})) {
          if (subject.endsWith(`.${agent}`) && count > 0) left.push(`card ${subject}`);
        }
      } finally {
        await nc.close();
      }
      return left;
    },
    clean: () => cleanNats(prefix),
  });
});

// ----------------------------------------------------------------------------------------------------- agent

Deno.test("teardown agent: destroy on memory removes what the agent made; a closed agent cannot be destroyed", async () => {
  const name = unique();
  const broker = MemoryBroker.named(name);
  try {
    const url = `memory://${name}`;
    const keeper = await Agent.start({ id: "keeper", transport: url });
    const worker = await Agent.start({ id: "worker", transport: url });
    await worker.join(CHANNEL, { members: ["worker", "keeper"] });
    await worker.join("left", { members: ["worker"] });
    await worker.leave("left"); // its member queue stays on the broker: destroy removes it too
    const report = await worker.destroy({ channels: ["other"] });
    assert.deepEqual(
      report.removed.sort(),
      ["agent/worker", `card/worker`, `channel/${CHANNEL}/worker`, "channel/left/worker"].sort(),
    );
    assert.equal(await broker.directory.lookup("worker"), undefined);
    assert.ok(await broker.directory.lookup("keeper"));
    await keeper.close();
    await assert.rejects(() => keeper.destroy(), ConfigError);
    // The id starts again with new keys (the old card, which they could not succeed, is gone).
    const again = await Agent.start({ id: "worker", transport: url });
    await again.destroy();
  } finally {
    MemoryBroker.drop(name);
  }
});

Deno.test("teardown agent: spores waiting for a destroyed agent never reach the agent started again under its id", async () => {
  const name = unique();
  const broker = MemoryBroker.named(name);
  try {
    const url = `memory://${name}`;
    const keeper = await Agent.start({ id: "keeper", transport: url });
    const held = Promise.withResolvers<void>();
    let started = 0;
    const worker = await Agent.start({
      id: "worker",
      transport: url,
      prefetch: 1,
      handlers: { job: () => (started++, held.promise) },
    });
    for (let i = 0; i < 4; i++) await keeper.send("worker", { type: "job", content: i });
    const end = Date.now() + 10_000;
    while (started < 1 && Date.now() < end) await sleep(10);
    assert.equal(started, 1, "one job runs");
    assert.ok(broker.depth("worker") >= 3, "the others wait in the worker's queue");
    const destroyed = worker.destroy({ timeoutMs: 200 });
    await destroyed;
    held.resolve();
    assert.equal(broker.depth("worker"), 0, "the worker's queue is gone with its spores");
    const got: unknown[] = [];
    const again = await Agent.start({
      id: "worker",
      transport: url,
      handlers: { job: (m) => void got.push(m.content) },
    });
    await sleep(500);
    assert.deepEqual(got, [], "none of the old spores reach the new worker");
    await again.destroy();
    await keeper.destroy();
  } finally {
    MemoryBroker.drop(name);
  }
});
