// Agent cards and directories.
import assert from "node:assert/strict";
import {
  base64,
  createCard,
  FileDirectory,
  Identity,
  MemoryDirectory,
  ProtocolError,
  SignatureError,
  SporeError,
  TooLargeError,
  verifyCard,
} from "../mod.ts";

Deno.test("cards: verified fields; any flipped byte is refused with a typed error", async () => {
  const id = await Identity.generate({ postQuantumSignatures: true });
  const bytes = await createCard("alice", id, { lifetimeMs: 1000 });
  const card = await verifyCard(bytes);
  assert.equal(card.id, "alice");
  assert.equal(card.fingerprint, id.fingerprint);
  assert.deepEqual(card.kem[0]!.publicKey, id.kemKey.publicKey);
  assert.deepEqual(card.mlDsa65, id.pqSigningKey!.publicKey);
  assert.equal(card.expiresAt, card.issuedAt + 1000);
  let signatureErrors = 0;
  for (let i = 0; i < bytes.length; i += 3) {
    const bad = bytes.slice();
    bad[i]! ^= 0x10;
    await assert.rejects(verifyCard(bad), (e) => {
      if (e instanceof SignatureError) signatureErrors++;
      return e instanceof SporeError;
    });
  }
  assert.ok(signatureErrors > 0);
  await assert.rejects(verifyCard(new Uint8Array(100_000)), TooLargeError);
  await assert.rejects(verifyCard(new Uint8Array([0x90])), ProtocolError);
});

Deno.test("memory directory: publish verifies, lookup returns, watch notifies", async () => {
  const directory = new MemoryDirectory();
  const seen: string[] = [];
  const stop = directory.watch((c) => seen.push(c.id));
  await directory.publish(await createCard("bob", await Identity.generate()));
  stop();
  await directory.publish(await createCard("carol", await Identity.generate()));
  assert.deepEqual(seen, ["bob"]);
  assert.equal((await directory.lookup("carol"))?.id, "carol");
  assert.equal(await directory.lookup("dave"), undefined);
  const forged = (await createCard("eve", await Identity.generate())).slice();
  forged[forged.length - 5]! ^= 1;
  await assert.rejects(directory.publish(forged), SporeError);
});

Deno.test("file directory: publish writes, a new instance reads and verifies", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(path, '{"cards":{}}');
    const a = new FileDirectory(path);
    const id = await Identity.generate();
    await a.publish(await createCard("alice", id));
    const card = await new FileDirectory(path).lookup("alice");
    assert.equal(card?.fingerprint, id.fingerprint);
    // A card filed under another id is refused.
    const json = JSON.parse(await Deno.readTextFile(path));
    json.cards.mallory = json.cards.alice;
    await Deno.writeTextFile(path, JSON.stringify(json));
    await assert.rejects(new FileDirectory(path).lookup("alice"), ProtocolError);
    await Deno.writeTextFile(path, JSON.stringify({ cards: { alice: base64.encode(new Uint8Array(3)) } }));
    await assert.rejects(new FileDirectory(path).lookup("alice"), ProtocolError);
  } finally {
    await Deno.remove(path);
  }
});
