// A Spores agent and the independent Python Praval peer (PyNaCl, msgpack, paho-mqtt) on the real Mosquitto,
// over Praval's own topics: praval/spores/agent/{to}/{type}.
import assert from "node:assert/strict";
import { Agent, type Message, PravalKeyPair } from "../mod.ts";
import { MqttTransport, sessionOf } from "../transports/mqtt.ts";
import { requireBroker, requireTool } from "./_env.ts";

const until = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

Deno.test("praval over MQTT: both directions with a Python peer on Praval's topics; a replay refused", async () => {
  if (!(await requireBroker("Mosquitto", 1883))) return;
  const ok = await requireTool("python3-paho-mqtt, python3-nacl, python3-msgpack", [
    "/usr/bin/python3",
    "-c",
    "import paho.mqtt.client, nacl, msgpack",
  ]);
  if (!ok) return;
  const tag = crypto.randomUUID().slice(0, 8);
  const tsName = `ts-${tag}`;
  const pyName = `py-${tag}`;
  const pyKeys = await PravalKeyPair.generate(pyName);
  const tsKeys = await PravalKeyPair.generate(tsName);
  const agent = await Agent.start({
    id: tsName,
    transport: "mqtt://127.0.0.1:1883",
    praval: { keys: tsKeys, peers: [pyKeys.publicKeys().toJSON()] },
  });
  const got: Message[] = [];
  agent.on("request", (m) => void got.push(m), { classic: true });
  agent.on("response", (m) => void got.push(m), { classic: true });
  const child = new Deno.Command("/usr/bin/python3", {
    args: [
      new URL("./praval_peer.py", import.meta.url).pathname,
      "mqtt",
      "127.0.0.1",
      "1883",
      pyName,
      tsName,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(
    JSON.stringify({
      keys: pyKeys.exportKeys(),
      peer: tsKeys.publicKeys().toJSON(),
      send: [{ knowledge: { question: "tide?", n: 1 }, spore_type: "request", replays: 1 }],
    }) + "\n",
  ));
  await w.close();
  try {
    await until(() => lines.includes("ready"), 30_000, "python peer ready");
    // Praval → Spores, on praval/spores/agent/{ts}/request; the replayed copy is refused and counted.
    await until(() => got.some((m) => m.type === "request"), 20_000, "request from Python");
    await until(() => agent.metrics().rejected["ERR_REPLAY"] === 1, 20_000, "replay refused");
    const req = got.find((m) => m.type === "request")!;
    assert.equal(req.from, pyName);
    assert.equal(req.kind, "praval");
    assert.deepEqual(req.content, { question: "tide?", n: 1 });
    // Spores → Praval, on praval/spores/agent/{py}/request; the peer answers on .../{ts}/response.
    const id = await agent.send(pyName, { type: "request", content: { ask: "depth?" } });
    await until(() => got.some((m) => m.type === "response"), 20_000, "response from Python");
    assert.deepEqual(got.find((m) => m.type === "response")!.content, {
      echo: { ask: "depth?" },
      reply_to: id,
    });
    await agent.send(pyName, { type: "knowledge", content: { stop: true } });
    assert.ok((await child.status).success);
    await reading;
    const received = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    assert.deepEqual(received.filter((r) => r.error), []);
    assert.deepEqual(received.map((r) => r.topic), [
      `praval/spores/agent/${pyName}/request`,
      `praval/spores/agent/${pyName}/knowledge`,
    ]);
    assert.ok(received.every((r) => r.repackedIdentical === true));
    assert.equal(got.length, 2);
  } finally {
    try {
      child.kill();
    } catch { /* exited */ }
    await child.status;
    await agent.close();
    // Put Mosquitto back as it was: the agent's persistent session and its retained card go.
    const t = await MqttTransport.connect("mqtt://127.0.0.1:1883", { prefix: "praval/spores" });
    try {
      await t.removeSession(sessionOf("praval/spores", { agent: tsName }).clientId);
      await t.directory.remove(tsName);
    } finally {
      await t.close();
    }
  }
});
