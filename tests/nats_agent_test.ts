// Agents on NATS JetStream: end to end by URL, dropped connections, a crashed receiver, competing
// processes (the 3-node cluster is in nats_cluster_test.ts).
import assert from "node:assert/strict";
import { Agent, Identity, type Message } from "../mod.ts";
import { NatsTransport } from "../transports/nats.ts";
import { requireBroker } from "./_env.ts";
import { cleanRedis } from "./_cleanup.ts";
import { cleanNats, NATS_URL, natsPrefix } from "./_nats.ts";
import { spawnFixture } from "./_process.ts";
import { startRelay } from "./_relay.ts";

const FAST = { logN: 10, r: 8, p: 1 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 30_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await sleep(10);
  }
};
/** Runs `count` jobs with at most `window` in flight. */
async function pump(count: number, window: number, job: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: window }, async () => {
    while (next < count) await job(next++);
  }));
}
const freshPrefix = natsPrefix;
const opts = (prefix: string) => ({ prefix, ackWaitMs: 2000, fetchExpiresMs: 1000 });

async function bobKeyFile(): Promise<{ identity: Identity; file: string; passphrase: string }> {
  const identity = await Identity.generate({ extractable: true });
  const passphrase = crypto.randomUUID();
  const file = await Deno.makeTempFile({ suffix: ".key" });
  await Deno.writeFile(file, await identity.seal(passphrase, FAST));
  return { identity: await Identity.open(await Deno.readFile(file), passphrase), file, passphrase };
}

function spawnBob(
  file: string,
  passphrase: string,
  prefix: string,
  mode: "hang" | "count",
  store = "memory",
) {
  return spawnFixture("nats_bob.ts", [file, passphrase, prefix, mode, store]);
}

/** A TCP relay to 127.0.0.1:`target` whose connections a test can cut. */

Deno.test("nats: agents started by URL load the transport lazily and talk end to end", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const prefix = freshPrefix();
  try {
    await using alice = await Agent.start({
      id: "alice",
      transport: NATS_URL,
      transportOptions: opts(prefix),
    });
    await using bob = await Agent.start({ id: "bob", transport: NATS_URL, transportOptions: opts(prefix) });
    const got = Promise.withResolvers<Message>();
    bob.on("chat", (m) => got.resolve(m));
    await alice.connect("bob");
    await alice.send("bob", {
      type: "chat",
      content: { text: "over nats", bytes: new Uint8Array([0, 255]) },
    });
    const m = await got.promise;
    assert.deepEqual(m.content, { text: "over nats", bytes: new Uint8Array([0, 255]) });
    assert.equal(m.kind, "session");
    assert.equal(alice.transport.name, "nats");
    // A broadcast reaches a member that joined, then was away.
    const heard = Promise.withResolvers<Message>();
    const ops = { members: ["alice", "bob"] };
    alice.setMembers("ops", ops);
    await bob.join("ops", ops);
    await bob.leave("ops");
    await alice.broadcast("ops", { type: "alert", content: 2 });
    bob.on("alert", (msg) => heard.resolve(msg));
    await bob.join("ops");
    assert.equal((await heard.promise).content, 2);
  } finally {
    await cleanNats(prefix);
  }
});

Deno.test("nats: connections cut twice during 5,000 messages: each handled exactly once", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const prefix = freshPrefix();
  const r = startRelay(4222);
  const url = `nats://127.0.0.1:${r.port}`;
  // A PubAck lost with a connection is retried after 1 s (with the same id, so the stream keeps one copy).
  const alice = await NatsTransport.connect(url, { ...opts(prefix), pubAckTimeoutMs: 1000 });
  const bob = await NatsTransport.connect(url, { ...opts(prefix), pubAckTimeoutMs: 1000 });
  await using a = await Agent.start({ id: "alice", transport: alice });
  await using b = await Agent.start({ id: "bob", transport: bob, prefetch: 128 });
  const seen = new Map<number, number>();
  b.on("n", (m) => void seen.set(m.content as number, (seen.get(m.content as number) ?? 0) + 1));
  try {
    await a.connect("bob");
    const N = 5000;
    let cut = 0;
    await pump(N, 16, async (i) => {
      if (i === 3500) {
        // Both clients back through the relay before the second cut (bob may still be reconnecting when alice's
        // sends reach 3,500): the cut then finds both connections, as the test means.
        await until(() => alice.reconnections >= 1 && bob.reconnections >= 1, 30_000, "both reconnected");
      }
      if (i === 1500 || i === 3500) cut += r.cut();
      await a.send("bob", { type: "n", content: i });
    });
    await until(() => seen.size === N, 60_000, `all ${N} handled (${seen.size} so far)`);
    await sleep(1500);
    assert.ok(cut >= 4, `cut ${cut} connections`);
    assert.ok(alice.reconnections >= 2 && bob.reconnections >= 2, "both clients reconnected");
    // Publications retried after a lost PubAck were dropped by the stream's duplicate window: one copy each.
    const info = await alice.jsm.streams.info(alice.names.stream, {
      subjects_filter: `${prefix}.agent.bob.n`,
    });
    assert.equal(info.state.subjects?.[`${prefix}.agent.bob.n`], N);
    assert.equal(seen.size, N);
    assert.ok([...seen.values()].every((c) => c === 1), "a message was handled twice");
  } finally {
    await a.close();
    await b.close();
    await alice.close();
    await bob.close();
    r.close();
    await cleanNats(prefix);
  }
});

