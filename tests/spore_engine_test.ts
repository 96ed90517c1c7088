// The protocol engine: sealed, classic and session spores, handshakes, rotation, replay and every refusal.
import assert from "node:assert/strict";
import {
  AuthorityTrust,
  ClockSkewError,
  createCard,
  endorseCard,
  ExpiredError,
  Identity,
  inspect,
  KeyChangedError,
  PinnedTrust,
  RecipientError,
  ReplayError,
  SessionError,
  SporeError,
  StaleKeyError,
  TofuTrust,
  TooLargeError,
  TrustError,
  UnknownSenderError,
  UnknownSessionError,
  UnsupportedError,
} from "../mod.ts";
import { contentOf, handshake, shuffle, World } from "./_agents.ts";

const KIB = new Uint8Array(1024).map((_, i) => i & 0xff);

Deno.test("sealed spore: round trip of JSON-like content and binary", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const content = { text: "hi", n: 42, f: 1.5, ok: true, none: null, list: [1, "a"], blob: KIB };
  const spore = await alice.seal("bob", { type: "knowledge", content, priority: 7 });
  const info = inspect(spore);
  assert.equal(info.kind, "sealed");
  assert.equal(info.from, "alice");
  assert.equal(info.priority, 7);
  const result = await bob.open(spore);
  assert.equal(result.status, "message");
  if (result.status === "message") {
    assert.deepEqual(result.spore.content, content);
    assert.equal(result.spore.from, "alice");
    assert.equal(result.spore.suite, "xwing-chacha20poly1305-ed25519");
  }
  // A redelivery is a duplicate, not a second message.
  assert.equal((await bob.open(spore)).status, "duplicate");
});

Deno.test("hybrid suite: ML-DSA-65 identities seal, handshake and refuse Ed25519-only downgrades", async () => {
  const w = new World();
  const alice = await w.agent("alice", { identityOptions: { postQuantumSignatures: true } });
  const bob = await w.agent("bob", { identityOptions: { postQuantumSignatures: true } });
  const sealed = await alice.seal("bob", { type: "t", content: 1 });
  assert.equal(inspect(sealed).suite, "xwing-chacha20poly1305-ed25519+mldsa65");
  assert.equal(contentOf(await bob.open(sealed)), 1);
  await handshake(alice, bob);
  const data = await alice.seal("bob", { type: "t", content: 2 });
  assert.equal(contentOf(await bob.open(data)), 2);
  // An agent publishing an ML-DSA key for "alice" makes Ed25519-only spores from "alice" unacceptable.
  const w2 = new World();
  const pq = await Identity.generate({ postQuantumSignatures: true });
  const carol = await w2.agent("carol");
  await w2.directory.publish(await createCard("alice", pq));
  // The Ed25519-only sender works from another directory (the shared one keeps the card it has for "alice").
  const elsewhere = new World();
  await elsewhere.directory.publish(await carol.card());
  const impostorEngine = await elsewhere.agent("alice");
  const downgraded = await impostorEngine.seal("carol", { type: "t" });
  await assert.rejects(carol.open(downgraded), SporeError);
});

Deno.test("classic NaCl suite: round trip when allowed, refused by default", async () => {
  const w = new World();
  const alice = await w.agent("alice", { allowClassic: true });
  const bob = await w.agent("bob", { allowClassic: true });
  const carol = await w.agent("carol");
  const spore = await alice.seal("bob", { type: "knowledge", content: { x: 1 } }, { mode: "classic" });
  assert.equal(inspect(spore).suite, "nacl-box-ed25519");
  assert.deepEqual(contentOf(await bob.open(spore)), { x: 1 });
  assert.equal((await bob.open(spore)).status, "duplicate");
  const toCarol = await alice.seal("carol", { type: "knowledge" }, { mode: "classic" });
  await assert.rejects(carol.open(toCarol), UnsupportedError);
  await assert.rejects(carol.seal("bob", { type: "x" }, { mode: "classic" }), SporeError);
});

