// Item: no session key reaches the store. Session state and the send allocator's keys are sealed under a key
// derived from the agent's identity before Redis sees them; a tampered, moved or rolled-back record is refused.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  DecryptError,
  Identity,
  MemorySessionStore,
  SessionError,
  type SessionState,
  StateSealer,
} from "../mod.ts";
import { createTransport, RedisSessionStore, type RedisTransport } from "../transports/redis.ts";
import { contentOf, handshake, World } from "./_agents.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";

const REDIS = "redis://127.0.0.1:6379";

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Every byte Redis holds under `pattern`, as one array. */
async function everything(t: RedisTransport, pattern: string): Promise<Uint8Array> {
  const c = t.client as unknown as {
    keys(p: string): Promise<string[]>;
    type(k: string): Promise<string>;
    hgetallBuffer(k: string): Promise<Record<string, Uint8Array>>;
    getBuffer(k: string): Promise<Uint8Array | null>;
    zrangeBuffer(k: string, a: number, b: number): Promise<Uint8Array[]>;
  };
  const parts: Uint8Array[] = [];
  for (const key of await c.keys(pattern)) {
    const type = await c.type(key);
    if (type === "hash") parts.push(...Object.values(await c.hgetallBuffer(key)));
    else if (type === "string") parts.push((await c.getBuffer(key))!);
    else if (type === "zset") parts.push(...await c.zrangeBuffer(key, 0, -1));
  }
  const total = parts.reduce((n, p) => n + p.length + 1, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length + 1;
  }
  return out;
}

async function setup() {
  const prefix = `spores-sec-${crypto.randomUUID().slice(0, 8)}`;
  const transport = await createTransport(REDIS, { prefix }) as RedisTransport;
  const w = new World();
  const aliceId = await Identity.generate();
  const store = new RedisSessionStore(transport.client, "alice", { prefix });
  const alice = await w.agent("alice", { identity: aliceId, store });
  const bobStore = new MemorySessionStore();
  const bob = await w.agent("bob", { store: bobStore });
  const sessionId = await handshake(alice, bob);
  return { prefix, transport, w, aliceId, alice, bob, bobStore, sessionId };
}

Deno.test("security: Redis holds no session key, chain key or epoch key in any form it can use", async () => {
  if (!await requireBroker("redis", 6379)) return;
  const { prefix, transport, alice, bob, bobStore, sessionId } = await setup();
  try {
    for (let i = 0; i < 3; i++) {
      assert.equal(contentOf(await bob.open(await alice.seal("bob", { type: "t", content: i }))), i);
      assert.equal(contentOf(await alice.open(await bob.seal("alice", { type: "t", content: i }))), i);
    }
    // bob's view of the session holds both directions' keys: alice's send key is bob's receive key.
    const b = (await bobStore.get(sessionId)) as SessionState;
    const secrets = [b.send.key, b.send.chain, b.recv.chain, ...b.recv.epochs.map((e) => e.key)];
    const stored = await everything(transport, `${prefix}:*`);
    assert.ok(stored.length > 200, "the store holds alice's state");
    for (const s of secrets) assert.ok(!contains(stored, s), "a session key is in Redis");
  } finally {
    await transport.close();
    await cleanRedis(prefix);
  }
});

