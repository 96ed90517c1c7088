// End-to-end throughput through a real broker: secure spores (agents, session spores) against a plaintext
// baseline that makes the same broker calls with the same payload size, in one run.
//
// Run: deno run --allow-net=127.0.0.1 --allow-read=. --allow-env --allow-run bench/e2e.ts <target> [messages] [aead]
//        [--split] [--rounds=3] [--latency] [--modes=raw,plain,secure] [--together]
// target: redis | amqp | amqp-noconfirm | memory | sqs | mqtt | stomp (--stomp-url=... for Web-STOMP) | nats;
//   aead: auto (default) | native | noble.
// --split puts the receiver in a process of its own (as agents are deployed); without it, sender and receiver
// share one process and one JavaScript thread. A target with `raw` also runs its client library directly, the
// ceiling; rounds alternate raw, plaintext, secure, and ratios are taken within each round. --latency adds
// awaited one-at-a-time send→handler p50/p99 for plaintext and secure. --together runs the modes of a round
// concurrently (same load for each; the ratio of their rates is then the comparison).
import { Agent, useBackend } from "../mod.ts";
import type { Transport } from "../transports/transport.ts";
import { sqsTarget } from "./e2e_sqs.ts";
import { mqttTarget } from "./e2e_mqtt.ts";
import { stompTarget } from "./e2e_stomp.ts";
import { natsTarget } from "./e2e_nats.ts";

const flags = Deno.args.filter((a) => a.startsWith("--"));
const positional = Deno.args.filter((a) => !a.startsWith("--"));
const flag = (name: string) => flags.find((f) => f.startsWith(`--${name}=`))?.split("=")[1];
const which = positional[0] ?? "redis";
const N = Number(positional[1] ?? 20_000);
const aead = (positional[2] ?? "auto") as "native" | "noble" | "auto";
const split = flags.includes("--split");
useBackend({ "ChaCha20-Poly1305": aead });
const SIZE = 1024;
const WINDOW = 64;

interface Target {
  name: string;
  url: string;
  open(prefix: string): Promise<Transport>;
  options(prefix: string): Record<string, unknown>;
  /** Removes what a round left in the broker. */
  cleanup(prefix: string): Promise<void>;
  /**
   * The ceiling: the same client library used directly, as well as it can be (pipelined, batched acks), with
   * the same payload and message properties. Optional; without it a run compares secure with plaintext only.
   */
  raw?: RawClient;
}