Deno.test("handshake both directions, then session spores", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const id1 = await handshake(alice, bob);
  assert.ok(await alice.hasSession("bob"));
  assert.ok(await bob.hasSession("alice"));
  const a2b = await alice.seal("bob", { type: "chat", content: "hello" });
  assert.equal(inspect(a2b).kind, "session");
  assert.equal(inspect(a2b).sessionId, id1);
  assert.equal(contentOf(await bob.open(a2b)), "hello");
  const b2a = await bob.seal("alice", { type: "chat", content: "hi back" });
  assert.equal(inspect(b2a).sessionId, id1);
  assert.equal(contentOf(await alice.open(b2a)), "hi back");
  // And the other way round, a fresh session that replaces the first.
  const id2 = await handshake(bob, alice);
  assert.notEqual(id1, id2);
  // alice (responder) keeps sending on the confirmed session until bob proves his keys on the new one.
  assert.equal(inspect(await alice.seal("bob", { type: "chat" })).sessionId, id1);
  const first = await bob.seal("alice", { type: "chat", content: "confirming" });
  assert.equal(inspect(first).sessionId, id2);
  assert.equal(contentOf(await alice.open(first)), "confirming");
  const again = await alice.seal("bob", { type: "chat", content: "on the new one" });
  assert.equal(inspect(again).sessionId, id2);
  assert.equal(contentOf(await bob.open(again)), "on the new one");
});

Deno.test("simultaneous open resolves to one session on both sides", async () => {
  for (const [x, y] of [["alice", "bob"], ["zed", "amy"]]) {
    const w = new World();
    const a = await w.agent(x!);
    const b = await w.agent(y!);
    const ha = await a.hello(b.id);
    const hb = await b.hello(a.id);
    const ra = await b.open(ha.bytes);
    const rb = await a.open(hb.bytes);
    for (const r of [ra, rb]) {
      if (r.status === "handshake" && r.reply) {
        const target = r.peer === a.id ? a : b;
        await target.open(r.reply);
      }
    }
    const [sa, sb] = await Promise.all([ha.established, hb.established]);
    assert.equal(sa.id, sb.id, "both connect() calls end on the same session");
    assert.equal([ra.status, rb.status].filter((s) => s === "ignored").length, 1);
    const m = await a.seal(b.id, { type: "t", content: "one" });
    assert.equal(inspect(m).sessionId, sa.id);
    assert.equal(contentOf(await b.open(m)), "one");
  }
});

Deno.test("lost welcome: resending the same hello is answered again and establishes", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const first = await alice.hello("bob");
  const lost = await bob.open(first.bytes);
  assert.equal(lost.status, "handshake");
  // The welcome is lost. alice retries: same hello bytes.
  const retry = await alice.hello("bob");
  assert.deepEqual(retry.bytes, first.bytes);
  const again = await bob.open(retry.bytes);
  assert.equal(again.status, "duplicate");
  assert.ok(again.status === "duplicate" && again.reply);
  await alice.open(again.reply!);
  const session = await first.established;
  const m = await alice.seal("bob", { type: "t", content: 5 });
  assert.equal(inspect(m).sessionId, session.id);
  assert.equal(contentOf(await bob.open(m)), 5);
  // A second copy of the welcome is a duplicate.
  if (lost.status === "handshake") assert.equal((await alice.open(lost.reply!)).status, "duplicate");
});

Deno.test("replay and reorder: 1,000 session spores, shuffled and delivered twice, each accepted once", async () => {
  const w = new World();
  const alice = await w.agent("alice", { session: { rotateAfterMessages: 300 } });
  const bob = await w.agent("bob");
  await handshake(alice, bob);
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 1000; i++) sent.push(await alice.seal("bob", { type: "n", content: i }));
  assert.ok(inspect(sent[999]!).epoch! >= 3, "the stream crosses epoch boundaries");
  const deliveries = shuffle([...sent, ...sent]);
  const seen = new Set<number>();
  let duplicates = 0;
  for (const d of deliveries) {
    const r = await bob.open(d);
    if (r.status === "duplicate") duplicates++;
    else {
      const n = contentOf(r) as number;
      assert.ok(!seen.has(n), `message ${n} accepted twice`);
      seen.add(n);
    }
  }
  assert.equal(seen.size, 1000);
  assert.equal(duplicates, 1000);
});