Deno.test("security: a tampered, moved or foreign session record in Redis is refused, never used", async () => {
  if (!await requireBroker("redis", 6379)) return;
  const { prefix, transport, aliceId, alice, bob, sessionId } = await setup();
  const c = transport.client as unknown as {
    hgetBuffer(k: string, f: string): Promise<Uint8Array>;
    hset(k: string, f: string, v: Buffer | string): Promise<number>;
  };
  try {
    await bob.open(await alice.seal("bob", { type: "t" }));
    const sessions = `${prefix}:state:{alice}:sessions`;
    const fresh = async (identity = aliceId) => {
      const s = new RedisSessionStore(transport.client, "alice", { prefix, cacheMs: 0 });
      s.attach(await StateSealer.fromIdentity(identity, "alice"));
      return s;
    };
    // Intact: a new process of alice reads it.
    assert.equal((await (await fresh()).get(sessionId))?.id, sessionId);
    // Another identity cannot open it.
    await assert.rejects((await fresh(await Identity.generate())).get(sessionId), DecryptError);
    // Moved under another id: refused.
    const blob = new Uint8Array(await c.hgetBuffer(sessions, sessionId));
    await c.hset(sessions, "00".repeat(16), Buffer.from(blob));
    await assert.rejects((await fresh()).get("00".repeat(16)), DecryptError);
    // One flipped bit anywhere: refused.
    for (const i of [0, 1, 30, blob.length - 1]) {
      const bad = blob.slice();
      bad[i]! ^= 1;
      await c.hset(sessions, sessionId, Buffer.from(bad));
      await assert.rejects((await fresh()).get(sessionId), DecryptError);
    }
    await c.hset(sessions, sessionId, Buffer.from(blob));
    // The send allocator's key, tampered: sealing fails rather than using a key Redis chose.
    const send = `${prefix}:state:{alice}:send:${sessionId}`;
    const key = new Uint8Array(await c.hgetBuffer(send, "key"));
    const forged = key.slice();
    forged[40]! ^= 1;
    await c.hset(send, "key", Buffer.from(forged));
    const store = await fresh();
    const state = (await store.get(sessionId))!;
    await assert.rejects(store.allocateSend(state, alice.policy, Date.now()), DecryptError);
    await c.hset(send, "key", Buffer.from(key));
    // Rolled back counter: this process refuses to use a nonce twice.
    await store.allocateSend(state, alice.policy, Date.now());
    await store.allocateSend(state, alice.policy, Date.now());
    await c.hset(send, "c", "0");
    await assert.rejects(store.allocateSend(state, alice.policy, Date.now()), SessionError);
  } finally {
    await transport.close();
    await cleanRedis(prefix);
  }
});

Deno.test("security: a Redis session store without the agent's state key refuses to work", async () => {
  if (!await requireBroker("redis", 6379)) return;
  const prefix = `spores-sec-${crypto.randomUUID().slice(0, 8)}`;
  const transport = await createTransport(REDIS, { prefix }) as RedisTransport;
  try {
    const store = new RedisSessionStore(transport.client, "alice", { prefix });
    await assert.rejects(store.get("00"), /no state key/);
  } finally {
    await transport.close();
    await cleanRedis(prefix);
  }
});

Deno.test("security: the Redis replay store keeps a quota per sender, with a low-water mark", async () => {
  if (!await requireBroker("redis", 6379)) return;
  const prefix = `spores-sec-${crypto.randomUUID().slice(0, 8)}`;
  const transport = await createTransport(REDIS, { prefix }) as RedisTransport;
  try {
    const store = new RedisSessionStore(transport.client, "bob", { prefix, oncePerSender: 50 });
    const now = Date.now();
    const until = now + 86_400_000;
    for (let i = 0; i < 200; i++) {
      assert.equal(
        await store.acceptOnce(`s:mallory:${i}`, until, { sender: "mallory", createdAt: now - 1000 + i }),
        "fresh",
      );
    }
    // Only mallory's quota is held, and alice is not locked out.
    const keys = await (transport.client as unknown as { keys(p: string): Promise<string[]> })
      .keys(`${prefix}:state:{bob}:once:*`);
    assert.equal(keys.length, 50);
    assert.equal(await store.acceptOnce("s:alice:1", until, { sender: "alice", createdAt: now }), "fresh");
    assert.equal(
      await store.acceptOnce("s:alice:1", until, { sender: "alice", createdAt: now }),
      "duplicate",
    );
    // What mallory's quota gave up is refused, never accepted twice.
    assert.equal(
      await store.acceptOnce("s:mallory:0", until, { sender: "mallory", createdAt: now - 1000 }),
      "stale",
    );
    assert.equal(
      await store.acceptOnce("s:mallory:199", until, { sender: "mallory", createdAt: now - 801 }),
      "duplicate",
    );
  } finally {
    await transport.close();
    await cleanRedis(prefix);
  }
});
