// End-to-end throughput through a real broker: secure spores (agents, session spores) against a plaintext
// baseline that makes the same broker calls with the same payload size, in one run.
//
// Run: deno run --allow-net=127.0.0.1 --allow-read=. --allow-env --allow-run bench/e2e.ts <target> [messages] [aead]
//        [--split]
// target: redis | amqp | amqp-noconfirm | nats; aead: auto (default) | native | noble.
// --split puts the receiver in a process of its own (as agents are deployed); without it, sender and receiver
// share one process and one JavaScript thread.
import { Agent, useBackend } from "../mod.ts";
import type { Transport } from "../transports/transport.ts";
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
  nats: natsTarget,
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

/** The receiving side: subscribes (plaintext) or starts agent bob (secure); resolves when N arrived. */
async function receiver(
  t: Target,
  mode: "plain" | "secure",
  prefix: string,
): Promise<{ ready: Promise<void>; done: Promise<void>; close(): Promise<void> }> {
  const done = Promise.withResolvers<void>();
  let got = 0;
  const count = () => {
    if (++got === N) done.resolve();
  };
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
function childReceiver(mode: "plain" | "secure", prefix: string) {
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

async function round(t: Target, mode: "plain" | "secure"): Promise<number> {
  const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const rx = split ? childReceiver(mode, prefix) : await receiver(t, mode, prefix);
  await rx.ready;
  let send: () => Promise<unknown>;
  let sender: { close(): Promise<void> };
  if (mode === "plain") {
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

if (flag("role") === "receiver") {
  // Child process of a --split run.
  const rx = await receiver(t, flag("mode") as "plain" | "secure", flag("prefix")!);
  await rx.ready;
  console.log("ready");
  await rx.done;
  console.log("done");
  for await (const _ of Deno.stdin.readable) { /* the parent closes stdin when it is finished */ }
  await rx.close();
  Deno.exit(0);
}

const rounds: { plain: number; secure: number }[] = [];
for (let r = 0; r < 2; r++) rounds.push({ plain: await round(t, "plain"), secure: await round(t, "secure") });
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const p = mean(rounds.map((r) => r.plain));
const s = mean(rounds.map((r) => r.secure));
console.log(
  `${t.name}: ${N} × ${SIZE} B, ${WINDOW} in flight, AEAD ${aead}, ${
    split ? "receiver in its own process" : "one process"
  }, 2 rounds each, alternating`,
);
for (const [i, r] of rounds.entries()) {
  console.log(`  round ${i + 1}: plaintext ${r.plain.toFixed(0)} msg/s, secure ${r.secure.toFixed(0)} msg/s`);
}
console.log(
  `  mean: plaintext ${p.toFixed(0)} msg/s, secure ${s.toFixed(0)} msg/s, secure/plaintext ${
    (s / p * 100).toFixed(1)
  } %`,
);
Deno.exit(0);
