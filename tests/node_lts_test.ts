// Spores on Node's LTS lines (22 and 24), installed the way a Node user installs it: tests/_jsr_npm.ts builds
// the package as JSR's npm compatibility layer serves it and installs it with npm; the programs in tests/node/
// import it by its name and run on Node binaries from the npm registry's `node` package. They use the public
// API on the in-process broker, the file-backed stores, every entry point, each broker transport chosen by URL
// against the machine's brokers (SQS against fauxqs started here), and talk to a Deno agent.
// Under CI (CI=true or SPORES_REQUIRE_BROKERS=1), npm, Node and the brokers are required: the tests fail if
// any cannot be had.
import assert from "node:assert/strict";
import { Agent } from "../mod.ts";
import { MqttTransport } from "../transports/mqtt.ts";
import { cleanRabbit, cleanRedis } from "./_cleanup.ts";
import { requireBroker, requireTool } from "./_env.ts";
import { startSqs } from "./_fauxqs.ts";
import { makePki, tlsProxy } from "./_tls.ts";
import { NODE_VERSIONS, nodeBinary, nodeProject } from "./_jsr_npm.ts";
import { cleanNats } from "./_nats.ts";

const PROGRAMS = ["scenario.mjs", "api.mjs", "api_using.mjs", "transport.mjs", "tls.mjs", "interop.mjs"];

let ready: Promise<{ dir: string; nodes: Record<string, string> }> | undefined;

/** The installed project with the programs copied in, and the Node binaries by major version. */
function setUp(): Promise<{ dir: string; nodes: Record<string, string> }> {
  return ready ??= (async () => {
    const project = await nodeProject();
    for (const p of PROGRAMS) {
      await Deno.copyFile(new URL(`node/${p}`, import.meta.url), `${project.dir}/${p}`);
    }
    await Deno.writeTextFile(`${project.dir}/readme.mjs`, await readmeExample());
    const nodes: Record<string, string> = {};
    for (const [major, version] of Object.entries(NODE_VERSIONS)) nodes[major] = await nodeBinary(version);
    return { dir: project.dir, nodes };
  })();
}

async function available(): Promise<boolean> {
  return (await requireTool("npm", ["npm", "--version"])) && (await requireTool("npx", ["npx", "--version"]));
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The Node example of the README (the JavaScript block of its "On Node.js" section). */
async function readmeExample(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("## On Node.js"));
  const block = /```js ignore\n([\s\S]*?)```/.exec(section.slice(0, section.indexOf("\n## ", 3)));
  assert.ok(block, "the README's Node section has no JavaScript example");
  return block[1]!;
}

