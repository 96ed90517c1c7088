// Durable trust on first use in Redis: pins survive a restart, each is signed by the agent's identity, and
// Redis cannot change one undetected.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import {
  Agent,
  createCard,
  Identity,
  KeyChangedError,
  type Message,
  SignedPins,
  TofuTrust,
  TrustError,
  verifyCard,
} from "../mod.ts";
import { RedisPinStore, RedisTransport, redisTrust } from "../transports/redis.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";

const REDIS = "redis://127.0.0.1:6379";

async function withRedis(run: (redis: Redis, prefix: string) => Promise<void>): Promise<void> {
  const prefix = `spores-trust-${crypto.randomUUID().slice(0, 8)}`;
  const redis = new Redis(REDIS, { lazyConnect: true });
  await redis.connect();
  try {
    await run(redis, prefix);
  } finally {
    redis.disconnect();
    await cleanRedis(prefix);
  }
}

Deno.test("redis trust: a pin survives a restart; another key for the pinned id is refused", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  await withRedis(async (redis, prefix) => {
    const alice = await Identity.generate();
    const bob = await verifyCard(await createCard("bob", await Identity.generate()));
    const impostor = await verifyCard(await createCard("bob", await Identity.generate()));
    const trust = () =>
      new TofuTrust(new SignedPins(new RedisPinStore(redis, "alice", alice.fingerprint, { prefix }), alice));
    await trust().check(bob);
    // A new process (a new TofuTrust over the same Redis) still knows bob.
    await assert.rejects(trust().check(impostor), KeyChangedError);
    await trust().check(bob);
    // Another identity of alice starts with no pins (they are kept per owner).
    const other = await Identity.generate();
    await new TofuTrust(
      new SignedPins(new RedisPinStore(redis, "alice", other.fingerprint, { prefix }), other),
    )
      .check(impostor);
  });
});

Deno.test("redis trust: a pin changed, moved or forged in Redis is a TrustError, never a first use", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  await withRedis(async (redis, prefix) => {
    const alice = await Identity.generate();
    const key = `${prefix}:pins:{alice}:${alice.fingerprint}`;
    const pins = () =>
      new SignedPins(new RedisPinStore(redis, "alice", alice.fingerprint, { prefix }), alice);
    const bob = await verifyCard(await createCard("bob", await Identity.generate()));
    const carol = await verifyCard(await createCard("carol", await Identity.generate()));
    await new TofuTrust(pins()).check(bob);
    await new TofuTrust(pins()).check(carol);
    const record = JSON.parse((await redis.hget(key, "bob"))!);
    // Changed: bob's pin now names carol's key.
    await redis.hset(key, "bob", JSON.stringify({ ...record, f: carol.fingerprint }));
    await assert.rejects(new TofuTrust(pins()).check(bob), TrustError);
    // Moved: carol's genuine record copied to bob.
    await redis.hset(key, "bob", (await redis.hget(key, "carol"))!);
    await assert.rejects(pins().get("bob"), TrustError);
    // Forged by another identity: signed, but not by alice.
    const mallory = await Identity.generate();
    const forged = new Map<string, Uint8Array>();
    await new SignedPins({
      get: (id) => Promise.resolve(forged.get(id)),
      setIfAbsent: (id, r) => Promise.resolve(forged.get(id) ?? (forged.set(id, r), r)),
    }, mallory).setIfAbsent("bob", bob.fingerprint);
    await redis.hset(key, "bob", new TextDecoder().decode(forged.get("bob")!));
    await assert.rejects(pins().get("bob"), TrustError);
    // Garbage.
    await redis.hset(key, "bob", "{not json");
    await assert.rejects(pins().get("bob"), TrustError);
    // Deleted: this process never forgets a pin it saw (a new process would trust on first use again).
    const live = pins();
    assert.equal(await live.get("carol"), carol.fingerprint);
    await redis.hdel(key, "carol");
    assert.equal(await live.get("carol"), carol.fingerprint);
  });
});

Deno.test("redis trust: agents on Redis with durable trust talk, and a restarted agent keeps its pins", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = `spores-trust-${crypto.randomUUID().slice(0, 8)}`;
  const transport = await RedisTransport.connect(REDIS, { prefix });
  try {
    const identity = await Identity.generate();
    const got = Promise.withResolvers<Message>();
    await using bob = await Agent.start({ id: "bob", transport, handlers: { chat: (m) => got.resolve(m) } });
    let alice = await Agent.start({
      id: "alice",
      transport,
      identity,
      trust: redisTrust(transport, "alice", identity),
    });
    await alice.connect("bob");
    await alice.send("bob", { type: "chat", content: "pinned" });
    assert.equal((await got.promise).content, "pinned");
    await alice.close();
    alice = await Agent.start({
      id: "alice",
      transport,
      identity,
      trust: redisTrust(transport, "alice", identity),
    });
    const pins = new RedisPinStore(transport.client, "alice", identity.fingerprint, { prefix });
    assert.ok(await pins.get("bob"), "bob's pin is in Redis");
    assert.equal(await new SignedPins(pins, identity).get("bob"), bob.identity.fingerprint);
    await alice.close();
  } finally {
    await transport.close();
    await cleanRedis(prefix);
  }
});
