// Items: card rollback and directory overwrite. Cards carry a version (issuedAt); directories, trust policies and
// the engine refuse an older card and another identity's card for a known id (unless the old identity signed it).
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  createCard,
  DEFAULT_CARD_LIFETIME_MS,
  type Directory,
  hex,
  Identity,
  KeyChangedError,
  MemoryDirectory,
  parseEnvelope,
  PinnedTrust,
  RollbackError,
  succeedCard,
  TofuTrust,
  TrustError,
  TrustFile,
  verifyCard,
} from "../mod.ts";
import { createTransport, type RedisTransport } from "../transports/redis.ts";
import { contentOf, World } from "./_agents.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";

Deno.test("security: a republished older card of alice is refused, and peers keep sealing to her current key", async () => {
  const w = new World();
  const aliceId = await Identity.generate();
  const alice = await w.agent("alice", { identity: aliceId });
  const bob = await w.agent("bob");
  const old = await alice.card();
  w.clock.advance(10);
  await alice.rotateKemKey(0);
  const current = await alice.card();
  // Anyone may replay the old, validly signed card to the directory: refused.
  await assert.rejects(w.directory.publish(old), RollbackError);
  // A directory that serves it anyway (compromised): bob keeps the newest card he has seen.
  let served = current;
  const bob2 = await w.agent("bob2", {
    directory: {
      publish: (c) => w.directory.publish(c),
      lookup: async (id) => id === "alice" ? await verifyCard(served) : await w.directory.lookup(id),
      watch: () => () => {},
    },
  });
  const sealedNow = await bob2.seal("alice", { type: "t" }, { mode: "sealed" });
  served = old;
  bob2.forgetCards();
  const sealedAfter = await bob2.seal("alice", { type: "t" }, { mode: "sealed" });
  const keyOf = (b: Uint8Array) => hex.encode(parseEnvelope(b).header.keyId!);
  assert.equal(keyOf(sealedAfter), keyOf(sealedNow));
  assert.equal(keyOf(sealedAfter), hex.encode(aliceId.kemKey.keyId));
  assert.equal(contentOf(await alice.open(sealedAfter)), null);
  // Trust policies keep a version floor too.
  const oldCard = await verifyCard(old);
  const newCard = await verifyCard(current);
  const dir = await Deno.makeTempDir();
  const trustFile = await TrustFile.open(`${dir}/trust.json`, await Identity.generate());
  for (const trust of [new TofuTrust(), new PinnedTrust({ alice: aliceId.fingerprint }), trustFile]) {
    await trust.check(newCard, w.clock.now);
    await assert.rejects(trust.check(oldCard, w.clock.now), RollbackError);
  }
  await Deno.remove(dir, { recursive: true });
  void bob;
});

Deno.test("security: cards expire by default, and an expired card is not trusted", async () => {
  const id = await Identity.generate();
  const card = await verifyCard(await createCard("alice", id, { issuedAt: 1_000 }));
  assert.equal(card.expiresAt, 1_000 + DEFAULT_CARD_LIFETIME_MS);
  await assert.rejects(new TofuTrust().check(card, 2_000 + DEFAULT_CARD_LIFETIME_MS), TrustError);
  const forever = await verifyCard(await createCard("alice", id, { lifetimeMs: null }));
  assert.equal(forever.expiresAt, undefined);
});

Deno.test("security: another identity cannot take over alice's directory entry; her own successor can", async () => {
  const w = new World();
  const aliceId = await Identity.generate();
  const alice = await w.agent("alice", { identity: aliceId });
  const bob = await w.agent("bob");
  const mallory = await Identity.generate();
  w.clock.advance(10);
  const takeover = await createCard("alice", mallory, { issuedAt: w.clock.now });
  await assert.rejects(w.directory.publish(takeover), KeyChangedError);
  assert.equal((await w.directory.lookup("alice"))?.fingerprint, aliceId.fingerprint);
  assert.equal(contentOf(await bob.open(await alice.seal("bob", { type: "t", content: 1 }))), 1);
  // A new identity for alice, signed by her old one, is accepted.
  const next = await Identity.generate();
  await w.directory.publish(
    await succeedCard(await createCard("alice", next, { issuedAt: w.clock.now }), aliceId),
  );
  assert.equal((await w.directory.lookup("alice"))?.fingerprint, next.fingerprint);
  // ... but not one signed by someone else.
  w.clock.advance(10);
  const forged = await succeedCard(await createCard("alice", mallory, { issuedAt: w.clock.now }), mallory);
  await assert.rejects(w.directory.publish(forged), KeyChangedError);
});

const T = Date.now();

async function directoryAttacks(directory: Directory, raw: (id: string, card: Uint8Array) => Promise<void>) {
  const id = `alice-${crypto.randomUUID().slice(0, 6)}`;
  const alice = await Identity.generate();
  const v1 = await createCard(id, alice, { issuedAt: T + 1_000 });
  const v2 = await createCard(id, alice, { issuedAt: T + 2_000 });
  await directory.publish(v1);
  await directory.publish(v2);
  await assert.rejects(directory.publish(v1), RollbackError);
  await assert.rejects(
    directory.publish(await createCard(id, await Identity.generate(), { issuedAt: T + 3_000 })),
    KeyChangedError,
  );
  assert.equal((await directory.lookup(id))?.issuedAt, T + 2_000);
  // Written straight into the broker, behind the directory's back: a reader that has seen v2 keeps it.
  await raw(id, v1);
  assert.equal((await directory.lookup(id))?.issuedAt, T + 2_000);
}

Deno.test("security: the Redis directory refuses rollback and takeover, and readers keep what they saw", async () => {
  if (!await requireBroker("redis", 6379)) return;
  const prefix = `spores-sec-${crypto.randomUUID().slice(0, 8)}`;
  const transport = await createTransport("redis://127.0.0.1:6379", { prefix }) as RedisTransport;
  try {
    const c = transport.client as unknown as { hset(k: string, f: string, v: Buffer): Promise<number> };
    await directoryAttacks(transport.directory!, async (id, card) => {
      await c.hset(`${prefix}:cards`, id, Buffer.from(card));
    });
  } finally {
    await transport.close();
    await cleanRedis(prefix);
  }
});

Deno.test("security: the memory directory refuses rollback and takeover", async () => {
  const d = new MemoryDirectory();
  const id = "alice";
  const alice = await Identity.generate();
  await d.publish(await createCard(id, alice, { issuedAt: T + 1_000 }));
  await d.publish(await createCard(id, alice, { issuedAt: T + 2_000 }));
  await assert.rejects(d.publish(await createCard(id, alice, { issuedAt: T + 1_500 })), RollbackError);
  await assert.rejects(
    d.publish(await createCard(id, await Identity.generate(), { issuedAt: T + 3_000 })),
    KeyChangedError,
  );
});

Deno.test("security: a second process of an agent, with a clock behind, publishes a card above the one held", async () => {
  const w = new World();
  const id = await Identity.generate();
  await w.agent("alice", { identity: id });
  const behind = await w.agent("alice", { identity: id, clock: () => w.clock.now - 5000 });
  const held = (await w.directory.lookup("alice"))!;
  assert.equal(held.bytes, await behind.card());
  assert.ok(held.issuedAt > w.clock.now - 5000);
});