/** Runs `program` on Node `major` in the project; its output. */
async function node(major: string, program: string, args: string[] = []): Promise<Run> {
  const { dir, nodes } = await setUp();
  const out = await new Deno.Command(nodes[major]!, {
    args: ["--no-warnings=ExperimentalWarning", program, ...args],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    env: { SPORES_URL: "memory://" },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** The JSON line a program printed; fails with its output when it did not succeed. */
function result(run: Run, what: string): Record<string, unknown> {
  assert.equal(run.code, 0, `${what} failed:\n${run.stdout}\n${run.stderr}`);
  const line = run.stdout.trim().split("\n").pop()!;
  return JSON.parse(line);
}

/** What scenario.mjs must report for any transport. */
function assertScenario(got: Record<string, unknown>, transport: string): void {
  assert.equal(got.transport, transport);
  assert.deepEqual(got.chat, { from: "alice", text: "hello", bytes: [0, 1, 255] }, transport);
  assert.equal(got.answer, 6, transport);
  assert.deepEqual(got.alerts, [
    { from: "alice", channel: "ops", level: 2 },
    { from: "alice", channel: "ops", level: 2 },
  ], transport);
}

/**
 * Where Node's Web Crypto lacks a primitive, @noble (or libsodium's WebAssembly build) stands in: on Node 22
 * every primitive falls back; Node 24 has ML-KEM-768, ML-DSA-65, Ed25519 and X25519 natively.
 */
function assertBackends(major: string, backends: Record<string, string>): void {
  const { "ChaCha20-Poly1305": aead, ...others } = backends;
  assert.deepEqual(Object.keys(others).sort(), [
    "Ed25519",
    "HKDF-SHA-256",
    "ML-DSA-65",
    "ML-KEM-768",
    "X25519",
  ]);
  if (major === "22") {
    assert.ok(Object.values(others).every((b) => b === "noble"), JSON.stringify(backends));
    assert.ok(aead === "sodium" || aead === "noble", JSON.stringify(backends));
  } else {
    for (const a of ["Ed25519", "X25519", "ML-KEM-768", "ML-DSA-65"]) {
      assert.equal(others[a], "native", JSON.stringify(backends));
    }
  }
}

for (const major of Object.keys(NODE_VERSIONS)) {
  Deno.test(`node ${major}: the package from JSR's npm layer runs the public API and the README's example`, async () => {
    if (!(await available())) return;
    const got = result(await node(major, "api.mjs"), "api.mjs");
    assert.equal(got.node, `v${NODE_VERSIONS[major as keyof typeof NODE_VERSIONS]}`);
    assertScenario(got.memory as Record<string, unknown>, "memory");
    const entryPoints = got.entryPoints as Record<string, number>;
    assert.equal(Object.keys(entryPoints).length, 10);
    for (const [name, count] of Object.entries(entryPoints)) assert.ok(count > 0, `${name} exports nothing`);
    assert.deepEqual(got.files, {
      pins: ["bob", "carol"],
      card: true,
      restarted: { got: [0, 1, 2, 3, 4, 5], handshakes: 0 },
    });
    assertBackends(major, got.backends as Record<string, string>);

    const readme = await node(major, "readme.mjs");
    assert.equal(readme.code, 0, readme.stderr);
    assert.equal(readme.stdout, "1 + 2 = 3\n");

    const using = await node(major, "api_using.mjs");
    if (major === "22") {
      // Node 22 has no explicit resource management: the README shows try/finally for it.
      assert.notEqual(using.code, 0);
      assert.match(using.stderr, /SyntaxError/);
    } else {
      assert.deepEqual(result(using, "api_using.mjs"), {
        node: `v${NODE_VERSIONS[major as keyof typeof NODE_VERSIONS]}`,
        answer: 42,
        refusedAfterClose: true,
      });
    }
  });

  Deno.test(`node ${major}: each broker transport, chosen by URL, carries messages`, async () => {
    if (!(await available())) return;
    for (const [name, port] of [["Redis", 6379], ["RabbitMQ", 5672], ["Mosquitto", 1883], ["NATS", 4222]]) {
      if (!(await requireBroker(name as string, port as number))) return;
    }
    if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
    await setUp();
    const prefix = `spores-node${major}-${crypto.randomUUID().slice(0, 8)}`;
    const sqs = await startSqs();
    // A prefix of each transport's own: the AMQP and STOMP transports share RabbitMQ.
    const brokers: [string, string, Record<string, unknown>][] = [
      ["redis", "redis://127.0.0.1:6379", { prefix: `${prefix}-redis` }],
      ["amqp", "amqp://guest:guest@127.0.0.1:5672", { exchange: `${prefix}-amqp` }],
      ["mqtt", "mqtt://127.0.0.1:1883", { prefix: `${prefix}-mqtt` }],
      ["stomp", "stomp://guest:guest@127.0.0.1:61613", { prefix: `${prefix}-stomp` }],
      ["nats", "nats://127.0.0.1:4222", { prefix: `${prefix}-nats` }],
      ["sqs", sqs.url, {
        prefix: `${prefix}-sqs`,
        credentials: { accessKeyId: "spores-test", secretAccessKey: "spores-test" },
        waitTimeSeconds: 1,
      }],
    ];
    try {
      const runs = await Promise.all(
        brokers.map(([, url, options]) => node(major, "transport.mjs", [url, JSON.stringify(options)])),
      );
      brokers.forEach(([name], i) => assertScenario(result(runs[i]!, `transport.mjs on ${name}`), name));
    } finally {
      await sqs.stop();
      await cleanUp(prefix);
    }
  });
}

for (const major of Object.keys(NODE_VERSIONS)) {
  Deno.test(`node ${major} and Deno: agents of either runtime talk to each other over Redis`, async () => {
    if (!(await available()) || !(await requireBroker("Redis", 6379))) return;
    await setUp();
    const prefix = `spores-node-interop-${crypto.randomUUID().slice(0, 8)}`;
    const products: unknown[] = [];
    const suites: string[] = [];
    const deno = await Agent.start({
      id: "deno",
      transport: "redis://127.0.0.1:6379",
      transportOptions: { prefix },
      handlers: {
        add: async (m) => {
          await m.reply((m.content as number[]).reduce((a, b) => a + b, 0));
          const product = await deno.request(m.from, { type: "mul", content: [6, 7] }, { timeoutMs: 30_000 });
          products.push(product.content);
          suites.push(product.suite, m.suite);
        },
      },
    });
    try {
      const got = result(
        await node(major, "interop.mjs", ["redis://127.0.0.1:6379", JSON.stringify({ prefix })]),
        "interop.mjs",
      );
      assert.equal(got.sum, 42);
      assert.equal(got.askedBy, "deno");
      const end = Date.now() + 10_000;
      while (products.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(products, [42]);
      // What Node sealed and signed (X-Wing, ChaCha20-Poly1305, Ed25519 + ML-DSA-65) opened here, and back.
      assert.deepEqual(suites, Array(2).fill("xwing-chacha20poly1305-ed25519+mldsa65"));
      assertBackends(major, got.backends as Record<string, string>);
    } finally {
      await deno.close();
      await cleanRedis(prefix);
    }
  });
}

for (const major of Object.keys(NODE_VERSIONS)) {
  Deno.test(`node ${major}: STOMP over mutual TLS (node:tls); a wrong CA is refused`, async () => {
    if (!(await available()) || !(await requireBroker("RabbitMQ STOMP", 61613))) return;
    if (!(await requireTool("openssl", ["openssl", "version"]))) return;
    await setUp();
    const prefix = `spores-node${major}-tls-${crypto.randomUUID().slice(0, 8)}`;
    const pki = await makePki();
    const mutual = await tlsProxy(pki, 61613, true);
    try {
      const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
      const got = result(
        await node(major, "tls.mjs", [
          `stomp+ssl://guest:guest@127.0.0.1:${mutual.port}`,
          JSON.stringify({ prefix, tls }),
          JSON.stringify({ prefix, tls: { ...tls, ca: pki.otherCa }, connectTimeoutMs: 3000 }),
        ]),
        "tls.mjs",
      );
      assertScenario(got, "stomp");
      assert.equal(got.wrongCa, "ERR_TRANSPORT");
    } finally {
      await mutual.close();
      await Deno.remove(pki.dir, { recursive: true });
      await cleanRabbit(prefix);
    }
  });
}

/** Removes what the programs created on the shared brokers under `prefix` (every step, even if one fails). */
async function cleanUp(prefix: string): Promise<void> {
  const removeMqtt = async () => {
    const mqtt = await MqttTransport.connect("mqtt://127.0.0.1:1883", { prefix: `${prefix}-mqtt` });
    try {
      for (const id of ["alice", "bob", "carol"]) {
        await mqtt.removeSession(`${prefix}-mqtt/agent/${id}`);
        await mqtt.directory.remove(id);
      }
    } finally {
      await mqtt.close();
    }
  };
  const steps = await Promise.allSettled([
    cleanRedis(prefix),
    cleanRabbit(prefix), // AMQP's exchange and queues, STOMP's queues
    cleanNats(`${prefix}-nats`),
    removeMqtt(),
  ]);
  const failed = steps.find((s) => s.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