Deno.test("epoch rotation with spores in flight: old epochs receive until their last spore expired", async () => {
  const w = new World();
  const alice = await w.agent("alice", { session: { rotateAfterMessages: 10 } });
  const bob = await w.agent("bob", { session: { graceMs: 1000 }, skewMs: 5000 });
  await handshake(alice, bob);
  const epoch0 = [];
  for (let i = 0; i < 10; i++) epoch0.push(await alice.seal("bob", { type: "n", content: i, ttlMs: 60_000 }));
  const epoch1 = await alice.seal("bob", { type: "n", content: 10, ttlMs: 60_000 });
  assert.equal(inspect(epoch1).epoch, 1);
  // Epoch 1 arrives first (a higher priority overtook a backlog); epoch 0 spores are still queued.
  assert.equal(contentOf(await bob.open(epoch1)), 10);
  for (const s of epoch0.slice(0, 5)) assert.equal(typeof contentOf(await bob.open(s)), "number");
  // Past the policy's 1 s grace, epoch 0's spores are still valid, so its key still opens them (it was erased
  // after graceMs, and these were refused: lost).
  w.clock.advance(30_000);
  for (const s of epoch0.slice(5, 8)) assert.equal(typeof contentOf(await bob.open(s)), "number");
  // Once every spore that could use it expired (lifetime + skew), the key is gone; the spores are expired too.
  w.clock.advance(60_000 + 5000);
  await assert.rejects(bob.open(epoch0[8]!), (e) => e instanceof ExpiredError || e instanceof ReplayError);
  // Time-based rotation too.
  const timeRotated = await World.prototype.agent.call(w, "carol", { session: { rotateAfterMs: 500 } });
  await handshake(timeRotated, bob);
  await timeRotated.seal("bob", { type: "n" });
  w.clock.advance(600);
  assert.equal(inspect(await timeRotated.seal("bob", { type: "n" })).epoch, 1);
});

Deno.test("a re-key that overtakes a backlog: the old session receives until its spores expired, then is closed", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob", { skewMs: 5000 });
  await handshake(alice, bob);
  const backlog = [];
  for (let i = 0; i < 5; i++) {
    backlog.push(await alice.seal("bob", { type: "n", content: i, ttlMs: 120_000 }));
  }
  const longLived = await alice.seal("bob", { type: "n", content: "long", ttlMs: 900_000 });
  assert.equal(contentOf(await bob.open(backlog[0]!)), 0);
  const { bytes, established } = await alice.hello("bob", { force: true });
  const answer = await bob.open(bytes);
  assert.ok(answer.status === "handshake" && answer.reply);
  await alice.open(answer.reply);
  await established;
  // alice's first spore on the new session confirms it: bob switches, and the old session starts retiring.
  assert.equal(contentOf(await bob.open(await alice.seal("bob", { type: "n", content: "new" }))), "new");
  w.clock.advance(90_000); // past the 60 s grace of the policy; the backlog is still valid
  for (const s of backlog.slice(1)) assert.equal(typeof contentOf(await bob.open(s)), "number");
  w.clock.advance(40_000); // past the longest lifetime seen (120 s) plus the skew: closed
  // A spore of the closed session (one with a lifetime longer than any seen) is refused as such: it is not taken
  // for a session lost in a restart, so it is never asked for again.
  await assert.rejects(
    bob.open(longLived),
    (e) => e instanceof SessionError && !(e instanceof UnknownSessionError),
  );
});

