// The MQTT transport on the real Mosquitto of this machine (127.0.0.1:1883): the shared conformance suite
// on MQTT v5 (QoS 1 and QoS 2) and v3.1.1, then topic and id validation, and the directory.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  Agent,
  ConfigError,
  createCard,
  Identity,
  ProtocolError,
  SporeError,
  TransportError,
} from "../mod.ts";
import { cardTopic, MqttTransport, type MqttTransportOptions, sessionOf } from "../transports/mqtt.ts";
import { requireBroker } from "./_env.ts";
import { transportConformance } from "./transport_conformance.ts";

const URL = "mqtt://127.0.0.1:1883";
const prefix = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
const opened: MqttTransport[] = [];
const open = async (options: MqttTransportOptions) => {
  const t = await MqttTransport.connect(URL, { prefix, ...options });
  opened.push(t);
  return t;
};
const available = () => requireBroker("Mosquitto", 1883);

transportConformance({ name: "mqtt v5 qos 1", available, open: () => open({}), slackMs: 300 });
transportConformance({ name: "mqtt v5 qos 2", available, open: () => open({ qos: 2 }), slackMs: 300 });
transportConformance({
  name: "mqtt v3.1.1",
  available,
  open: () => open({ protocolVersion: 4, prefix: `${prefix}/v4` }),
  slackMs: 300,
});

Deno.test("mqtt: ids, channels, types and prefixes cannot leave their topic level", async () => {
  for (const bad of ["a/b", "+", "#", "a+b", "$SYS", "", "x".repeat(200)]) {
    assert.throws(() => sessionOf("p", { agent: bad }), ConfigError, bad);
    assert.throws(() => sessionOf("p", { channel: bad }, "m"), ConfigError, bad);
    assert.throws(() => sessionOf("p", { channel: "c" }, bad), ConfigError, bad);
    assert.throws(() => cardTopic("p", bad), ConfigError, bad);
  }
  for (const bad of ["", "/a", "a/", "a//b", "a/+", "#", "$SYS", "a b"]) {
    await assert.rejects(MqttTransport.connect(URL, { prefix: bad }), ConfigError, bad);
  }
  await assert.rejects(MqttTransport.connect(URL, { qos: 2, protocolVersion: 4 }), ConfigError);
  await assert.rejects(MqttTransport.connect("mqtt://127.0.0.1:1883/path"), ConfigError);
  await assert.rejects(MqttTransport.connect("http://127.0.0.1:1883"), ConfigError);
  if (!(await available())) return;
  const t = await open({});
  try {
    for (const bad of ["a/b", "+", "#", "$x"]) {
      await assert.rejects(t.publish({ agent: bad }, new Uint8Array(1)), ConfigError);
      await assert.rejects(t.publish({ channel: bad }, new Uint8Array(1)), ConfigError);
      await assert.rejects(t.publish({ agent: "ok" }, new Uint8Array(1), { type: bad }), ConfigError);
      await assert.rejects(t.subscribe({ agent: bad }, (d) => d.ack()), ConfigError);
    }
  } finally {
    await t.close();
  }
});

Deno.test("mqtt: an unreachable broker is a TransportError; credentials never reach its message", async () => {
  const e = await MqttTransport.connect("mqtt://user:hunter2@127.0.0.1:1", { connectTimeoutMs: 2000 }).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(e instanceof TransportError, String(e));
  assert.doesNotMatch(e.message, /hunter2/);
  assert.match(e.message, /mqtt:\/\/127\.0\.0\.1:1/);
});

Deno.test("mqtt: a direct publish that no session is subscribed for is a TransportError (v5)", async () => {
  if (!(await available())) return;
  const t = await open({});
  try {
    await assert.rejects(
      t.publish({ agent: `nobody-${crypto.randomUUID().slice(0, 6)}` }, new Uint8Array(3)),
      TransportError,
    );
    await t.publish({ channel: "nobody-listens" }, new Uint8Array(3)); // a channel without members is fine
  } finally {
    await t.close();
  }
});