/** A broker's own client, driven directly: one receiving and one sending side per round. */
interface RawClient {
  /** Starts consuming `prefix`'s queue; calls `arrived` once per message. */
  receive(prefix: string, arrived: () => void): Promise<{ close(): Promise<void> }>;
  /** A sender whose `send` resolves when the broker has the message. */
  sender(prefix: string, payload: Uint8Array): Promise<{ send(): Promise<unknown>; close(): Promise<void> }>;
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

/** amqplib directly: noDelay socket, a confirm channel (or a plain one), prefetch 128, acks batched with `allUpTo`. */
const rawAmqp = (confirms: boolean): RawClient => ({
  receive: async (x, arrived) => {
    const { connect } = await import("amqplib");
    const conn = await connect(AMQP, { noDelay: true });
    const ch = await conn.createChannel();
    await ch.assertExchange(x, "topic", { durable: true });
    const q = `${x}.agent.bob`;
    await ch.assertQueue(q, { durable: true, arguments: { "x-max-priority": 9 } });
    await ch.bindQueue(q, x, "agent.bob.#");
    await ch.prefetch(128);
    let unacked = 0;
    let last: import("amqplib").ConsumeMessage | undefined;
    const timer = setInterval(() => {
      if (last && unacked > 0) (ch.ack(last, true), unacked = 0);
    }, 5);
    await ch.consume(q, (m) => {
      if (!m) return;
      last = m;
      if (++unacked >= 32) (ch.ack(m, true), unacked = 0);
      arrived();
    });
    return { close: async () => (clearInterval(timer), await conn.close()) };
  },
  sender: async (x, payload) => {
    const { connect } = await import("amqplib");
    const { Buffer } = await import("node:buffer");
    const conn = await connect(AMQP, { noDelay: true });
    const ch = confirms ? await conn.createConfirmChannel() : await conn.createChannel();
    const body = Buffer.from(payload);
    const props = { persistent: true, priority: 4, expiration: "300000", messageId: "x" };
    let drained: Promise<void> | undefined; // one drain listener however many publishes wait
    const drain = () =>
      drained ??= new Promise<void>((r) => ch.once("drain", () => (drained = undefined, r())));
    return {
      send: () =>
        new Promise<void>((resolve, reject) => {
          if (!confirms) {
            if (ch.publish(x, "agent.bob.blob", body, props)) resolve();
            else drain().then(resolve);
            return;
          }
          ch.publish(x, "agent.bob.blob", body, props, (err: unknown) => err ? reject(err) : resolve());
        }),
      close: () => conn.close(),
    };
  },
});

/** ioredis directly: auto-pipelined XADD; XREADGROUP of up to 256; one XACK per batch read. */
const rawRedis: RawClient = {
  receive: async (prefix, arrived) => {
    const { Redis } = await import("ioredis");
    const c = new Redis("redis://127.0.0.1:6379", { enableAutoPipelining: true });
    const stream = `${prefix}:agent:{bob}`;
    await c.xgroup("CREATE", stream, "g", "0", "MKSTREAM");
    let closed = false;
    const loop = (async () => {
      while (!closed) {
        const res = await c.xreadgroupBuffer(
          "GROUP",
          "g",
          "c",
          "COUNT",
          256,
          "BLOCK",
          200,
          "STREAMS",
          stream,
          ">",
        );
        for (const [, entries] of res ?? []) {
          if (entries.length === 0) continue;
          void c.xack(stream, "g", ...entries.map(([id]) => id));
          for (const _ of entries) arrived();
        }
      }
    })();
    return { close: async () => (closed = true, await loop, c.disconnect()) };
  },
  sender: async (prefix, payload) => {
    const { Redis } = await import("ioredis");
    const { Buffer } = await import("node:buffer");
    const c = new Redis("redis://127.0.0.1:6379", { enableAutoPipelining: true });
    const stream = `${prefix}:agent:{bob}`;
    const body = Buffer.from(payload);
    return {
      send: () => c.xadd(stream, "MAXLEN", "~", "100000", "*", "d", body, "p", "4", "e", "0", "i", "x"),
      close: async () => void c.disconnect(),
    };
  },
};

const targets: Record<string, Target> = {
  // In-process: its plaintext path is the raw ceiling (there is no other client); one process only.
  memory: {
    name: "memory:// (in process)",
    url: "memory://bench",
    open: async () => (await import("../transports/memory.ts")).createTransport("memory://bench"),
    options: () => ({}),
    cleanup: async () => {},
  },
  amqp: { ...amqp(true), raw: rawAmqp(true) },
  "amqp-noconfirm": { ...amqp(false), raw: rawAmqp(false) },
  nats: natsTarget,
  redis: {
    name: "Redis (ioredis, streams)",
    url: "redis://127.0.0.1:6379",
    open: async (prefix) =>
      (await import("../transports/redis.ts")).createTransport("redis://127.0.0.1:6379", { prefix }),
    options: (prefix) => ({ prefix }),
    raw: rawRedis,
    cleanup: async (prefix) => {
      const t = await (await import("../transports/redis.ts")).RedisTransport.connect(
        "redis://127.0.0.1:6379",
      );
      const keys = await t.client.keys(`${prefix}:*`);
      if (keys.length > 0) await t.client.del(...keys);
      await t.close();
    },
  },
  sqs: sqsTarget,
  mqtt: mqttTarget,
  stomp: stompTarget(flag("stomp-url")),
};

/** Runs `count` async jobs with at most `window` in flight. */
async function pump(count: number, window: number, job: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: window }, async () => {
    while (next < count) await job(next++);
  }));
}

