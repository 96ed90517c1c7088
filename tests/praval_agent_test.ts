// The agent runtime on the Praval profile, without a broker: a Praval peer simulated with the codec
// on the in-process transport (the Python peer and RabbitMQ are in praval_amqp_test.ts).
import assert from "node:assert/strict";
import {
  Agent,
  ConfigError,
  KeyChangedError,
  type Message,
  openPravalSpore,
  PravalKeyPair,
  sealPravalSpore,
} from "../mod.ts";
import { createTransport } from "../transports/memory.ts";

const until = async (cond: () => boolean, what: string, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

async function setup(name: string) {
  const transport = await createTransport(`memory://${name}`);
  const praval = await PravalKeyPair.generate("praval-py");
  const keys = await PravalKeyPair.generate("bridge");
  const agent = await Agent.start({
    id: "bridge",
    transport,
    praval: { keys, peers: [praval.publicKeys()] },
  });
  // What the Praval agent receives.
  const inbox: Uint8Array[] = [];
  await transport.subscribe({ agent: "praval-py" }, async (d) => {
    inbox.push(d.bytes);
    await d.ack();
  });
  const fromPraval = (knowledge: Record<string, unknown>, sporeType = "request") =>
    sealPravalSpore(praval, keys.publicKeys(), { sporeType, knowledge });
  return { transport, praval, keys, agent, inbox, fromPraval };
}

Deno.test("praval agent: send and receive, a failing handler is retried, replays refused", async () => {
  const { transport, praval, keys, agent, inbox, fromPraval } = await setup("praval-1");
  try {
    let fails = 1;
    const got: Message[] = [];
    agent.on("request", (m) => {
      if (fails-- > 0) throw new Error("not yet");
      got.push(m);
    }, { classic: true });
    const spore = await fromPraval({ q: 1 });
    await transport.publish({ agent: "bridge" }, spore);
    await until(() => got.length === 1, "handled after one failure");
    assert.equal(agent.metrics().redeliveries, 1);
    assert.equal(got[0]!.redeliveries, 1);
    assert.deepEqual(got[0]!.content, { q: 1 });
    // A copy published again (not a broker redelivery) is a replay.
    await transport.publish({ agent: "bridge" }, spore);
    await until(() => agent.metrics().rejected["ERR_REPLAY"] === 1, "replay refused");
    assert.equal(got.length, 1);

    const id = await agent.send("praval-py", {
      type: "knowledge",
      content: { a: [1, "b"] },
      priority: 9,
      ttlMs: 60_000,
    });
    await until(() => inbox.length === 1, "sent to Praval");
    const opened = await openPravalSpore(inbox[0]!, praval, {
      peers: new Map([["bridge", keys.publicKeys()]]),
    });
    assert.deepEqual(opened.knowledge, { a: [1, "b"] });
    assert.equal(opened.spore.id, id);
    assert.equal(opened.spore.priority, 10);
    assert.ok(Math.abs(opened.spore.expiresAt! - opened.spore.createdAt - 60) < 0.01);
    await assert.rejects(
      () => agent.send("praval-py", { type: "knowledge", content: { b: new Uint8Array(1) } }),
      ConfigError,
    );
  } finally {
    await agent.close();
    await transport.close();
  }
});

Deno.test("praval agent: handlers must opt in; onAny classic; keys pinned per name", async () => {
  const { transport, praval, agent, fromPraval } = await setup("praval-2");
  try {
    const plain: Message[] = [];
    const any: Message[] = [];
    agent.on("request", (m) => void plain.push(m)); // not marked classic
    agent.onAny((m) => void any.push(m), { classic: true });
    await transport.publish({ agent: "bridge" }, await fromPraval({ q: 1 }, "request"));
    await transport.publish({ agent: "bridge" }, await fromPraval({ q: 2 }, "notification"));
    await until(() => any.length === 1 && agent.metrics().unhandled === 1, "routing");
    assert.equal(plain.length, 0);
    assert.equal(any[0]!.type, "notification");
    assert.equal(any[0]!.security, "classic");
    // Pinning other keys under a pinned name is a loud error; replacing is explicit.
    const other = await PravalKeyPair.generate("praval-py");
    assert.throws(() => agent.declarePravalPeer(other.publicKeys()), KeyChangedError);
    agent.declarePravalPeer(other.publicKeys(), { replace: true });
    await transport.publish({ agent: "bridge" }, await fromPraval({ q: 3 }, "notification"));
    await until(() => agent.metrics().rejected["ERR_KEY_CHANGED"] === 1, "old keys refused");
    assert.equal(praval.agentName, "praval-py");
  } finally {
    await agent.close();
    await transport.close();
  }
});

Deno.test("praval agent: without a profile a Praval spore is a clear ProtocolError; keys must match the id", async () => {
  const transport = await createTransport("memory://praval-3");
  const plain = await Agent.start({ id: "plain", transport });
  try {
    const a = await PravalKeyPair.generate("x");
    const b = await PravalKeyPair.generate("plain");
    await transport.publish(
      { agent: "plain" },
      await sealPravalSpore(a, b.publicKeys(), { sporeType: "knowledge", knowledge: {} }),
    );
    await until(() => plain.metrics().rejected["ERR_PROTOCOL"] === 1, "refused");
    await assert.rejects(
      () => Agent.start({ id: "other", transport, praval: { keys: a } }),
      /Praval keys are for x, not for agent other/,
    );
    assert.throws(() => plain.declarePravalPeer(a.publicKeys()), ConfigError);
  } finally {
    await plain.close();
    await transport.close();
  }
});
