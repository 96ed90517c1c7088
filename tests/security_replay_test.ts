// Items: restart replay and unconfirmed sessions, classic downgrade, replay-cache exhaustion, unbounded per-peer
// state, cheap checks first, and strict payload decoding.
import assert from "node:assert/strict";
import {
  Agent,
  ConfigError,
  createCard,
  decodePayload,
  encodePayload,
  Identity,
  inspect,
  MemorySessionStore,
  MemoryTofuStore,
  ProtocolError,
  provider,
  ReplayError,
  SeenCache,
  SessionError,
  type SessionState,
  SporeError,
  TofuTrust,
  type Transport,
  TrustError,
  UnsupportedError,
  verifyCard,
} from "../mod.ts";
import { createTransport } from "../transports/memory.ts";
import { contentOf, handshake, World } from "./_agents.ts";

Deno.test("security: after a restart with the memory store, a replayed hello or sealed spore is refused", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const oldHello = (await alice.hello("bob")).bytes;
  const oldSealed = await alice.seal("bob", { type: "t", content: "once" }, { mode: "sealed" });
  assert.equal(contentOf(await bob.open(oldSealed)), "once");
  // bob restarts: same identity, fresh memory store.
  w.clock.advance(1000);
  const bob2 = await w.agent("bob", { identity: bob.identity });
  alice.forgetCards();
  const fresh = await alice.hello("bob", { force: true });
  const welcome = await bob2.open(fresh.bytes);
  if (welcome.status === "handshake" && welcome.reply) await alice.open(welcome.reply);
  const live = (await fresh.established).id;
  await bob2.open(await alice.seal("bob", { type: "t" }));
  await assert.rejects(bob2.open(oldSealed), ReplayError);
  await assert.rejects(bob2.open(oldHello), ReplayError);
  // The live session is still the one bob sends on.
  assert.equal(inspect(await bob2.seal("alice", { type: "t" })).sessionId, live);
});

Deno.test("security: a hello never replaces a confirmed session until the initiator proves its keys", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const live = await handshake(alice, bob);
  await bob.open(await alice.seal("bob", { type: "t" }));
  // A new hello from alice (its welcome lost, or the initiator gone): bob answers, but keeps sending on `live`.
  const { bytes } = await alice.hello("bob", { force: true });
  const answer = await bob.open(bytes);
  assert.equal(answer.status, "handshake");
  assert.equal(inspect(await bob.seal("alice", { type: "t" })).sessionId, live);
  assert.equal(contentOf(await alice.open(await bob.seal("alice", { type: "t", content: 2 }))), 2);
});

Deno.test("security: the classic suite is refused from a sender whose card has an ML-DSA-65 key", async () => {
  const w = new World();
  const alice = await w.agent("alice", {
    allowClassic: true,
    identityOptions: { postQuantumSignatures: true },
  });
  const bob = await w.agent("bob", { allowClassic: true });
  const classic = await alice.seal("bob", { type: "t" }, { mode: "classic" });
  await assert.rejects(bob.open(classic), UnsupportedError);
  // An Ed25519-only sender may still use it.
  const carol = await w.agent("carol", { allowClassic: true });
  assert.equal(
    (await bob.open(await carol.seal("bob", { type: "t" }, { mode: "classic" }))).status,
    "message",
  );
});

Deno.test("security: one sender's flood of one-shot spores cannot lock another sender out of the replay cache", () => {
  const seen = new SeenCache(1000, 100);
  const now = Date.now();
  for (let i = 0; i < 5000; i++) {
    seen.accept(`s:mallory:${i}`, now + 7 * 86_400_000, now, {
      sender: "mallory",
      createdAt: now - 5000 + i,
    });
  }
  assert.ok(seen.size <= 1000);
  assert.equal(seen.accept("s:alice:1", now + 1000, now, { sender: "alice", createdAt: now }), "fresh");
  assert.equal(seen.accept("s:alice:1", now + 1000, now, { sender: "alice", createdAt: now }), "duplicate");
  // mallory's oldest spores were given up: their replay is refused, never accepted again.
  assert.equal(
    seen.accept("s:mallory:0", now + 1000, now, { sender: "mallory", createdAt: now - 5000 }),
    "stale",
  );
  assert.equal(
    seen.accept("s:mallory:4999", now + 1000, now, { sender: "mallory", createdAt: now - 1 }),
    "duplicate",
  );
});