/** The receiving side: subscribes (plaintext) or starts agent bob (secure); resolves when N arrived. */
async function receiver(
  t: Target,
  mode: Mode,
  prefix: string,
): Promise<{ ready: Promise<void>; done: Promise<void>; close(): Promise<void> }> {
  const done = Promise.withResolvers<void>();
  let got = 0;
  const count = () => {
    if (++got === N) done.resolve();
  };
  if (mode === "raw") {
    const rx = await t.raw!.receive(prefix, count);
    return { ready: Promise.resolve(), done: done.promise, close: () => rx.close() };
  }
  if (mode === "plain") {
    const transport = await t.open(prefix);
    const sub = await transport.subscribe({ agent: "bob" }, async (d) => {
      await d.ack();
      count();
    }, { prefetch: 128 });
    return {
      ready: Promise.resolve(),
      done: done.promise,
      close: async () => (await sub.close(), await transport.close()),
    };
  }
  const bob = await Agent.start({
    id: "bob",
    transport: t.url,
    transportOptions: t.options(prefix),
    prefetch: 128,
  });
  bob.on("blob", count);
  return { ready: Promise.resolve(), done: done.promise, close: () => bob.close() };
}

/** The receiver in a child process: it prints "ready" once subscribed and "done" after N messages. */
function childReceiver(mode: Mode, prefix: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read=.",
      "--allow-env",
      import.meta.filename!,
      which,
      String(N),
      aead,
      "--role=receiver",
      `--mode=${mode}`,
      `--prefix=${prefix}`,
    ],
    stdout: "piped",
    stdin: "piped",
  }).spawn();
  const ready = Promise.withResolvers<void>();
  const done = Promise.withResolvers<void>();
  (async () => {
    let text = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (text.includes("ready")) ready.resolve();
      if (text.includes("done")) done.resolve();
    }
  })();
  return {
    ready: ready.promise,
    done: done.promise,
    close: async () => {
      await child.stdin.close();
      await child.status;
    },
  };
}

type Mode = "raw" | "plain" | "secure";

async function round(t: Target, mode: Mode): Promise<number> {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const rx = split ? childReceiver(mode, prefix) : await receiver(t, mode, prefix);
  await rx.ready;
  let send: () => Promise<unknown>;
  let sender: { close(): Promise<void> };
  if (mode === "raw") {
    const raw = await t.raw!.sender(prefix, crypto.getRandomValues(new Uint8Array(SIZE)));
    send = raw.send;
    sender = raw;
  } else if (mode === "plain") {
    const transport = await t.open(prefix);
    const payload = crypto.getRandomValues(new Uint8Array(SIZE));
    let seq = 0; // dedup ids differ per message, as spore ids do (a broker that deduplicates keeps them all)
    send = () =>
      transport.publish({ agent: "bob" }, payload, {
        priority: 4,
        ttlMs: 300_000,
        dedupId: `plain-${++seq}`,
        type: "blob",
      });
    sender = transport;
  } else {
    const alice = await Agent.start({ id: "alice", transport: t.url, transportOptions: t.options(prefix) });
    const content = crypto.getRandomValues(new Uint8Array(SIZE));
    await alice.connect("bob");
    send = () => alice.send("bob", { type: "blob", content });
    sender = alice;
  }
  const start = performance.now();
  await pump(N, WINDOW, send);
  await rx.done;
  const rate = N / ((performance.now() - start) / 1000);
  await sender.close();
  await rx.close();
  await t.cleanup(prefix);
  return rate;
}

const t = targets[which];
if (!t) throw new Error(`unknown target ${which}; known: ${Object.keys(targets).join(", ")}`);
if (split && t.url.startsWith("memory:")) {
  throw new Error("memory:// lives in one process: run it without --split");
}

if (flag("role") === "receiver") {
  // Child process of a --split run.
  const rx = await receiver(t, flag("mode") as Mode, flag("prefix")!);
  await rx.ready;
  console.log("ready");
  await rx.done;
  console.log("done");
  for await (const _ of Deno.stdin.readable) { /* the parent closes stdin when it is finished */ }
  await rx.close();
  Deno.exit(0);
}

