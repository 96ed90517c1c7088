// TrustFile: a durable, identity-signed store of pinned fingerprints. The attacks are edits by someone without
// the identity: changed, added, removed or reordered entries, a swapped owner, a stripped post-quantum signature,
// oversize or malformed files.
import assert from "node:assert/strict";
import {
  createCard,
  Identity,
  KeyChangedError,
  MAX_TRUST_ENTRIES,
  ProtocolError,
  TofuTrust,
  TrustError,
  TrustFile,
  verifyCard,
} from "../mod.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spores-trust-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const card = async (id: string, identity: Identity) => await verifyCard(await createCard(id, identity));

Deno.test("TrustFile: pins survive a restart; first use is recorded; a changed key is refused", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/trust.json`;
    const me = await Identity.generate();
    const [alice, bob, impostor] = await Promise.all([1, 2, 3].map(() => Identity.generate()));
    const store = await TrustFile.open(path, me);
    assert.deepEqual(store.list(), []);
    await store.pin("alice", alice!.fingerprint);
    await store.check(await card("bob", bob!)); // first use: recorded
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

    const again = await TrustFile.open(path, me);
    assert.deepEqual(
      again.list().map((e) => [e.id, e.fingerprint, e.source]),
      [["alice", alice!.fingerprint, "pin"], ["bob", bob!.fingerprint, "tofu"]],
    );
    await again.check(await card("alice", alice!));
    await again.check(await card("bob", bob!));
    await assert.rejects(again.check(await card("alice", impostor!)), KeyChangedError);
    await assert.rejects(again.check(await card("bob", impostor!)), KeyChangedError);
    // A pin replaces what first use recorded.
    assert.equal(await again.pin("bob", impostor!.fingerprint), bob!.fingerprint);
    await again.check(await card("bob", impostor!));
    assert.equal(await again.unpin("bob"), true);
    assert.equal(await again.unpin("bob"), false);
    assert.equal((await TrustFile.open(path, me)).get("bob"), undefined);

    // Pinned-only refuses the unknown and records nothing.
    const strict = await TrustFile.open(path, me, { unknown: "pinned" });
    await assert.rejects(strict.check(await card("carol", impostor!)), TrustError);
    assert.equal((await TrustFile.open(path, me)).get("carol"), undefined);

    // It is a TofuStore too.
    const tofu = new TofuTrust(await TrustFile.open(path, me));
    await tofu.check(await card("dave", bob!));
    assert.equal((await TrustFile.open(path, me)).get("dave"), bob!.fingerprint);
  });
});

Deno.test("TrustFile: any edit by someone without the identity is detected", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/trust.json`;
    const me = await Identity.generate();
    const other = await Identity.generate();
    const [a, b] = await Promise.all([Identity.generate(), Identity.generate()]);
    const store = await TrustFile.open(path, me);
    await store.pin("alice", a.fingerprint);
    await store.pin("bob", b.fingerprint);
    const original = await Deno.readTextFile(path);
    const doc = JSON.parse(original);

    const attempts: [string, (d: typeof doc) => void][] = [
      ["change a fingerprint", (d) => d.entries[0].fingerprint = b.fingerprint],
      ["rename an agent", (d) => d.entries[0].id = "mallory"],
      ["remove an entry", (d) => d.entries.pop()],
      [
        "add an entry",
        (d) => d.entries.push({ id: "eve", fingerprint: b.fingerprint, addedAt: 1, source: "pin" }),
      ],
      ["change a date", (d) => d.entries[0].addedAt += 1],
      [
        "turn a first use into a pin",
        (d) => d.entries[1].source = d.entries[1].source === "pin" ? "tofu" : "pin",
      ],
      [
        "flip a signature bit",
        (d) => d.signature = (d.signature[0] === "A" ? "B" : "A") + d.signature.slice(1),
      ],
    ];
    for (const [what, edit] of attempts) {
      const copy = structuredClone(doc);
      edit(copy);
      await Deno.writeTextFile(path, JSON.stringify(copy));
      await assert.rejects(TrustFile.open(path, me), TrustError, what);
    }
    // Reordering entries does not matter (the signature covers the sorted set).
    await Deno.writeTextFile(path, JSON.stringify({ ...doc, entries: [...doc.entries].reverse() }));
    assert.equal((await TrustFile.open(path, me)).list().length, 2);

    // Another identity's store (validly signed by it) is refused by owner, and a re-signed owner swap too.
    await Deno.remove(path);
    const theirs = await TrustFile.open(path, other);
    await theirs.pin("alice", b.fingerprint);
    await assert.rejects(TrustFile.open(path, me), /belongs to identity/);
    const swapped = JSON.parse(await Deno.readTextFile(path));
    swapped.owner = me.fingerprint;
    await Deno.writeTextFile(path, JSON.stringify(swapped));
    await assert.rejects(TrustFile.open(path, me), /fails its signature check/);

    // A write on top of a tampered file is refused too (the file is re-read and verified first).
    await Deno.writeTextFile(path, original.replace(a.fingerprint, b.fingerprint));
    const stale = store;
    await assert.rejects(stale.pin("carol", a.fingerprint), TrustError);
    assert.equal(await Deno.readTextFile(path), original.replace(a.fingerprint, b.fingerprint));
  });
});

