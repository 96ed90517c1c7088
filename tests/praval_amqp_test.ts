// A Spores agent and an independent Python Praval peer (PyNaCl, msgpack, pika) on the real RabbitMQ,
// over Praval's own exchange and routing keys: praval.spores, agent.{to}.{type}, broadcast.{type}.
import assert from "node:assert/strict";
import { connect } from "amqplib";
import { Agent, type Message, PravalKeyPair, Reef, type Spore } from "../mod.ts";
import { requireBroker, requireTool } from "./_env.ts";

const AMQP = "amqp://guest:guest@127.0.0.1:5672";
const until = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** Runs the Python Praval peer on RabbitMQ; its stdout lines collect in `lines`. */
function pythonPeer(name: string, peerName: string, conf: unknown) {
  const child = new Deno.Command("/usr/bin/python3", {
    args: [new URL("./praval_peer.py", import.meta.url).pathname, "amqp", AMQP, name, peerName],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  })();
  const w = child.stdin.getWriter();
  const configured = w.write(new TextEncoder().encode(JSON.stringify(conf) + "\n")).then(() => w.close());
  return {
    child,
    lines,
    configured,
    async stop() {
      try {
        child.kill();
      } catch {
        // already exited
      }
      await child.status;
      await child.stderr.cancel().catch(() => {});
      await reading;
    },
    received: () => lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)),
  };
}

/** Removes what the agent declared; Praval's shared exchanges only if nothing else uses them. */
async function cleanup(ids: string[], channels: string[]): Promise<void> {
  const conn = await connect(AMQP);
  try {
    const ch = await conn.createChannel();
    for (const id of ids) {
      for (const q of ["agent", "dead", "card"]) await ch.deleteQueue(`praval.spores.${q}.${id}`);
      for (const c of channels) await ch.deleteQueue(`praval.spores.channel.${c}.${id}`);
    }
    await ch.close();
    for (const x of ["praval.spores.cards", "praval.spores.dlx", "praval.spores"]) {
      const c = await conn.createChannel();
      c.on("error", () => {});
      try {
        await c.deleteExchange(x, { ifUnused: true });
        await c.close();
      } catch {
        // in use by someone else: leave it
      }
    }
  } finally {
    await conn.close();
  }
}

Deno.test("praval over RabbitMQ: both directions with a Python peer; replay, tamper and unsigned broadcast refused", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  if (
    !(await requireTool("python3-pika, python3-nacl, python3-msgpack", [
      "/usr/bin/python3",
      "-c",
      "import pika, nacl, msgpack",
    ]))
  ) {
    return;
  }
  const tag = crypto.randomUUID().slice(0, 8);
  const tsName = `ts-${tag}`;
  const pyName = `py-${tag}`;
  const pyKeys = await PravalKeyPair.generate(pyName);
  const tsKeys = await PravalKeyPair.generate(tsName);
  const agent = await Agent.start({
    id: tsName,
    transport: AMQP,
    praval: { keys: tsKeys, peers: [pyKeys.publicKeys().toJSON()] },
  });
  const got: Message[] = [];
  const plainHandlerCalls: Message[] = [];
  agent.on("request", (m) => void got.push(m), { classic: true });
  agent.on("response", (m) => void got.push(m), { classic: true });
  agent.on("notification", (m) => void plainHandlerCalls.push(m)); // not marked classic
  await agent.join("broadcast"); // binds broadcast.broadcast.#, which takes Praval's broadcast.broadcast
  const py = pythonPeer(pyName, tsName, {
    keys: pyKeys.exportKeys(),
    peer: tsKeys.publicKeys().toJSON(),
    send: [
      {
        knowledge: { question: "tide at noon?", n: 1 },
        spore_type: "request",
        priority: 8,
        replays: 1,
        tampered: true,
      },
      { knowledge: { event: "storm" }, spore_type: "notification" },
    ],
    broadcast: { alert: "plaintext" },
  });
  try {
    await py.configured;
    await until(() => py.lines.includes("ready"), 30_000, "python peer ready");

    // Praval → Spores: the request arrives once; its replay and a tampered copy are refused and counted.
    await until(() => got.some((m) => m.type === "request"), 20_000, "request from Python");
    await until(
      () => (agent.metrics().rejected["ERR_SIGNATURE"] ?? 0) >= 2,
      20_000,
      "tamper and broadcast refused",
    );
    await until(() => agent.metrics().rejected["ERR_REPLAY"] === 1, 20_000, "replay refused");
    await until(() => agent.metrics().unhandled === 1, 20_000, "notification unhandled");
    const req = got.find((m) => m.type === "request")!;
    assert.equal(req.from, pyName);
    assert.equal(req.kind, "praval");
    assert.equal(req.security, "classic");
    assert.deepEqual(req.content, { question: "tide at noon?", n: 1 });
    assert.equal(req.priority, 7);
    assert.equal(plainHandlerCalls.length, 0);

    // Spores → Praval: a request on agent.{py}.request; the Python peer answers on agent.{ts}.response.
    const id = await agent.send(pyName, {
      type: "request",
      content: { ask: "depth?", list: [1, 2.5] },
      priority: 6,
    });
    await until(() => got.some((m) => m.type === "response"), 20_000, "response from Python");
    const res = got.find((m) => m.type === "response")!;
    assert.deepEqual(res.content, { echo: { ask: "depth?", list: [1, 2.5] }, reply_to: id });
    assert.equal(res.from, pyName);
    await agent.send(pyName, { type: "knowledge", content: { stop: true } });
    assert.ok((await py.child.status).success);
    await py.stop();
    const received = py.received();
    assert.deepEqual(received.filter((r) => r.error), []);
    assert.deepEqual(received.map((r) => r.routing_key), [
      `agent.${pyName}.request`,
      `agent.${pyName}.knowledge`,
    ]);
    assert.ok(received.every((r) => r.repackedIdentical === true));
    assert.equal(received[0].spore_type, "request");
    // Nothing else reached a handler.
    assert.equal(got.length, 2);
    const m = agent.metrics();
    assert.equal(m.delivered, 2);
    assert.equal(m.rejected["ERR_SIGNATURE"], 2);
  } finally {
    await py.stop();
    await agent.close();
    await cleanup([tsName], ["broadcast"]);
  }
});

