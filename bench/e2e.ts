// End-to-end throughput through a real broker: secure spores (agents, session spores) against a plaintext
// baseline that makes the same broker calls with the same payload size, in one run.
//
// Run: deno run --allow-net=127.0.0.1 --allow-read=. --allow-env bench/e2e.ts [redis] [messages]
import { Agent, useBackend } from "../mod.ts";
if (Deno.args[2]) useBackend({ "ChaCha20-Poly1305": Deno.args[2] as "native" | "noble" | "auto" });
import type { Transport } from "../transports/transport.ts";

const which = Deno.args[0] ?? "redis";
const N = Number(Deno.args[1] ?? 20_000);
const SIZE = 1024;
const WINDOW = 64;

interface Target {
  name: string;
  url: string;
  open(prefix: string): Promise<Transport>;
  options(prefix: string): Record<string, unknown>;
  /** Removes what a round left in the broker. */
  cleanup(prefix: string): Promise<void>;
}

const AMQP = "amqp://guest:guest@127.0.0.1:5672";
const amqp = (confirms: boolean): Target => ({
  name: `RabbitMQ (amqplib, ${confirms ? "publisher confirms" : "no confirms"})`,
  url: AMQP,
  open: async (prefix) =>
    (await import("../transports/amqp.ts")).createTransport(AMQP, { exchange: prefix, confirms }),
  options: (prefix) => ({ exchange: prefix, confirms }),
  cleanup: async (x) => {
    const { connect } = await import("amqplib");
    const conn = await connect(AMQP);
    const ch = await conn.createChannel();
    for (const id of ["alice", "bob"]) {
      for (const q of [`${x}.agent.${id}`, `${x}.dead.${id}`, `${x}.card.${id}`]) await ch.deleteQueue(q);
    }
    for (const e of [x, `${x}.dlx`, `${x}.cards`]) await ch.deleteExchange(e);
    await conn.close();
  },
});

const targets: Record<string, Target> = {
  amqp: amqp(true),
  "amqp-noconfirm": amqp(false),
  redis: {
    name: "Redis (ioredis, streams)",
    url: "redis://127.0.0.1:6379",
    open: async (prefix) =>
      (await import("../transports/redis.ts")).createTransport("redis://127.0.0.1:6379", { prefix }),
    options: (prefix) => ({ prefix }),
    cleanup: async (prefix) => {
      const t = await (await import("../transports/redis.ts")).RedisTransport.connect(
        "redis://127.0.0.1:6379",
      );
      const keys = await t.client.keys(`${prefix}:*`);
      if (keys.length > 0) await t.client.del(...keys);
      await t.close();
    },
  },
};

/** Runs `count` async jobs with at most `window` in flight. */
async function pump(count: number, window: number, job: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: window }, async () => {
    while (next < count) await job(next++);
  }));
}

async function plaintext(t: Target): Promise<number> {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const sender = await t.open(prefix);
  const receiver = await t.open(prefix);
  const payload = crypto.getRandomValues(new Uint8Array(SIZE));
  let got = 0;
  const done = Promise.withResolvers<void>();
  const sub = await receiver.subscribe({ agent: "bob" }, async (d) => {
    await d.ack();
    if (++got === N) done.resolve();
  }, { prefetch: 128 });
  const start = performance.now();
  await pump(
    N,
    WINDOW,
    () => sender.publish({ agent: "bob" }, payload, { priority: 4, ttlMs: 300_000, dedupId: "x" }),
  );
  await done.promise;
  const rate = N / ((performance.now() - start) / 1000);
  await sub.close();
  await sender.close();
  await receiver.close();
  await t.cleanup(prefix);
  return rate;
}

async function secure(t: Target): Promise<number> {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const alice = await Agent.start({ id: "alice", transport: t.url, transportOptions: t.options(prefix) });
  const bob = await Agent.start({
    id: "bob",
    transport: t.url,
    transportOptions: t.options(prefix),
    prefetch: 128,
  });
  const content = crypto.getRandomValues(new Uint8Array(SIZE));
  let got = 0;
  const done = Promise.withResolvers<void>();
  bob.on("blob", () => {
    if (++got === N) done.resolve();
  });
  await alice.connect("bob");
  const start = performance.now();
  await pump(N, WINDOW, () => alice.send("bob", { type: "blob", content }));
  await done.promise;
  const rate = N / ((performance.now() - start) / 1000);
  await alice.close();
  await bob.close();
  await t.cleanup(prefix);
  return rate;
}

const t = targets[which];
if (!t) throw new Error(`unknown target ${which}; known: ${Object.keys(targets).join(", ")}`);
const rounds: { plain: number; secure: number }[] = [];
for (let r = 0; r < 2; r++) rounds.push({ plain: await plaintext(t), secure: await secure(t) });
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const p = mean(rounds.map((r) => r.plain));
const s = mean(rounds.map((r) => r.secure));
console.log(`${t.name}: ${N} × ${SIZE} B, ${WINDOW} in flight, 2 rounds each, alternating`);
for (const [i, r] of rounds.entries()) {
  console.log(`  round ${i + 1}: plaintext ${r.plain.toFixed(0)} msg/s, secure ${r.secure.toFixed(0)} msg/s`);
}
console.log(
  `  mean: plaintext ${p.toFixed(0)} msg/s, secure ${s.toFixed(0)} msg/s, secure/plaintext ${
    (s / p * 100).toFixed(1)
  } %`,
);
Deno.exit(0);