Deno.test("mqtt: the acknowledgement waits for the handler: a connection lost mid-handler means redelivery", async () => {
  if (!(await available())) return;
  const a = await open({});
  const b = await open({});
  const agent = `ack-${crypto.randomUUID().slice(0, 6)}`;
  try {
    const started = Promise.withResolvers<void>();
    const sub = await a.subscribe({ agent }, async (d) => {
      started.resolve();
      await new Promise((r) => setTimeout(r, 200));
      await d.ack();
    });
    await b.publish({ agent }, new TextEncoder().encode("once"));
    await started.promise;
    await sub.close(); // before the handler finished: no PUBACK went out
    const got: { text: string; redeliveries: number }[] = [];
    const again = await b.subscribe({ agent }, async (d) => {
      got.push({ text: new TextDecoder().decode(d.bytes), redeliveries: d.redeliveries });
      await d.ack();
    });
    const end = Date.now() + 5000;
    while (got.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    await again.close();
    assert.deepEqual(got, [{ text: "once", redeliveries: 1 }]);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("mqtt: nack past maxDeliveries moves the message to {prefix}/dlq/{agent}, readable later", async () => {
  if (!(await available())) return;
  const t = await open({ maxDeliveries: 3 });
  const agent = `dl-${crypto.randomUUID().slice(0, 6)}`;
  try {
    let attempts = 0;
    const sub = await t.subscribe({ agent }, (d) => {
      attempts++;
      return d.nack();
    });
    await t.publish({ agent }, new Uint8Array([7, 7, 7]));
    const end = Date.now() + 5000;
    while (t.stats.deadLettered === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await sub.close();
    assert.equal(attempts, 3);
    assert.equal(t.stats.deadLettered, 1);
    const dead = Promise.withResolvers<{ bytes: number[]; n: number }>();
    const reader = await t.subscribeDeadLetters(agent, async (d) => {
      dead.resolve({ bytes: [...d.bytes], n: d.redeliveries });
      await d.ack();
    });
    assert.deepEqual(await dead.promise, { bytes: [7, 7, 7], n: 3 });
    await reader.close();
  } finally {
    await t.close();
  }
});

Deno.test("mqtt: TTL comes from v5 message expiry and is checked on read", async () => {
  if (!(await available())) return;
  const t = await open({});
  const agent = `ttl-${crypto.randomUUID().slice(0, 6)}`;
  try {
    (await t.subscribe({ agent }, (d) => d.ack())).close();
    await new Promise((r) => setTimeout(r, 100));
    await t.publish({ agent }, new Uint8Array([1]), { ttlMs: 1000 });
    await new Promise((r) => setTimeout(r, 2200)); // the broker's expiry interval (1 s) has passed
    const got: number[] = [];
    const sub = await t.subscribe({ agent }, async (d) => {
      got.push(d.bytes[0]!);
      await d.ack();
    });
    await new Promise((r) => setTimeout(r, 500));
    await sub.close();
    assert.deepEqual(got, []);
  } finally {
    await t.close();
  }
});

Deno.test("mqtt: the directory verifies retained cards on read and announces publications", async () => {
  if (!(await available())) return;
  const a = await open({});
  const b = await open({});
  try {
    const seen = Promise.withResolvers<string>();
    const stop = b.directory.watch((card) => seen.resolve(card.id));
    await new Promise((r) => setTimeout(r, 200));
    const agent = await Agent.start({ id: "carol", transport: a });
    assert.equal(await seen.promise, "carol");
    stop();
    // A fresh connection reads the retained card.
    const c = await open({});
    assert.equal((await c.directory.lookup("carol"))?.fingerprint, agent.identity.fingerprint);
    assert.equal(await c.directory.lookup("nobody-at-all"), undefined);
    // A card filed under another agent's topic is refused; so are bytes that are not a card.
    const mallory = await createCard("mallory", await Identity.generate());
    await a.client.publishAsync(cardTopic(prefix, "dave"), Buffer.from(mallory), { qos: 1, retain: true });
    await assert.rejects(c.directory.lookup("dave"), ProtocolError, "filed under dave is for mallory");
    await a.client.publishAsync(cardTopic(prefix, "erin"), Buffer.from([1, 2, 3]), { qos: 1, retain: true });
    await assert.rejects(c.directory.lookup("erin"), SporeError);
    assert.equal(c.directory.refused, 2);
    await agent.close();
    for (const id of ["carol", "dave", "erin"]) await a.directory.remove(id);
    assert.equal(await c.directory.lookup("carol"), undefined);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("mqtt: an agent started by URL loads the transport lazily and talks end to end", async () => {
  if (!(await available())) return;
  const transportOptions = { prefix };
  await using alice = await Agent.start({ id: "alice", transport: URL, transportOptions });
  await using bob = await Agent.start({ id: "bob", transport: URL, transportOptions });
  const got = Promise.withResolvers<unknown>();
  bob.on("chat", (m) => got.resolve(m.content));
  await alice.connect("bob");
  await alice.send("bob", { type: "chat", content: "over mqtt" });
  assert.equal(await got.promise, "over mqtt");
  assert.equal(alice.transport.name, "mqtt");
  for (const t of [alice.transport, bob.transport]) opened.push(t as MqttTransport);
});

Deno.test("mqtt: remove the tests' sessions and retained cards", async () => {
  if (!(await available())) return;
  const t = await MqttTransport.connect(URL, { prefix });
  try {
    const ids = new Set<string>();
    for (const o of opened) for (const s of o.sessions) ids.add(s);
    for (const id of ids) await t.removeSession(id);
    for (const id of ["alice", "bob", "carol"]) await t.directory.remove(id);
  } finally {
    await t.close();
  }
});
