// The NATS transport on the real server of this machine (127.0.0.1:4222, JetStream on).
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { Agent, ConfigError, createCard, Identity, ProtocolError, TransportError } from "../mod.ts";
import {
  consumerNames,
  createTransport,
  type NatsDelivery,
  natsNames,
  NatsTransport,
  parseNatsUrl,
  token,
  untoken,
} from "../transports/nats.ts";
import { requireBroker, requireTool } from "./_env.ts";
import { cleanNats, NATS_URL, natsPrefix, startNatsServer } from "./_nats.ts";
import { transportConformance } from "./transport_conformance.ts";

const prefix = natsPrefix();
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 10_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await sleep(10);
  }
};
const open = (o: Record<string, unknown> = {}) =>
  NatsTransport.connect(NATS_URL, { prefix, ackWaitMs: 2000, fetchExpiresMs: 1000, ...o });

transportConformance({
  name: "nats",
  available: () => requireBroker("NATS", 4222),
  open: () => createTransport(NATS_URL, { prefix, ackWaitMs: 2000, fetchExpiresMs: 1000 }),
  slackMs: 500,
});

Deno.test("nats: ids map injectively onto subject tokens, consumer names and keys", async () => {
  const ids = ["a", "a.b", "a_2Eb", "a_b", "a:b", "a-b", "A", "x.>", "_", "__", "a.", ".a", "a..b"];
  const tokens = ids.map(token);
  assert.equal(new Set(tokens).size, ids.length);
  for (const [i, t] of tokens.entries()) {
    assert.match(t, /^[A-Za-z0-9_-]+$/);
    assert.equal(untoken(t), ids[i]);
  }
  // Random ids from the whole alphabet round-trip.
  const alphabet = "abcXYZ019._:-";
  for (let n = 0; n < 2000; n++) {
    const id = Array.from({ length: 1 + (n % 9) }, () => alphabet[Math.floor(Math.random() * 13)]).join("");
    assert.equal(untoken(token(id)), id);
  }
  // Channel and member pairs never share a consumer.
  const pairs = [["a", "b_c"], ["a_b", "c"], ["a", "b__c"], ["a__b", "c"], ["a.b", "c"], ["a", "b.c"]];
  const durables = await Promise.all(pairs.map(([c, m]) => consumerNames("p", { channel: c! }, m)));
  assert.equal(new Set(durables.map((d) => d.durable)).size, pairs.length);
  for (const d of durables) assert.doesNotMatch(d.durable, /[.*>\s]/);
  // A very long id is hashed to a bounded name.
  const long = await consumerNames("p", { agent: "x".repeat(128) }, undefined);
  assert.ok(long.durable.length <= 200);
  assert.throws(() => token("é"), ConfigError);
  await assert.rejects(consumerNames("p", { agent: "a b" }), ConfigError);
  await assert.rejects(consumerNames("p", { agent: "a>" }), ConfigError);
  await assert.rejects(consumerNames("p", { agent: "a*" }), ConfigError);
});

Deno.test("nats: prefixes, stream names and URLs are checked; credentials come from the URL", () => {
  assert.deepEqual(natsNames("acme.spores"), {
    prefix: "acme.spores",
    stream: "acme_spores",
    bucket: "acme_spores_cards",
  });
  for (const bad of ["", "a..b", "a.*", "a.>", "a b", ".a", "a.", "a.b.c.d.e"]) {
    assert.throws(() => natsNames(bad), ConfigError, bad);
  }
  assert.throws(() => natsNames("ok", "bad.stream"), ConfigError);
  assert.deepEqual(parseNatsUrl("nats://127.0.0.1"), { servers: ["127.0.0.1:4222"], tls: false });
  assert.deepEqual(parseNatsUrl("tls://u%40x:p%3Aw@h1:1,h2:2/"), {
    servers: ["h1:1", "h2:2"],
    tls: true,
    user: "u@x",
    pass: "p:w",
  });
  assert.equal(parseNatsUrl("nats://s3cret@h").token, "s3cret");
  for (const bad of ["redis://h", "nats://", "nats://h/path", "nats://h?x=1", "nats://h,", "nats://a@b@"]) {
    assert.throws(() => parseNatsUrl(bad), ConfigError, bad);
  }
});

