// Agents on the real Redis server: crash recovery, connection kills, competing processes, TLS, directory.
import assert from "node:assert/strict";
import { Agent, Identity, type Message, TransportError } from "../mod.ts";
import { createTransport, RedisSessionStore, RedisTransport } from "../transports/redis.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { spawnFixture } from "./_process.ts";

const REDIS = "redis://127.0.0.1:6379";
const FAST = { logN: 10, r: 8, p: 1 };
const opts = (prefix: string) => ({ prefix, visibilityTimeoutMs: 1500, claimIntervalMs: 300, blockMs: 200 });
const until = async (cond: () => boolean, ms = 30_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
const prefixes: string[] = [];
const freshPrefix = () => {
  const p = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  prefixes.push(p);
  return p;
};

async function bobKeyFile(): Promise<{ identity: Identity; file: string; passphrase: string }> {
  const identity = await Identity.generate({ extractable: true });
  const passphrase = crypto.randomUUID();
  const file = await Deno.makeTempFile({ suffix: ".key" });
  await Deno.writeFile(file, await identity.seal(passphrase, FAST));
  return { identity: await Identity.open(await Deno.readFile(file), passphrase), file, passphrase };
}

function spawnBob(file: string, passphrase: string, prefix: string, mode: "hang" | "count") {
  return spawnFixture("redis_bob.ts", [file, passphrase, prefix, mode]);
}

Deno.test("redis: an agent started by URL loads the transport lazily and talks end to end", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = freshPrefix();
  await using alice = await Agent.start({ id: "alice", transport: REDIS, transportOptions: opts(prefix) });
  await using bob = await Agent.start({ id: "bob", transport: REDIS, transportOptions: opts(prefix) });
  const got = Promise.withResolvers<Message>();
  bob.on("chat", (m) => got.resolve(m));
  await alice.connect("bob");
  await alice.send("bob", { type: "chat", content: { text: "over redis" } });
  const m = await got.promise;
  assert.deepEqual(m.content, { text: "over redis" });
  assert.equal(m.kind, "session");
  assert.equal(alice.transport.name, "redis");
});

Deno.test("redis: a consumer killed between read and ack; another handles the message exactly once", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = freshPrefix();
  const { identity, file, passphrase } = await bobKeyFile();
  const alice = await Agent.start({ id: "alice", transport: REDIS, transportOptions: opts(prefix) });
  const doomed = spawnBob(file, passphrase, prefix, "hang");
  let survivor: Agent | undefined;
  let transport: RedisTransport | undefined;
  try {
    await until(() => doomed.lines.includes("ready"), 30_000, "bob process start");
    await alice.send("bob", { type: "n", content: 1 });
    await until(() => doomed.lines.includes("got 1"), 30_000, "first delivery");
    doomed.child.kill("SIGKILL");
    await doomed.child.status;
    transport = await RedisTransport.connect(REDIS, opts(prefix));
    const store = new RedisSessionStore(transport.client, "bob", { prefix });
    survivor = await Agent.start({ id: "bob", transport, identity, store, handlerLeaseMs: 2000 });
    const handled: unknown[] = [];
    survivor.on("n", (m) => void handled.push(m.content));
    await until(() => handled.length === 1, 30_000, "redelivery to the survivor");
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(handled, [1]);
  } finally {
    try {
      doomed.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await doomed.reading.catch(() => {});
    await survivor?.close();
    await transport?.close();
    await alice.close();
    await Deno.remove(file);
  }
});