/** Awaited one at a time: publish, then wait for the handler; send→handler latencies in ms. */
async function latency(t: Target, mode: "plain" | "secure", count: number): Promise<number[]> {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  let arrived: (() => void) | undefined;
  const times: number[] = [];
  const content = crypto.getRandomValues(new Uint8Array(SIZE));
  let send: () => Promise<unknown>;
  const closers: (() => Promise<void>)[] = [];
  if (mode === "plain") {
    const rx = await t.open(prefix);
    const sub = await rx.subscribe({ agent: "bob" }, async (d) => (arrived?.(), await d.ack()));
    const tx = await t.open(prefix);
    let seq = 0; // a dedup id per message, as spore ids are (a broker that deduplicates keeps them all)
    send = () =>
      tx.publish({ agent: "bob" }, content, {
        priority: 4,
        ttlMs: 300_000,
        dedupId: `lat-${++seq}`,
        type: "blob",
      });
    closers.push(() => tx.close(), async () => (await sub.close(), await rx.close()));
  } else {
    const bob = await Agent.start({ id: "bob", transport: t.url, transportOptions: t.options(prefix) });
    bob.on("blob", () => arrived?.());
    const alice = await Agent.start({ id: "alice", transport: t.url, transportOptions: t.options(prefix) });
    await alice.connect("bob");
    send = () => alice.send("bob", { type: "blob", content });
    closers.push(() => alice.close(), () => bob.close());
  }
  for (let i = 0; i < count + 20; i++) {
    const got = new Promise<void>((r) => arrived = r);
    const start = performance.now();
    await send();
    await got;
    if (i >= 20) times.push(performance.now() - start); // the first 20 warm up
  }
  for (const close of closers) await close();
  await t.cleanup(prefix);
  return times.sort((a, b) => a - b);
}

const ROUNDS = Number(flag("rounds") ?? 3);
const modes: Mode[] = (flag("modes")?.split(",") as Mode[] | undefined) ??
  (t.raw ? ["raw", "plain", "secure"] : ["plain", "secure"]);
const rounds: Record<Mode, number>[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const one = {} as Record<Mode, number>;
  if (flags.includes("--together")) {
    // All modes at once, under the same load: on a shared machine whose speed moves from second to second,
    // their ratio is fairer than that of runs a few seconds apart.
    const rates = await Promise.all(modes.map((m) => round(t, m)));
    modes.forEach((m, i) => one[m] = rates[i]!);
  } else {
    for (const m of modes) one[m] = await round(t, m);
  }
  rounds.push(one);
}
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => sorted(xs)[xs.length >> 1]!;
const min = (xs: number[]) => sorted(xs)[0]!;
console.log(
  `${t.name}: ${N} × ${SIZE} B, ${WINDOW} in flight, AEAD ${aead}, ${
    split ? "receiver in its own process" : "one process"
  }, ${ROUNDS} rounds of each, ${flags.includes("--together") ? "modes run together" : "alternating"}`,
);
for (const [i, r] of rounds.entries()) {
  console.log(`  round ${i + 1}: ${modes.map((m) => `${m} ${r[m].toFixed(0)}`).join(", ")} msg/s`);
}
for (const m of modes) {
  const xs = rounds.map((r) => r[m]);
  console.log(`  ${m}: min ${min(xs).toFixed(0)}, median ${median(xs).toFixed(0)} msg/s`);
}
const ratio = (a: Mode, b: Mode) => {
  if (!modes.includes(a) || !modes.includes(b)) return "not measured";
  const per = rounds.map((r) => r[a] / r[b] * 100);
  return `min ${min(per).toFixed(1)} %, median ${median(per).toFixed(1)} %`;
};
if (t.raw) {
  console.log(`  plaintext ÷ raw client (per round): ${ratio("plain", "raw")}`);
  console.log(`  secure ÷ raw client (per round): ${ratio("secure", "raw")}`);
}
console.log(`  secure ÷ plaintext (per round): ${ratio("secure", "plain")}`);
if (flags.includes("--latency")) {
  for (const m of ["plain", "secure"] as const) {
    const xs = await latency(t, m, 300);
    const at = (q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]!.toFixed(2);
    console.log(`  one at a time, send→handler (${m}): p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`);
  }
}
Deno.exit(0);
