// Items: broadcast access (explicit membership, new sender key on membership change and on a timer, per-message
// ratchet, key id = hash of the key, posting rights) and channel stall (ungranted keys parked aside, key requests
// rate-limited and answered only for members).
import assert from "node:assert/strict";
import {
  Agent,
  ConfigError,
  hex,
  MemoryLogger,
  type Message,
  ProtocolError,
  provider,
  ReplayError,
  type SporeEngine,
  TrustError,
} from "../mod.ts";
import { contentOf, World } from "./_agents.ts";

const unique = () => `memory://sec-${crypto.randomUUID().slice(0, 8)}`;
const until = async (cond: () => boolean, ms = 5000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

async function pending(receiver: SporeEngine, spore: Uint8Array): Promise<string> {
  const r = await receiver.open(spore);
  if (r.status !== "pending-key") throw new Error(`expected pending-key, got ${r.status}`);
  return r.keyId;
}

Deno.test("security: channel membership is explicit and deny by default", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const mallory = await w.agent("mallory");
  // No membership: alice cannot broadcast, bob accepts nothing.
  await assert.rejects(alice.sealBroadcast("ops", { type: "t" }), ConfigError);
  alice.setMembers("ops", { members: ["bob"] });
  bob.join("ops");
  await assert.rejects(bob.open(await alice.sealBroadcast("ops", { type: "t" })), TrustError);
  bob.setMembers("ops", { members: ["alice", "bob"] });
  const spore = await alice.sealBroadcast("ops", { type: "t", content: 1 });
  const keyId = await pending(bob, spore);
  // A trusted agent that is not a member gets no key; a member does.
  assert.equal(alice.grantSenderKey("ops", keyId, "mallory"), undefined);
  const grant = alice.grantSenderKey("ops", keyId, "bob")!;
  bob.installSenderKey("alice", grant);
  assert.equal(contentOf(await bob.open(spore)), 1);
  void mallory;
});

Deno.test("security: a removed member gets no new key; keys also rotate on a timer", async () => {
  const w = new World();
  const alice = await w.agent("alice", { session: { rotateAfterMs: 60_000 } });
  const bob = await w.agent("bob");
  const carol = await w.agent("carol");
  for (const m of [bob, carol]) {
    m.join("ops");
    m.setMembers("ops", { members: ["alice", "bob", "carol"] });
  }
  alice.setMembers("ops", { members: ["bob", "carol"] });
  const k0 = await pending(carol, await alice.sealBroadcast("ops", { type: "t" }));
  assert.ok(alice.grantSenderKey("ops", k0, "carol"));
  // carol is removed: the next broadcast is under a new key, which carol cannot obtain.
  alice.setMembers("ops", { members: ["bob"] });
  const k1 = await pending(carol, await alice.sealBroadcast("ops", { type: "t" }));
  assert.notEqual(k1, k0);
  assert.equal(alice.grantSenderKey("ops", k1, "carol"), undefined);
  assert.ok(alice.grantSenderKey("ops", k1, "bob"));
  // And on a timer, with no membership change.
  assert.equal(await pending(bob, await alice.sealBroadcast("ops", { type: "t" })), k1);
  w.clock.advance(60_000);
  const k2 = await pending(bob, await alice.sealBroadcast("ops", { type: "t" }));
  assert.notEqual(k2, k1);
});

Deno.test("security: per-message ratchet: a used broadcast key is erased after the grace window", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob", { session: { graceMs: 1000 } });
  bob.join("ops");
  bob.setMembers("ops", { members: ["alice", "bob"] });
  alice.setMembers("ops", { members: ["bob"] });
  const spores = [];
  for (let i = 0; i < 5; i++) spores.push(await alice.sealBroadcast("ops", { type: "t", content: i }));
  bob.installSenderKey("alice", alice.grantSenderKey("ops", await pending(bob, spores[0]!), "bob"));
  // Out of order, then a redelivery within the grace window is a duplicate that still carries the message.
  for (const i of [3, 0, 4, 1, 2]) assert.equal(contentOf(await bob.open(spores[i]!)), i);
  // ... and, being byte-identical to a spore that authenticated, it costs no signature check.
  const p = await provider();
  const verify = p.ed25519.verify;
  let checks = 0;
  p.ed25519.verify = (...args: Parameters<typeof verify>) => {
    checks++;
    return verify(...args);
  };
  try {
    assert.equal((await bob.open(spores[2]!)).status, "duplicate");
  } finally {
    p.ed25519.verify = verify;
  }
  assert.equal(checks, 0);
  w.clock.advance(1001);
  // Past the grace window the message keys are gone: the old spores cannot be opened again.
  await assert.rejects(bob.open(spores[0]!), ReplayError);
});

Deno.test("security: the sender key id is the hash of the key: no equivocation between members", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  bob.join("ops");
  bob.setMembers("ops", { members: ["alice", "bob"] });
  alice.setMembers("ops", { members: ["bob"] });
  const spore = await alice.sealBroadcast("ops", { type: "t" });
  const grant = alice.grantSenderKey("ops", await pending(bob, spore), "bob")!;
  // The same id with another key (what a sender equivocating between members would hand out): refused.
  assert.throws(
    () => bob.installSenderKey("alice", { ...grant, key: crypto.getRandomValues(new Uint8Array(32)) }),
    ProtocolError,
  );
  assert.equal(hex.encode(grant.keyId).length, 16);
  // A grant from an agent that may not post to the channel: refused.
  assert.throws(() => bob.installSenderKey("mallory", grant), TrustError);
});

Deno.test("security: posting rights are checked before any signature work", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const mallory = await w.agent("mallory");
  const bob = await w.agent("bob");
  bob.join("ops");
  bob.setMembers("ops", { members: ["alice", "bob", "mallory"], posters: ["alice"] });
  mallory.setMembers("ops", { members: ["bob"] });
  await assert.rejects(bob.open(await mallory.sealBroadcast("ops", { type: "t" })), TrustError);
  void alice;
});

Deno.test("security: broadcasts under a key never granted are parked aside and do not stall the channel", async () => {
  const url = unique();
  const logger = new MemoryLogger();
  await using alice = await Agent.start({ id: "alice", transport: url });
  await using mallory = await Agent.start({ id: "mallory", transport: url, logger });
  await using bob = await Agent.start({ id: "bob", transport: url, prefetch: 16 });
  const got: Message[] = [];
  bob.on("t", (m) => void got.push(m));
  // mallory may post, but never grants bob its key (bob is not in mallory's members).
  await bob.join("ops", { members: ["alice", "bob"], posters: ["alice", "mallory"] });
  alice.setMembers("ops", { members: ["bob"] });
  mallory.setMembers("ops", { members: ["alice"] });
  const undeliverable: unknown[] = [];
  bob.addEventListener("undeliverable", (e) => undeliverable.push((e as CustomEvent).detail));
  for (let i = 0; i < 64; i++) await mallory.broadcast("ops", { type: "t", content: i });
  const started = Date.now();
  await alice.broadcast("ops", { type: "t", content: "alice" });
  await until(() => got.some((m) => m.from === "alice"), 3000, "alice's broadcast");
  assert.ok(Date.now() - started < 3000);
  // Key requests to mallory: one per key, not one per spore.
  await new Promise((r) => setTimeout(r, 200));
  const refused = logger.events.filter((e) => e.event === "sender-key-refused").length;
  assert.ok(refused >= 1 && refused <= 2, `${refused} key requests reached mallory`);
  assert.equal(got.length, 1);
  assert.deepEqual(undeliverable, []);
});