Deno.test("redis: CLIENT KILL during a 10,000-message stream loses nothing and duplicates nothing", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = freshPrefix();
  const admin = await RedisTransport.connect(REDIS, { prefix });
  await using alice = await Agent.start({ id: "alice", transport: REDIS, transportOptions: opts(prefix) });
  await using bob = await Agent.start({
    id: "bob",
    transport: REDIS,
    transportOptions: opts(prefix),
    prefetch: 128,
  });
  const seen = new Map<number, number>();
  bob.on("n", (m) => void seen.set(m.content as number, (seen.get(m.content as number) ?? 0) + 1));
  await alice.connect("bob");
  const N = 10_000;
  let killed = 0;
  try {
    for (let i = 0; i < N; i++) {
      if (i === 3000 || i === 7000) {
        const n = await (admin.client as unknown as { client(...a: string[]): Promise<number> }).client(
          "KILL",
          "TYPE",
          "normal",
          "SKIPME",
          "yes",
        );
        killed += Number(n);
      }
      for (let attempt = 0;; attempt++) {
        try {
          await alice.send("bob", { type: "n", content: i });
          break;
        } catch (e) {
          if (!(e instanceof TransportError) || attempt > 20) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    await until(() => seen.size === N, 120_000, `all ${N} handled (${seen.size} so far)`);
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok(killed >= 2, `CLIENT KILL killed ${killed} connections`);
    assert.equal(seen.size, N);
    assert.ok([...seen.values()].every((c) => c === 1), "a message was handled twice");
  } finally {
    await admin.close();
  }
});

Deno.test("redis: two processes of one agent share 10,000 messages with no duplicate", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = freshPrefix();
  const { identity, file, passphrase } = await bobKeyFile();
  const other = spawnBob(file, passphrase, prefix, "count");
  const transport = await RedisTransport.connect(REDIS, opts(prefix));
  const store = new RedisSessionStore(transport.client, "bob", { prefix });
  const here: number[] = [];
  let bob: Agent | undefined;
  const alice = await Agent.start({ id: "alice", transport: REDIS, transportOptions: opts(prefix) });
  try {
    bob = await Agent.start({ id: "bob", transport, identity, store, handlerLeaseMs: 5000 });
    bob.on("n", (m) => void here.push(m.content as number));
    await until(() => other.lines.includes("ready"), 30_000, "second process start");
    await alice.connect("bob");
    const N = 10_000;
    for (let i = 0; i < N; i++) await alice.send("bob", { type: "n", content: i });
    const there = () => other.lines.filter((l) => l.startsWith("got ")).map((l) => Number(l.slice(4)));
    await until(() => here.length + there().length >= N, 120_000, "all handled");
    await new Promise((r) => setTimeout(r, 2000));
    const all = [...here, ...there()];
    assert.equal(all.length, N, `${all.length} handlings for ${N} messages`);
    assert.equal(new Set(all).size, N);
    assert.ok(here.length > 0 && there().length > 0, `split ${here.length} / ${there().length}`);
  } finally {
    other.child.kill("SIGTERM");
    await other.child.status;
    await other.reading.catch(() => {});
    await bob?.close();
    await transport.close();
    await alice.close();
    await Deno.remove(file);
  }
});

Deno.test("redis: the directory verifies cards and announces publications", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = freshPrefix();
  const a = await createTransport(REDIS, { prefix });
  const b = await createTransport(REDIS, { prefix });
  try {
    const seen = Promise.withResolvers<string>();
    const stop = b.directory!.watch((card) => seen.resolve(card.id));
    await new Promise((r) => setTimeout(r, 200));
    const agent = await Agent.start({ id: "carol", transport: a });
    assert.equal(await seen.promise, "carol");
    assert.equal((await b.directory!.lookup("carol"))?.fingerprint, agent.identity.fingerprint);
    stop();
    await agent.close();
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("redis: examples/redis_chat.ts runs with the permissions its header states", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--quiet",
      "--allow-net=127.0.0.1:6379",
      "--allow-read=.",
      "--allow-env",
      "examples/redis_chat.ts",
    ],
    cwd: new URL("../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  await cleanRedis("spores-example");
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(
    new TextDecoder().decode(out.stdout),
    /alice ← bob: "hello alice, via Redis streams" \(session spore\)/,
  );
});

Deno.test("redis: remove the tests' keys", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  for (const p of prefixes) await cleanRedis(p);
});