Deno.test("TrustFile: a hybrid identity's store needs both signatures", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/trust.json`;
    const me = await Identity.generate({ postQuantumSignatures: true });
    const a = await Identity.generate();
    await (await TrustFile.open(path, me)).pin("alice", a.fingerprint);
    const doc = JSON.parse(await Deno.readTextFile(path));
    assert.equal(typeof doc.pqSignature, "string");
    assert.equal((await TrustFile.open(path, me)).get("alice"), a.fingerprint);
    delete doc.pqSignature;
    await Deno.writeTextFile(path, JSON.stringify(doc));
    await assert.rejects(TrustFile.open(path, me), TrustError);
  });
});

Deno.test("TrustFile: malformed and oversize files are refused before any work; bounds hold", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/trust.json`;
    const me = await Identity.generate();
    const bad = [
      "",
      "[]",
      "not json",
      JSON.stringify({ format: "other", version: 1 }),
      JSON.stringify({
        format: "spores-trust-file",
        version: 2,
        owner: me.fingerprint,
        entries: [],
        signature: "",
      }),
      JSON.stringify({
        format: "spores-trust-file",
        version: 1,
        owner: me.fingerprint,
        entries: [],
        signature: "",
        extra: 1,
      }),
      JSON.stringify({
        format: "spores-trust-file",
        version: 1,
        owner: me.fingerprint,
        entries: [{ id: "../../etc", fingerprint: me.fingerprint, addedAt: 1, source: "pin" }],
        signature: "",
      }),
      JSON.stringify({
        format: "spores-trust-file",
        version: 1,
        owner: me.fingerprint,
        entries: [
          { id: "a", fingerprint: me.fingerprint, addedAt: 1, source: "pin" },
          { id: "a", fingerprint: me.fingerprint, addedAt: 1, source: "pin" },
        ],
        signature: "",
      }),
    ];
    for (const text of bad) {
      await Deno.writeTextFile(path, text);
      await assert.rejects(TrustFile.open(path, me), ProtocolError, text.slice(0, 60));
    }
    const many = Array.from(
      { length: MAX_TRUST_ENTRIES + 1 },
      (_, i) => ({ id: `a${i}`, fingerprint: me.fingerprint, addedAt: 1, source: "pin" }),
    );
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        format: "spores-trust-file",
        version: 1,
        owner: me.fingerprint,
        entries: many,
        signature: "",
      }),
    );
    await assert.rejects(TrustFile.open(path, me), /more than 50000 entries|larger than/);
    const store = await TrustFile.open(`${dir}/fresh.json`, me);
    await assert.rejects(store.pin("bob", "not a fingerprint"), /not a fingerprint/);
    await assert.rejects(store.pin("bad id!", me.fingerprint), /agent id/);
  });
});

Deno.test("TrustFile: two processes' stores on one file do not undo each other's pins", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/trust.json`;
    const me = await Identity.generate();
    const ids = await Promise.all([1, 2, 3, 4].map(() => Identity.generate()));
    const one = await TrustFile.open(path, me);
    const two = await TrustFile.open(path, me);
    await Promise.all([
      one.pin("a", ids[0]!.fingerprint),
      two.pin("b", ids[1]!.fingerprint),
      one.pin("c", ids[2]!.fingerprint),
      two.setIfAbsent("d", ids[3]!.fingerprint),
    ]);
    assert.deepEqual((await TrustFile.open(path, me)).list().map((e) => e.id), ["a", "b", "c", "d"]);
  });
});
