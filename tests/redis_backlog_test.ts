// A Redis stream never loses what its consumers have not read: no trimming below the slowest group, a full
// stream refuses publishes with a clear error, acknowledged entries are trimmed, foreign entries are counted.
import assert from "node:assert/strict";
import { TransportError } from "../mod.ts";
import { RedisTransport } from "../transports/redis.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { startRelay } from "./_relay.ts";

const REDIS = "redis://127.0.0.1:6379";
const enc = (s: string) => new TextEncoder().encode(s);
const until = async (cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

Deno.test("redis: a full stream refuses publishes instead of trimming unread entries; read ones are trimmed", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  const t = await RedisTransport.connect(REDIS, { prefix, maxLen: 50, claimIntervalMs: 100, blockMs: 100 });
  try {
    const stream = `${prefix}:agent:{bob}`;
    (await t.subscribe({ agent: "bob" }, async (d) => await d.nack())).close(); // bob's group exists; bob is away
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 50; i++) await t.publish({ agent: "bob" }, enc(`m${i}`));
    const refused = await t.publish({ agent: "bob" }, enc("one too many")).catch((e) => e);
    assert.ok(refused instanceof TransportError);
    assert.match(refused.message, /stream of agent bob is full: 50 entries not yet read/);
    assert.equal(await t.client.xlen(stream), 50, "nothing unread was trimmed");
    // bob comes back and reads everything: the acknowledged entries are trimmed, and publishing works again.
    const got = new Set<string>();
    const sub = await t.subscribe({ agent: "bob" }, async (d) => {
      got.add(new TextDecoder().decode(d.bytes));
      await d.ack();
    });
    await until(() => got.size === 50);
    await until(async () => (await t.client.xlen(stream)) < 50);
    await t.publish({ agent: "bob" }, enc("after"));
    await until(() => got.has("after"));
    await sub.close();
  } finally {
    await t.close();
    await cleanRedis(prefix);
  }
});

Deno.test("redis: an entry without a spore in an agent's stream is counted, not handed to the agent", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  const t = await RedisTransport.connect(REDIS, { prefix, blockMs: 100 });
  try {
    const got: Uint8Array[] = [];
    const sub = await t.subscribe({ agent: "bob" }, async (d) => {
      got.push(d.bytes);
      await d.ack();
    });
    await t.client.xadd(`${prefix}:agent:{bob}`, "*", "x", "not a spore");
    await t.publish({ agent: "bob" }, enc("a spore"));
    await until(() => got.length === 1 && t.malformed === 1);
    await sub.close();
  } finally {
    await t.close();
    await cleanRedis(prefix);
  }
});

Deno.test("redis: a publish on a link that went silent fails with a TransportError after commandTimeoutMs", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  const relay = startRelay(6379);
  const t = await RedisTransport.connect(`redis://127.0.0.1:${relay.port}`, {
    prefix,
    commandTimeoutMs: 500,
    blockMs: 100,
  });
  try {
    await t.publish({ agent: "bob" }, enc("through"));
    relay.freeze();
    const started = Date.now();
    const e = await t.publish({ agent: "bob" }, enc("into the void")).catch((e) => e);
    assert.ok(e instanceof TransportError, String(e));
    assert.ok(Date.now() - started < 5000, "it did not wait for ever");
  } finally {
    relay.close();
    await t.close().catch(() => {});
    await cleanRedis(prefix);
  }
});