Deno.test("re-handshake mid-stream keeps in-flight spores of the old session", async () => {
  const w = new World();
  const alice = await w.agent("alice", { session: { rotateAfterMessages: 2, rehandshakeAfterEpochs: 3 } });
  const bob = await w.agent("bob");
  const first = await handshake(alice, bob);
  const inFlight = [];
  for (let i = 0; i < 6; i++) inFlight.push(await alice.seal("bob", { type: "n", content: i }));
  assert.equal(await alice.rekeyDue("bob"), false);
  inFlight.push(await alice.seal("bob", { type: "n", content: 6 }));
  assert.equal(await alice.rekeyDue("bob"), true);
  const { bytes, established } = await alice.hello("bob", { force: true });
  const r = await bob.open(bytes);
  if (r.status === "handshake") await alice.open(r.reply!);
  const second = (await established).id;
  assert.notEqual(first, second);
  const fresh = await alice.seal("bob", { type: "n", content: 7 });
  assert.equal(inspect(fresh).sessionId, second);
  assert.equal(contentOf(await bob.open(fresh)), 7);
  for (const s of inFlight) assert.equal(inspect(s).sessionId, first);
  for (const [i, s] of inFlight.entries()) assert.equal(contentOf(await bob.open(s)), i);
  // Past the policy's 60 s grace the old session still receives (its spores live 300 s): a copy is a duplicate.
  w.clock.advance(61_000);
  assert.equal((await bob.open(inFlight[0]!)).status, "duplicate");
});

Deno.test("refusals: wrong recipient, expired, future-dated, unknown sender, foreign session", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const carol = await w.agent("carol");
  const toBob = await alice.seal("bob", { type: "t" });
  await assert.rejects(carol.open(toBob), RecipientError);

  const shortLived = await alice.seal("bob", { type: "t", ttlMs: 1000 });
  w.clock.advance(1001);
  await assert.rejects(bob.open(shortLived), ExpiredError);

  w.clock.advance(400_000);
  const future = await alice.seal("bob", { type: "t" });
  w.clock.advance(-400_000);
  await assert.rejects(bob.open(future), ClockSkewError);
  w.clock.advance(400_000);

  const w2 = new World();
  const stranger = await w2.agent("mallory", { clock: w.clock.fn });
  await w2.directory.publish(await bob.card());
  const fromStranger = await stranger.seal("bob", { type: "t" });
  await assert.rejects(bob.open(fromStranger), UnknownSenderError);

  await handshake(alice, carol);
  const forCarolSession = await alice.seal("carol", { type: "t" });
  // Re-address it to bob: the header changes, but bob has no such session either.
  await assert.rejects(bob.open(forCarolSession), RecipientError);
  const w3 = new World();
  const bob2 = await w3.agent("carol", { clock: w.clock.fn });
  await w3.directory.publish(await alice.card());
  await assert.rejects(bob2.open(forCarolSession), SessionError);
});

Deno.test("TOFU: a changed identity key for a known agent is a KeyChangedError", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  assert.equal((await bob.open(await alice.seal("bob", { type: "t" }))).status, "message");
  // The directory refuses another identity's card for alice, newer or not.
  await assert.rejects(w.agent("alice"), TrustError);
  w.clock.advance(1);
  await assert.rejects(w.agent("alice"), KeyChangedError);
  // A directory that serves one anyway (compromised): bob keeps the card it trusts, and the impostor fails.
  const rogue = new World();
  await rogue.directory.publish(await bob.card());
  const impostor = await rogue.agent("alice");
  let compromised = false;
  const bob2 = await w.agent("bob2", {
    directory: {
      publish: (c) => w.directory.publish(c),
      lookup: async (id) => (compromised ? rogue : w).directory.lookup(id),
      watch: () => () => {},
    },
  });
  await rogue.directory.publish(await bob2.card());
  assert.equal((await bob2.open(await alice.seal("bob2", { type: "t" }))).status, "message");
  bob2.forgetCards();
  compromised = true;
  assert.equal((await bob2.open(await alice.seal("bob2", { type: "t" }))).status, "message");
  await assert.rejects(bob2.open(await impostor.seal("bob2", { type: "t" })), SporeError);
  // A fresh agent whose TOFU store already holds alice's fingerprint: a KeyChangedError.
  const trust = new TofuTrust();
  await trust.check((await w.directory.lookup("alice"))!);
  const carol = await rogue.agent("carol", { trust });
  await assert.rejects(carol.open(await impostor.seal("carol", { type: "t" })), KeyChangedError);
});