Deno.test("nats: core NATS (no JetStream) is refused with a ConfigError", async () => {
  await assert.rejects(
    NatsTransport.connect(NATS_URL, { prefix, jetstream: false }),
    ConfigError,
  );
  if (!(await requireTool("nats-server", ["/usr/sbin/nats-server", "--version"]))) return;
  const server = await startNatsServer((port) => `listen: 127.0.0.1:${port}\n`);
  try {
    await assert.rejects(NatsTransport.connect(server.url, { prefix }), ConfigError);
  } finally {
    await server.kill();
    await Deno.remove(server.dir, { recursive: true });
  }
});

Deno.test("nats: an unreachable server is a TransportError", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const e = await NatsTransport.connect(`nats://u:secret@127.0.0.1:${port}`, {
    prefix,
    connectTimeoutMs: 1000,
  })
    .catch((e) => e);
  assert.ok(e instanceof TransportError);
  assert.match(e.message, new RegExp(`connection refused: nothing listens on 127\\.0\\.0\\.1:${port}`));
  assert.ok(!e.message.includes("secret"));
});

Deno.test("nats: an id with a dot reaches only its own agent; a republished spore id is stored once", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const t = await open();
  try {
    const got: Record<string, string[]> = { x: [], "x.y": [] };
    const subs = await Promise.all(
      ["x", "x.y"].map((agent) =>
        t.subscribe({ agent }, async (d) => {
          got[agent]!.push(dec(d.bytes));
          await d.ack();
        })
      ),
    );
    await t.publish({ agent: "x.y" }, enc("for x.y"), { type: "t.z" });
    await t.publish({ agent: "x" }, enc("for x"), { dedupId: "spore-1" });
    await t.publish({ agent: "x" }, enc("for x"), { dedupId: "spore-1" });
    await until(() => got["x"]!.length >= 1 && got["x.y"]!.length >= 1);
    await sleep(500);
    assert.deepEqual(got, { x: ["for x"], "x.y": ["for x.y"] });
    await Promise.all(subs.map((s) => s.close()));
  } finally {
    await t.close();
  }
});

Deno.test("nats: after maxRedeliveries the transport dead-letters (PubAck) and terms the message", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const t = await open({ maxRedeliveries: 2 });
  try {
    const agent = `dl-${crypto.randomUUID().slice(0, 6)}`;
    const seen: number[] = [];
    const sub = await t.subscribe({ agent }, async (d) => {
      seen.push(d.redeliveries);
      await d.nack();
    });
    await t.publish({ agent }, enc("poison"), { dedupId: "p-1" });
    await until(() => t.deadLettered === 1, 10_000, "dead letter");
    await sleep(300);
    assert.deepEqual(seen, [0, 1, 2]);
    // Explicit dead-lettering (what the agent does after its own limit).
    const other = `${agent}-2`;
    const sub2 = await t.subscribe({ agent: other }, (d) => d.deadLetter!());
    await t.publish({ agent: other }, enc("given up"));
    await until(() => t.deadLettered === 2, 10_000, "explicit dead letter");
    await sub.close();
    await sub2.close();
    const jsm = await jetstreamManager(t.connection);
    const dead = await jsm.streams.getMessage(t.names.stream, {
      last_by_subj: `${prefix}.dead.agent.${token(agent)}`,
    });
    assert.equal(dec(dead!.data), "poison");
    assert.equal(dead!.header.get("Spores-Deliveries"), "3");
    assert.equal(dead!.header.get("Spores-Id"), "p-1");
    // The server has forgotten both (term), within less than ack_wait.
    const settled = Date.now() + 1500;
    const pending = async () =>
      (await jsm.consumers.info(t.names.stream, `agent_${token(agent)}`)).num_ack_pending +
      (await jsm.consumers.info(t.names.stream, `agent_${token(other)}`)).num_ack_pending;
    while ((await pending()) > 0 && Date.now() < settled) await sleep(50);
    assert.equal(await pending(), 0, "a dead-lettered message is still pending");
    // Nothing comes back to the agent.
    const again: string[] = [];
    const sub3 = await t.subscribe({ agent }, async (d) => {
      again.push(dec(d.bytes));
      await d.ack();
    });
    await sleep(2500);
    await sub3.close();
    assert.deepEqual(again, []);
  } finally {
    await t.close();
  }
});