Deno.test("security: one-shot spores live at most a day; longer ones are refused at both ends", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  await assert.rejects(
    alice.seal("bob", { type: "t", ttlMs: 3 * 86_400_000 }, { mode: "sealed" }),
    ConfigError,
  );
  const lax = await w.agent("lax", { maxOneShotTtlMs: 7 * 86_400_000 });
  await assert.rejects(bob.open(await lax.seal("bob", { type: "t", ttlMs: 3 * 86_400_000 })), ProtocolError);
  void alice;
});

class CountingStore extends MemorySessionStore {
  readonly live = new Set<string>();
  override put(s: SessionState): Promise<void> {
    this.live.add(s.id);
    return super.put(s);
  }
  override delete(id: string): Promise<void> {
    this.live.delete(id);
    return super.delete(id);
  }
}

Deno.test("security: a hello flood from one peer is rate-limited and its sessions are bounded", async () => {
  const w = new World();
  const store = new CountingStore();
  const bob = await w.agent("bob", { store });
  const mallory = await w.agent("mallory");
  let answered = 0;
  let refused = 0;
  for (let i = 0; i < 60; i++) {
    try {
      const r = await bob.open((await mallory.hello("bob", { force: true })).bytes);
      if (r.status === "handshake") answered++;
    } catch (e) {
      assert.ok(e instanceof SessionError);
      refused++;
    }
  }
  assert.ok(answered <= 8, `${answered} hellos answered at once`);
  assert.equal(answered + refused, 60);
  assert.ok(store.live.size <= 10, `${store.live.size} sessions held for one peer`);
  // A minute later the peer may handshake again.
  w.clock.advance(60_000);
  assert.equal((await bob.open((await mallory.hello("bob", { force: true })).bytes)).status, "handshake");
});

Deno.test("security: a hello refused by the rate limit is answered when its sender retries it, not taken for a replay", async () => {
  const w = new World();
  const bob = await w.agent("bob");
  const alice = await w.agent("alice");
  let refusedHello: Uint8Array | undefined;
  for (let i = 0; i < 12 && !refusedHello; i++) {
    const { bytes } = await alice.hello("bob", { force: true });
    try {
      await bob.open(bytes);
    } catch (e) {
      assert.ok(e instanceof SessionError);
      refusedHello = bytes;
    }
  }
  assert.ok(refusedHello, "the burst allowance ran out");
  w.clock.advance(20_000); // the allowance refills; the hello is still fresh
  const retry = await bob.open(refusedHello);
  assert.equal(retry.status, "handshake", "the same hello, retried, is answered");
});

Deno.test("security: cheap checks first: a replay does no KEM work, ML-DSA runs only after Ed25519 passed", async () => {
  const w = new World();
  const alice = await w.agent("alice", { identityOptions: { postQuantumSignatures: true } });
  const bob = await w.agent("bob");
  let decaps = 0;
  const original = bob.identity.decapsulate.bind(bob.identity);
  bob.identity.decapsulate = (...args: Parameters<typeof original>) => {
    decaps++;
    return original(...args);
  };
  const spore = await alice.seal("bob", { type: "t", content: 1 }, { mode: "sealed" });
  assert.equal(contentOf(await bob.open(spore)), 1);
  for (let i = 0; i < 10; i++) assert.equal((await bob.open(spore)).status, "duplicate");
  assert.equal(decaps, 1);
  const p = await provider();
  const verify = p.mlDsa65.verify;
  let mlDsa = 0;
  p.mlDsa65.verify = (...args: Parameters<typeof verify>) => {
    mlDsa++;
    return verify(...args);
  };
  try {
    const bad = (await alice.seal("bob", { type: "t" }, { mode: "sealed" })).slice();
    const ed25519At = bad.length - 3309 - 2 - 64 + 10; // inside the Ed25519 signature section
    bad[ed25519At]! ^= 1;
    await assert.rejects(bob.open(bad), SporeError);
    assert.equal(mlDsa, 0);
  } finally {
    p.mlDsa65.verify = verify;
  }
});

