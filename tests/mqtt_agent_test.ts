// Agents on the real Mosquitto (127.0.0.1:1883): connections dropped during a 10,000-message stream, a
// receiver process killed and restarted, two processes of one agent sharing its messages ($share), and a
// channel member that was away catching up.
import assert from "node:assert/strict";
import { Agent, Identity, TransportError } from "../mod.ts";
import { MqttTransport } from "../transports/mqtt.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { spawnFixture } from "./_process.ts";
import { startRelay } from "./_relay.ts";

const MQTT = "mqtt://127.0.0.1:1883";
const FAST = { logN: 10, r: 8, p: 1 };
const prefixes: string[] = [];
const transports: MqttTransport[] = [];
const freshPrefix = () => {
  const p = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  prefixes.push(p);
  return p;
};
const until = async (cond: () => boolean, ms = 60_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
const available = async () =>
  (await requireBroker("Mosquitto", 1883)) && (await requireBroker("Redis", 6379));

/** A TCP relay to the broker whose connections the test can cut, as a network failure would. */

async function bobKeyFile(): Promise<{ identity: Identity; file: string; passphrase: string }> {
  const identity = await Identity.generate({ extractable: true });
  const passphrase = crypto.randomUUID();
  const file = await Deno.makeTempFile({ suffix: ".key" });
  await Deno.writeFile(file, await identity.seal(passphrase, FAST));
  return { identity: await Identity.open(await Deno.readFile(file), passphrase), file, passphrase };
}

function spawnBob(file: string, passphrase: string, prefix: string, instance = "-") {
  return spawnFixture("mqtt_bob.ts", [file, passphrase, prefix, instance]);
}

/**
 * Sends `n` messages, retrying a send the transport refused during an outage, and staying at most `window`
 * messages ahead of the receiver: Mosquitto keeps at most `max_queued_messages` (1,000 by default) for one
 * session and drops the rest (see docs/TRANSPORTS.md).
 */
async function sendAll(
  alice: Agent,
  n: number,
  handled: () => number,
  before?: (i: number) => Promise<void> | void,
  window = 500,
): Promise<number> {
  let failures = 0;
  for (let i = 0; i < n; i++) {
    await before?.(i);
    if (i - handled() > window) await until(() => i - handled() <= window / 2, 60_000, "receiver progress");
    for (let attempt = 0;; attempt++) {
      try {
        await alice.send("bob", { type: "n", content: i });
        break;
      } catch (e) {
        if (!(e instanceof TransportError) || attempt > 50) throw e;
        failures++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  return failures;
}

Deno.test("mqtt: connections cut twice during a 10,000-message stream: each message handled exactly once", async () => {
  if (!(await available())) return;
  const prefix = freshPrefix();
  const r = startRelay(1883);
  const url = `mqtt://127.0.0.1:${r.port}`;
  const alice = await Agent.start({ id: "alice", transport: url, transportOptions: { prefix } });
  const bob = await Agent.start({ id: "bob", transport: url, transportOptions: { prefix } });
  transports.push(alice.transport as MqttTransport, bob.transport as MqttTransport);
  const seen = new Map<number, number>();
  bob.on("n", (m) => void seen.set(m.content as number, (seen.get(m.content as number) ?? 0) + 1));
  let cut = 0;
  try {
    await alice.connect("bob");
    const N = 10_000;
    const started = performance.now();
    await sendAll(alice, N, () => seen.size, async (i) => {
      if (i === 3000 || i === 7000) {
        await until(() => seen.size >= i - 500, 60_000, "progress before the cut");
        cut += r.cut();
      }
    });
    await until(() => seen.size === N, 90_000, `all ${N} handled (${seen.size} so far)`);
    const seconds = (performance.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(cut >= 4, `${cut} connections cut`);
    assert.ok((bob.transport as MqttTransport).stats.reconnections >= 2, "bob's session reconnected");
    assert.equal(seen.size, N);
    assert.ok([...seen.values()].every((c) => c === 1), "a message was handled twice");
    console.log(`(${N} messages in ${seconds.toFixed(1)} s with two cuts)`);
  } finally {
    await alice.close();
    await bob.close();
    await r.close();
  }
});

Deno.test("mqtt: a receiver process SIGKILLed mid-stream and restarted loses nothing", async () => {
  if (!(await available())) return;
  const prefix = freshPrefix();
  const { file, passphrase } = await bobKeyFile();
  let bob = spawnBob(file, passphrase, prefix);
  const first = bob;
  const alice = await Agent.start({ id: "alice", transport: MQTT, transportOptions: { prefix } });
  transports.push(alice.transport as MqttTransport);
  try {
    await until(() => bob.lines.includes("ready"), 30_000, "bob process start");
    await alice.connect("bob");
    const N = 3000;
    await sendAll(alice, N, () => new Set([...first.got(), ...bob.got()]).size, async (i) => {
      if (i === 1500) {
        await until(() => first.got().length >= 500, 60_000, "progress before the kill");
        first.child.kill("SIGKILL");
        await first.child.status;
        bob = spawnBob(file, passphrase, prefix);
      }
    });
    await until(() => bob.lines.includes("ready"), 30_000, "bob restart");
    const all = () => [...first.got(), ...bob.got()];
    await until(() => new Set(all()).size === N, 60_000, "every message handled").catch((e) => {
      throw new Error(
        `${e.message}: ${
          new Set(all()).size
        } distinct, first ${first.got().length}, then ${bob.got().length}`,
      );
    });
    await new Promise((r) => setTimeout(r, 1000));
    const handled = all();
    assert.equal(new Set(handled).size, N, "a message was lost");
    // Only a message whose handler ran when the process died may run again.
    assert.ok(handled.length - N <= 1, `${handled.length - N} messages handled twice`);
    assert.ok(first.got().length < N && bob.got().length > 0, "the restarted process took over");
  } finally {
    for (const p of [first, bob]) {
      try {
        p.child.kill("SIGTERM");
      } catch { /* already gone */ }
      await p.child.status;
      await p.reading.catch(() => {});
    }
    await alice.close();
    await Deno.remove(file);
  }
});

Deno.test("mqtt: two processes of one agent share 10,000 messages through $share with no duplicate", async () => {
  if (!(await available())) return;
  const prefix = freshPrefix();
  const { file, passphrase } = await bobKeyFile();
  const p1 = spawnBob(file, passphrase, prefix, "p1");
  const p2 = spawnBob(file, passphrase, prefix, "p2");
  const alice = await Agent.start({ id: "alice", transport: MQTT, transportOptions: { prefix } });
  transports.push(alice.transport as MqttTransport);
  try {
    await until(() => p1.lines.includes("ready") && p2.lines.includes("ready"), 30_000, "processes start");
    await alice.connect("bob");
    const N = 10_000;
    await sendAll(alice, N, () => p1.got().length + p2.got().length);
    await until(() => p1.got().length + p2.got().length >= N, 60_000, "all handled").catch((e) => {
      throw new Error(
        `${e.message}: ${p1.got().length} + ${p2.got().length}, ${
          new Set([...p1.got(), ...p2.got()]).size
        } distinct`,
      );
    });
    await new Promise((r) => setTimeout(r, 1000));
    const all = [...p1.got(), ...p2.got()];
    assert.equal(all.length, N, `${all.length} handlings for ${N} messages`);
    assert.equal(new Set(all).size, N);
    assert.ok(
      p1.got().length > N / 10 && p2.got().length > N / 10,
      `split ${p1.got().length} / ${p2.got().length}`,
    );
  } finally {
    for (const p of [p1, p2]) {
      p.child.kill("SIGTERM");
      await p.child.status;
      await p.reading.catch(() => {});
    }
    await alice.close();
    await Deno.remove(file);
  }
});

Deno.test("mqtt: a channel member that was away catches up with what was broadcast meanwhile", async () => {
  if (!(await available())) return;
  const prefix = freshPrefix();
  const transportOptions = { prefix };
  const identity = await Identity.generate({ extractable: true });
  const alice = await Agent.start({ id: "alice", transport: MQTT, transportOptions });
  transports.push(alice.transport as MqttTransport);
  let carol = await Agent.start({ id: "carol", transport: MQTT, transportOptions, identity });
  transports.push(carol.transport as MqttTransport);
  try {
    const ops = { members: ["carol"], posters: ["alice"] };
    alice.setMembers("ops", { members: ["carol"] });
    await carol.join("ops", ops);
    await carol.close(); // away: its session keeps the channel subscription
    for (let i = 0; i < 3; i++) await alice.broadcast("ops", { type: "alert", content: i });
    carol = await Agent.start({ id: "carol", transport: MQTT, transportOptions, identity });
    transports.push(carol.transport as MqttTransport);
    const got: unknown[] = [];
    carol.on("alert", (m) => void got.push(m.content));
    await carol.join("ops", ops);
    await until(() => got.length === 3, 30_000, "catch-up");
    assert.deepEqual(got.sort(), [0, 1, 2]);
  } finally {
    await carol.close();
    await alice.close();
  }
});

Deno.test("mqtt: examples/mqtt_agents.ts runs with the permissions its header states", async () => {
  if (!(await requireBroker("Mosquitto", 1883))) return;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--quiet",
      "--allow-net=127.0.0.1:1883",
      "--allow-read=.",
      "--allow-env",
      "examples/mqtt_agents.ts",
    ],
    cwd: new URL("../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const t = await MqttTransport.connect(MQTT, { prefix: "spores-example" });
  try {
    for (const id of ["sensor", "controller", "logger"]) {
      await t.removeSession(`spores-example/agent/${id}`);
      await t.directory.remove(id);
    }
    await t.removeSession("spores-example/broadcast/telemetry/logger");
  } finally {
    await t.close();
  }
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  assert.match(text, /controller ← sensor: \{"celsius":21.5\} \(session spore\)/);
  assert.match(text, /logger {5}← #telemetry \{"readings":1\} from sensor, sent while it was away/);
});

Deno.test("mqtt: remove the tests' sessions, cards and Redis keys", async () => {
  if (!(await available())) return;
  for (const prefix of prefixes) {
    const t = await MqttTransport.connect(MQTT, { prefix });
    try {
      for (const o of transports) {
        if (o.prefix !== prefix) continue;
        for (const s of o.sessions) await t.removeSession(s.replace(/^mqtt:\/\/[^/]+/, ""));
      }
      for (const id of ["alice", "bob", "carol"]) {
        await t.removeSession(`${prefix}/agent/${id}`);
        for (const i of ["p1", "p2"]) await t.removeSession(`${prefix}/agent/${id}/${i}`);
        await t.directory.remove(id);
      }
      await t.removeSession(`${prefix}/broadcast/ops/carol`);
    } finally {
      await t.close();
    }
    await cleanRedis(prefix);
  }
});