Deno.test("nats: a handler slower than ack_wait keeps its message (in-progress acks)", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const t = await open({ ackWaitMs: 400 });
  const u = await open({ ackWaitMs: 400 });
  try {
    const agent = `slow-${crypto.randomUUID().slice(0, 6)}`;
    const deliveries: number[] = [];
    const handler = async (d: NatsDelivery) => {
      deliveries.push(d.redeliveries);
      await sleep(1500);
      await d.ack();
    };
    const s1 = await t.subscribe({ agent }, (d) => handler(d as NatsDelivery));
    const s2 = await u.subscribe({ agent }, (d) => handler(d as NatsDelivery));
    await t.publish({ agent }, enc("slow"));
    await sleep(2500);
    assert.deepEqual(deliveries, [0]);
    await s1.close();
    await s2.close();
  } finally {
    await t.close();
    await u.close();
  }
});

Deno.test("nats: a subscriber whose consumer was deleted makes it again and goes on reading", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const t = await open();
  try {
    const agent = `gone-${crypto.randomUUID().slice(0, 6)}`;
    const got: string[] = [];
    const sub = await t.subscribe({ agent }, async (d) => {
      got.push(dec(d.bytes));
      await d.ack();
    });
    await t.publish({ agent }, enc("before"));
    await until(() => got.length === 1);
    await t.jsm.consumers.delete(t.names.stream, `agent_${token(agent)}`);
    await sleep(200);
    await t.publish({ agent }, enc("after"));
    await until(() => got.length >= 2, 15_000, `delivery after the consumer was deleted ${got}`);
    assert.deepEqual(got, ["before", "after"]);
    await sub.close();
  } finally {
    await t.close();
  }
});

Deno.test("nats: a message too large for the server is refused before sending", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const t = await open();
  try {
    const limit = t.capabilities.maxMessageBytes;
    assert.ok(limit > 0 && limit < (t.connection.info?.max_payload ?? 0));
    await assert.rejects(t.publish({ agent: "big" }, new Uint8Array(limit + 1)), TransportError);
  } finally {
    await t.close();
  }
});

Deno.test("nats: the KV directory verifies cards, refuses one filed under another id, and watches", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const a = await open();
  const b = await open();
  try {
    const seen = Promise.withResolvers<string>();
    const stop = b.directory.watch((card) => seen.resolve(card.id));
    await sleep(200);
    const agent = await Agent.start({ id: "carol", transport: a });
    assert.equal(await seen.promise, "carol");
    assert.equal((await b.directory.lookup("carol"))?.fingerprint, agent.identity.fingerprint);
    assert.equal(await b.directory.lookup("nobody"), undefined);
    // A broker that files carol's card under mallory's key, or serves garbage, is caught.
    const { Kvm } = await import("@nats-io/kv");
    const kv = await new Kvm(a.connection).open(a.names.bucket);
    await kv.put(token("mallory"), await createCard("carol", await Identity.generate()));
    await assert.rejects(b.directory.lookup("mallory"), ProtocolError);
    await kv.put(token("eve"), new Uint8Array([1, 2, 3]));
    await assert.rejects(b.directory.lookup("eve"));
    stop();
    await agent.close();
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("nats: remove the test stream and bucket", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  await cleanNats(prefix);
});