Deno.test("security: payloads: nesting is bounded, integers beyond 2^53 are refused both ways, 64-bit ones exact", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  assert.throws(() => encodePayload(deep), ConfigError);
  // 100 nested one-element arrays, then 1, built by hand.
  const bytes = new Uint8Array(101).fill(0x91);
  bytes[100] = 0x01;
  assert.throws(() => decodePayload(bytes), ProtocolError);
  assert.throws(() => encodePayload({ n: 2 ** 60 }), ConfigError);
  // uint64 2^53 + 1: refused; uint64 5: exactly 5.
  const big = new Uint8Array([0xcf, 0, 0x20, 0, 0, 0, 0, 0, 1]);
  assert.throws(() => decodePayload(big), ProtocolError);
  assert.equal(decodePayload(new Uint8Array([0xcf, 0, 0, 0, 0, 0, 0, 0, 5])), 5);
  assert.deepEqual(decodePayload(new Uint8Array([0x91, 0xd3, 0, 0, 0, 0, 0, 0, 0, 7])), [7]);
});

Deno.test("security: the TOFU store is bounded and fails closed instead of forgetting an agent", async () => {
  const trust = new TofuTrust(new MemoryTofuStore(3));
  const cards = [];
  for (const id of ["a", "b", "c", "d"]) {
    cards.push(await verifyCard(await createCard(id, await Identity.generate())));
  }
  for (const c of cards.slice(0, 3)) await trust.check(c);
  await assert.rejects(trust.check(cards[3]!), TrustError);
  await trust.check(cards[0]!); // a known agent still passes
});

Deno.test("security: after a re-handshake the responder moves to the new session at once (the initiator confirms it)", async () => {
  const url = `memory://sec-${crypto.randomUUID().slice(0, 8)}`;
  const inner = await createTransport(url);
  const sent: Uint8Array[] = [];
  const tap: Transport = {
    name: inner.name,
    capabilities: inner.capabilities,
    directory: inner.directory,
    publish: (to, bytes, options) => {
      if ("agent" in to && to.agent === "alice") sent.push(bytes.slice());
      return inner.publish(to, bytes, options);
    },
    subscribe: (from, handler, options) => inner.subscribe(from, handler, options),
    close: () => inner.close(),
  };
  await using alice = await Agent.start({ id: "alice", transport: url });
  await using bob = await Agent.start({ id: "bob", transport: tap });
  const got: unknown[] = [];
  alice.on("t", (m) => void got.push(m.content));
  const first = await alice.connect("bob");
  const confirmed = Promise.withResolvers<void>();
  bob.on("t", () => confirmed.resolve());
  await alice.send("bob", { type: "t", content: "on the first session" }); // bob's first session is confirmed
  await confirmed.promise;
  const second = await alice.connect("bob", { force: true });
  assert.notEqual(first.id, second.id);
  // alice sends nothing; bob, the responder, still answers on the new session.
  const deadline = Date.now() + 3000;
  for (;;) {
    await bob.send("alice", { type: "t", content: "hi" });
    const last = inspect(sent.at(-1)!);
    if (last.sessionId === second.id) break;
    if (Date.now() > deadline) throw new Error("bob never moved to the new session");
    await new Promise((r) => setTimeout(r, 20));
  }
  while (got.length === 0) await new Promise((r) => setTimeout(r, 5));
  await inner.close();
});
