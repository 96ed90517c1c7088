// Throughput through a real cluster started by this script (a 6-node Redis Cluster or a 3-node RabbitMQ
// cluster with quorum queues, on free loopback ports, stopped at the end): secure spores (agents, session
// spores) against plaintext through the same transport calls, alternating rounds in one run; for Redis also
// with the `durability` option (WAIT for one replica).
//
// Run: deno run --allow-net=127.0.0.1,localhost --allow-read=.,/tmp --allow-write=/tmp --allow-run --allow-env
//        bench/cluster.ts <redis|amqp> [messages]
import { Agent } from "../mod.ts";
import type { Transport } from "../transports/transport.ts";
import { startRedisCluster } from "../tests/_redis_cluster.ts";
import { startRabbitCluster } from "../tests/_rabbit_cluster.ts";

const which = Deno.args[0] ?? "redis";
const N = Number(Deno.args[1] ?? 10_000);
const SIZE = 1024;
const WINDOW = 64;

async function pump(count: number, window: number, job: () => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: window }, async () => {
    while (next++ < count) await job();
  }));
}

type Open = (url: string, options: Record<string, unknown>) => Promise<Transport>;

async function round(
  url: string,
  open: Open,
  mode: "plain" | "secure",
  options: (prefix: string) => Record<string, unknown>,
): Promise<number> {
  const prefix = `bench${crypto.randomUUID().slice(0, 6)}`;
  const done = Promise.withResolvers<void>();
  let got = 0;
  const count = () => void (++got === N && done.resolve());
  const start = { at: 0 };
  if (mode === "plain") {
    const rx = await open(url, options(prefix));
    const sub = await rx.subscribe({ agent: "bob" }, async (d) => (await d.ack(), count()), {
      prefetch: 128,
    });
    const tx = await open(url, options(prefix));
    const payload = crypto.getRandomValues(new Uint8Array(SIZE));
    start.at = performance.now();
    await pump(N, WINDOW, () => tx.publish({ agent: "bob" }, payload, { ttlMs: 300_000, type: "blob" }));
    await done.promise;
    const rate = N / ((performance.now() - start.at) / 1000);
    await sub.close();
    await tx.close();
    await rx.close();
    return rate;
  }
  const bob = await Agent.start({
    id: "bob",
    transport: url,
    transportOptions: options(prefix),
    prefetch: 128,
  });
  bob.on("blob", count);
  const alice = await Agent.start({ id: "alice", transport: url, transportOptions: options(prefix) });
  const content = crypto.getRandomValues(new Uint8Array(SIZE));
  await alice.connect("bob");
  start.at = performance.now();
  await pump(N, WINDOW, () => alice.send("bob", { type: "blob", content }));
  await done.promise;
  const rate = N / ((performance.now() - start.at) / 1000);
  await alice.close();
  await bob.close();
  return rate;
}

async function compare(
  label: string,
  url: string,
  open: Open,
  options: (prefix: string) => Record<string, unknown>,
): Promise<{ plain: number; secure: number }> {
  const plain: number[] = [];
  const secure: number[] = [];
  for (let r = 0; r < 3; r++) {
    plain.push(await round(url, open, "plain", options));
    secure.push(await round(url, open, "secure", options));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
  const p = median(plain);
  const s = median(secure);
  console.log(
    `${label}: plaintext ${p.toFixed(0)} msg/s, secure ${s.toFixed(0)} msg/s, secure/plaintext ${
      (s / p * 100).toFixed(1)
    } % (medians of 3 alternating rounds; plaintext ${plain.map((x) => x.toFixed(0)).join("/")}, secure ${
      secure.map((x) => x.toFixed(0)).join("/")
    })`,
  );
  return { plain: p, secure: s };
}

console.log(
  `${N} × ${SIZE} B, ${WINDOW} in flight, sender and receiver in one process, ${new Date().toISOString()}`,
);
if (which === "redis") {
  const open: Open = async (url, o) => (await import("../transports/redis.ts")).createTransport(url, o);
  const cluster = await startRedisCluster();
  try {
    const plainOpts = await compare(
      "Redis Cluster (3 primaries + 3 replicas)",
      cluster.url,
      open,
      (prefix) => ({
        prefix,
      }),
    );
    const waitOpts = await compare(
      "Redis Cluster, durability WAIT 1 replica",
      cluster.url,
      open,
      (prefix) => ({ prefix, durability: { replicas: 1 } }),
    );
    console.log(
      `cost of durability: plaintext ${(waitOpts.plain / plainOpts.plain * 100).toFixed(1)} %, secure ${
        (waitOpts.secure / plainOpts.secure * 100).toFixed(1)
      } % of the rate without it`,
    );
  } finally {
    await cluster.stop();
  }
} else if (which === "amqp") {
  const open: Open = async (url, o) => (await import("../transports/amqp.ts")).createTransport(url, o);
  const cluster = await startRabbitCluster();
  try {
    await compare(
      "RabbitMQ 3-node cluster, quorum queues, publisher confirms",
      cluster.url,
      open,
      (prefix) => ({ exchange: prefix, queueType: "quorum" }),
    );
  } finally {
    await cluster.stop();
  }
} else {
  throw new Error(`unknown target ${which}: redis or amqp`);
}
Deno.exit(0);