Deno.test("nats: a receiver SIGKILLed mid-stream and restarted loses nothing", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  // Bob keeps its sessions, replay memory and delivery receipts in Redis, so that the restarted process
  // continues the session and knows what the killed one handled (with the memory store, a restarted agent
  // refuses spores sent before it started: it cannot tell a replay from a first delivery).
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = freshPrefix();
  const { file, passphrase } = await bobKeyFile();
  const first = spawnBob(file, passphrase, prefix, "count", "redis");
  let second: ReturnType<typeof spawnBob> | undefined;
  const alice = await Agent.start({ id: "alice", transport: NATS_URL, transportOptions: opts(prefix) });
  try {
    await until(() => first.lines.includes("ready"), 30_000, "bob start");
    await alice.connect("bob");
    const N = 2000;
    const sending = pump(N, 8, (i) => alice.send("bob", { type: "n", content: i }));
    await until(() => first.got().length >= 300, 60_000, "first deliveries");
    first.child.kill("SIGKILL");
    await first.child.status;
    await first.reading.catch(() => {});
    await sending;
    second = spawnBob(file, passphrase, prefix, "count", "redis");
    const all = () => new Set([...first.got(), ...second!.got()]);
    await until(() => all().size === N, 60_000, `all ${N} handled (${all().size})`);
    await sleep(1000);
    const handled = first.got().length + second.got().length;
    // Only a handler the kill interrupted before its receipt was written can run again.
    assert.ok(handled - N <= 64, `${handled - N} handled twice`);
  } finally {
    for (const p of [first, second]) {
      if (!p) continue;
      try {
        p.child.kill("SIGKILL");
      } catch { /* gone */ }
      await p.child.status;
      await p.reading.catch(() => {});
    }
    await alice.close();
    await Deno.remove(file);
    await cleanNats(prefix);
    await cleanRedis(prefix.replaceAll("_", "-"));
  }
});

Deno.test("nats: two processes of one agent share 10,000 messages with no duplicate", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const prefix = freshPrefix();
  const { identity, file, passphrase } = await bobKeyFile();
  const other = spawnBob(file, passphrase, prefix, "count");
  const transport = await NatsTransport.connect(NATS_URL, opts(prefix));
  const here: number[] = [];
  let bob: Agent | undefined;
  const alice = await Agent.start({ id: "alice", transport: NATS_URL, transportOptions: opts(prefix) });
  try {
    bob = await Agent.start({ id: "bob", transport, identity });
    bob.on("n", (m) => void here.push(m.content as number));
    await until(() => other.lines.includes("ready"), 30_000, "second process start");
    const N = 10_000;
    await pump(N, 16, (i) => alice.send("bob", { type: "n", content: i }));
    await until(() => here.length + other.got().length >= N, 120_000, "all handled");
    await sleep(1500);
    const all = [...here, ...other.got()];
    assert.equal(all.length, N, `${all.length} handlings for ${N} messages`);
    assert.equal(new Set(all).size, N);
    assert.ok(here.length > 0 && other.got().length > 0, `split ${here.length} / ${other.got().length}`);
  } finally {
    other.child.kill("SIGTERM");
    await other.child.status;
    await other.reading.catch(() => {});
    await bob?.close();
    await transport.close();
    await alice.close();
    await Deno.remove(file);
    await cleanNats(prefix);
  }
});

Deno.test("nats: examples/nats_agents.ts runs with the permissions its header states", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--quiet",
      "--allow-net=127.0.0.1:4222",
      "--allow-read=.",
      "examples/nats_agents.ts",
    ],
    cwd: new URL("../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  await cleanNats("spores_example");
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  assert.match(text, /worker {2}← job "index" \(session spore\)/);
  assert.match(text, /worker {2}✗ job "explode" dead-lettered after 2 attempts/);
  assert.match(text, /auditor ← #audit \{"jobs":2\} from dispatcher/);
});