Deno.test("praval: a Spores card in a declared Praval peer's name is refused; sends need a declared peer", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const tag = crypto.randomUUID().slice(0, 8);
  const bridge = `bridge-${tag}`;
  const impostor = `praval-${tag}`; // the name of a Praval agent, taken by a Spores agent
  const pravalKeys = await PravalKeyPair.generate(impostor);
  const a = await Agent.start({ id: bridge, transport: AMQP, praval: { peers: [pravalKeys.publicKeys()] } });
  const b = await Agent.start({
    id: impostor,
    transport: AMQP,
    transportOptions: { exchange: "praval.spores" },
  });
  try {
    const got: Message[] = [];
    a.onAny((m) => void got.push(m), { classic: true });
    await b.send(bridge, { type: "knowledge", content: { forged: true } });
    await until(() => a.metrics().rejected["ERR_TRUST"] === 1, 20_000, "impostor refused");
    assert.equal(got.length, 0);
    // A Praval type is required towards a Praval peer.
    await assert.rejects(() => a.send(impostor, { type: "chat", content: {} }), /understands the types/);
  } finally {
    await a.close();
    await b.close();
    await cleanup([bridge, impostor], []);
  }
});

Deno.test("praval: the Reef facade on the Praval profile talks to the Python peer", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  if (
    !(await requireTool("python3-pika, python3-nacl, python3-msgpack", [
      "/usr/bin/python3",
      "-c",
      "import pika, nacl, msgpack",
    ]))
  ) {
    return;
  }
  const tag = crypto.randomUUID().slice(0, 8);
  const tsName = `reef-${tag}`;
  const pyName = `pyreef-${tag}`;
  const pyKeys = await PravalKeyPair.generate(pyName);
  const reef = await Reef.start({ transport: AMQP, praval: { peers: [pyKeys.publicKeys()] } });
  const spores: Spore[] = [];
  await reef.subscribe(tsName, (s) => void spores.push(s));
  const py = pythonPeer(pyName, tsName, {
    keys: pyKeys.exportKeys(),
    peer: (await reef.pravalPublicKeys(tsName)).toJSON(),
    send: [{ knowledge: { finding: "tides follow the moon" }, spore_type: "knowledge" }],
  });
  try {
    await py.configured;
    await until(() => py.lines.includes("ready"), 30_000, "python peer ready");
    await until(() => spores.length === 1, 20_000, "knowledge from Python");
    assert.equal(spores[0]!.fromAgent, pyName);
    assert.equal(spores[0]!.toAgent, tsName);
    assert.equal(spores[0]!.sporeType, "knowledge");
    assert.equal(spores[0]!.security, "classic");
    assert.deepEqual(spores[0]!.knowledge, { finding: "tides follow the moon" });
    const id = await reef.send(tsName, pyName, { ask: "depth?" }, { sporeType: "request", priority: 9 });
    await until(() => spores.length === 2, 20_000, "response from Python");
    assert.deepEqual(spores[1]!.knowledge, { echo: { ask: "depth?" }, reply_to: id });
    assert.equal(spores[1]!.sporeType, "response");
    // A reef broadcast reaches the Praval peer sealed to it, on agent.{py}.knowledge.
    await reef.broadcast(tsName, { stop: true }, { sporeType: "knowledge" });
    assert.ok((await py.child.status).success);
    await py.stop();
    const received = py.received();
    assert.deepEqual(received.map((r) => [r.routing_key, r.spore_type, r.received]), [
      [`agent.${pyName}.request`, "request", { ask: "depth?" }],
      [`agent.${pyName}.knowledge`, "knowledge", { stop: true }],
    ]);
  } finally {
    await py.stop();
    await reef.close();
    await cleanup([tsName], ["reef"]);
  }
});

Deno.test("examples/praval_bridge.ts runs as written with its stated permissions", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  if (
    !(await requireTool("python3-pika, python3-nacl, python3-msgpack", [
      "/usr/bin/python3",
      "-c",
      "import pika, nacl, msgpack",
    ]))
  ) {
    return;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--quiet",
      "--allow-net=127.0.0.1:5672",
      "--allow-read=.",
      "--allow-run=/usr/bin/python3",
      "examples/praval_bridge.ts",
    ],
    cwd: new URL("../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /routing key agent\.praval-py-\w+\.request/);
  assert.match(
    text,
    /response \{"echo":\{"question":"tide at noon\?"\},"reply_to":"[0-9a-f-]{36}"\} \(classic security\)/,
  );
  assert.match(text, /metrics: sent 2, delivered 1/);
  await cleanup([], []); // the example removed its queues; the exchanges go if nothing else uses them
});