Deno.test("KEM key rotation: the old key opens during the overlap, never after", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const before = await alice.seal("bob", { type: "t", content: "old", ttlMs: 600_000 });
  const late = await alice.seal("bob", { type: "t", content: "late", ttlMs: 600_000 });
  await bob.rotateKemKey(10_000);
  alice.forgetCards();
  const after = await alice.seal("bob", { type: "t", content: "new" });
  assert.notDeepEqual(inspect(after), inspect(before));
  assert.equal(contentOf(await bob.open(before)), "old");
  assert.equal(contentOf(await bob.open(after)), "new");
  w.clock.advance(10_001);
  await assert.rejects(bob.open(late), StaleKeyError);
});

Deno.test("pinned and authority trust", async () => {
  const w = new World();
  const root = await Identity.generate();
  const aliceId = await Identity.generate();
  const bobId = await Identity.generate();
  const pinned = await w.agent("bob", {
    identity: bobId,
    trust: new PinnedTrust({ alice: aliceId.fingerprint }),
  });
  const alice = await w.agent("alice", { identity: aliceId });
  assert.equal((await pinned.open(await alice.seal("bob", { type: "t" }))).status, "message");
  const eve = await w.agent("eve");
  await assert.rejects(pinned.open(await eve.seal("bob", { type: "t" })), TrustError);

  const w2 = new World();
  const strict = await w2.agent("bob", { trust: new AuthorityTrust([root.signingKey.publicKey]) });
  const carol = await w2.agent("carol");
  await assert.rejects(strict.open(await carol.seal("bob", { type: "t" })), TrustError);
  await w2.directory.publish(await endorseCard(await carol.card(), root));
  strict.forgetCards();
  assert.equal((await strict.open(await carol.seal("bob", { type: "t" }))).status, "message");
});

Deno.test("limits: oversize payloads are refused when sealing and when opening", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob", { limits: { maxPayloadBytes: 1000 } });
  await assert.rejects(alice.seal("bob", { type: "t", content: new Uint8Array(2 << 20) }), TooLargeError);
  const big = await alice.seal("bob", { type: "t", content: new Uint8Array(5000) });
  await assert.rejects(bob.open(big), TooLargeError);
  await assert.rejects(alice.seal("bob", { type: "no/slash" }), SporeError);
  await assert.rejects(alice.seal("b@d", { type: "t" }), SporeError);
});

Deno.test("mixed suites: a hybrid-signature agent and an Ed25519-only agent handshake both ways", async () => {
  const w = new World();
  const pq = await w.agent("pq", { identityOptions: { postQuantumSignatures: true } });
  const classic = await w.agent("ed");
  for (const [a, b] of [[pq, classic], [classic, pq]] as const) {
    await handshake(a, b);
    const m = await a.seal(b.id, { type: "t", content: a.id });
    assert.equal(inspect(m).kind, "session");
    assert.equal(contentOf(await b.open(m)), a.id);
    const back = await b.seal(a.id, { type: "t", content: b.id });
    assert.equal(contentOf(await a.open(back)), b.id);
  }
});

Deno.test("sealSpore describes the spore exactly as inspect() does, and says when a re-handshake is due", async () => {
  const w = new World();
  const alice = await w.agent("alice", { session: { rotateAfterMessages: 1, rehandshakeAfterEpochs: 2 } });
  const bob = await w.agent("bob");
  alice.join("c");
  const one = await alice.sealSpore("bob", { type: "t", content: 1 });
  assert.deepEqual(one.info, inspect(one.bytes));
  assert.equal(one.rekeyDue, false);
  await handshake(alice, bob);
  const due = [];
  for (let i = 0; i < 3; i++) {
    const s = await alice.sealSpore("bob", { type: "t", content: i });
    assert.deepEqual(s.info, inspect(s.bytes));
    due.push(s.rekeyDue);
  }
  assert.deepEqual(due, [false, false, true]);
  assert.equal(await alice.rekeyDue("bob"), true);
  alice.setMembers("c", { members: ["bob"] });
  const b = await alice.sealBroadcastSpore("c", { type: "t" });
  assert.deepEqual(b.info, inspect(b.bytes));
});
