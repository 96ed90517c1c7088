// FileSessionStore: an agent restarted with its identity and its state file keeps its sessions, its replay
// memory and its receipts; the file holds no secret in the clear, and refuses another agent, another identity,
// a second process and an altered record.
import assert from "node:assert/strict";
import {
  Agent,
  ConfigError,
  FileSessionStore,
  Identity,
  inspect,
  MemoryDirectory,
  type Message,
  type Rejection,
  SessionError,
  SporeEngine,
  TofuTrust,
} from "../mod.ts";
import { handshake } from "./_agents.ts";
import { createTransport } from "../transports/memory.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(5);
  }
};

async function withFile(run: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spores-state-" });
  try {
    await run(`${dir}/state.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("file store: a restarted receiver opens session spores sent while it was down, and handles each once", async () => {
  await withFile(async (path) => {
    const url = `memory://file-${crypto.randomUUID().slice(0, 8)}`;
    const identity = await Identity.generate();
    const got: unknown[] = [];
    const chat = (m: Message) => void got.push(m.content);
    let store = await FileSessionStore.open(path);
    let bob = await Agent.start({ id: "bob", transport: url, identity, store, handlers: { chat } });
    await using alice = await Agent.start({ id: "alice", transport: url, refusals: "silent" });
    await alice.connect("bob");
    for (let i = 0; i < 20; i++) await alice.send("bob", { type: "chat", content: i });
    await until(() => got.length === 20);
    await bob.close();
    store.close();

    for (let i = 20; i < 50; i++) await alice.send("bob", { type: "chat", content: i });
    store = await FileSessionStore.open(path);
    const rejected: Rejection[] = [];
    bob = await Agent.start({ id: "bob", transport: url, identity, store, handlers: { chat } });
    bob.addEventListener("rejected", (e) => rejected.push(e.detail));
    try {
      await until(() => got.length === 50);
      await sleep(100);
      assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i), "every message once, in order");
      assert.deepEqual(rejected, []);
      assert.equal(bob.metrics().handshakes, 0, "the restarted receiver needed no new handshake");
    } finally {
      await bob.close();
      store.close();
    }
  });
});

Deno.test("file store: spores replayed after a restart are refused as replays (one-shot and session)", async () => {
  await withFile(async (path) => {
    const url = `memory://file-${crypto.randomUUID().slice(0, 8)}`;
    const transport = await createTransport(url);
    const identity = await Identity.generate();
    const seen: Uint8Array[] = [];
    // A tap on bob's queue keeps a copy of every spore the broker hands out.
    const got: unknown[] = [];
    let store = await FileSessionStore.open(path);
    let bob = await Agent.start({
      id: "bob",
      transport,
      identity,
      store,
      handlers: { chat: (m: Message) => void got.push(m.content) },
    });
    const tap = await createTransport(url);
    const publish = tap.publish.bind(tap);
    await using alice = await Agent.start({ id: "alice", transport: tap, refusals: "silent" });
    (tap as { publish: typeof tap.publish }).publish = async (to, bytes, o) => {
      if ("agent" in to && to.agent === "bob") seen.push(bytes.slice());
      await publish(to, bytes, o);
    };
    await alice.send("bob", { type: "chat", content: "one-shot" });
    await alice.connect("bob");
    await alice.send("bob", { type: "chat", content: "session" });
    await until(() => got.length === 2);
    await bob.close();
    store.close();

    store = await FileSessionStore.open(path);
    const rejected: Rejection[] = [];
    bob = await Agent.start({ id: "bob", transport, identity, store, refusals: "silent" });
    bob.on("chat", (m) => void got.push(m.content));
    bob.addEventListener("rejected", (e) => rejected.push(e.detail));
    try {
      for (const bytes of seen) await publish({ agent: "bob" }, bytes);
      await sleep(300);
      assert.deepEqual(got, ["one-shot", "session"], "no replayed spore reached a handler");
      const duplicates = bob.metrics().duplicates;
      // A replayed hello is answered again, provisionally (it can never become the session bob sends on).
      const messages = seen.filter((b) => inspect(b).kind !== "hello");
      assert.ok(
        duplicates + rejected.length >= messages.length,
        `each replay refused or recognised as a duplicate (${duplicates} duplicates, ${rejected.length} refused, ${messages.length} replayed)`,
      );
      for (const r of rejected) assert.equal(r.code, "ERR_REPLAY");
    } finally {
      await bob.close();
      store.close();
      await tap.close();
      await transport.close();
    }
  });
});

Deno.test("file store: after a crash the sender resumes above every counter it used (no nonce twice)", async () => {
  await withFile(async (path) => {
    const directory = new MemoryDirectory();
    const trust = new TofuTrust();
    const aliceId = await Identity.generate();
    const bob = await SporeEngine.create({
      id: "bob",
      identity: await Identity.generate(),
      directory,
      trust,
    });
    await bob.publishCard();
    const counters: number[] = [];
    const run = async (sends: number) => {
      // close() writes nothing more: the file holds what a killed process would leave.
      const store = await FileSessionStore.open(path, { reserve: 16 });
      const alice = await SporeEngine.create({ id: "alice", identity: aliceId, directory, trust, store });
      await alice.publishCard();
      if (!(await alice.hasSession("bob"))) await handshake(alice, bob);
      for (let i = 0; i < sends; i++) {
        const spore = await alice.sealSpore("bob", { type: "n", content: i });
        counters.push(spore.info.epoch! * 1e9 + spore.info.counter!);
      }
      store.close();
    };
    await run(5);
    await run(40);
    await run(3);
    assert.equal(new Set(counters).size, counters.length, `no counter used twice: ${counters.join(",")}`);
    for (let i = 1; i < counters.length; i++) assert.ok(counters[i]! > counters[i - 1]!);
  });
});

Deno.test("file store: refuses another agent, another identity, a second holder and an altered session", async () => {
  await withFile(async (path) => {
    const url = `memory://file-${crypto.randomUUID().slice(0, 8)}`;
    const identity = await Identity.generate();
    const store = await FileSessionStore.open(path);
    const bob = await Agent.start({ id: "bob", transport: url, identity, store });
    const alice = await Agent.start({ id: "alice", transport: url });
    await alice.connect("bob");
    await assert.rejects(
      FileSessionStore.open(path),
      (e) => e instanceof ConfigError && /in use/.test(e.message),
    );
    await alice.close();
    await bob.close();
    store.close();

    const other = await FileSessionStore.open(path);
    await assert.rejects(
      Agent.start({ id: "carol", transport: url, store: other }),
      (e) => e instanceof ConfigError && /belongs to agent bob/.test(e.message),
    );
    other.close();
    const stranger = await FileSessionStore.open(path);
    await assert.rejects(
      Agent.start({ id: "bob", transport: url, store: stranger }),
      (e) => e instanceof ConfigError && /another identity/.test(e.message),
    );
    stranger.close();

    // No secret in the clear: the session's keys are not in the file.
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(path);
    const rows = db.prepare("SELECT id, box FROM sessions").all() as { id: string; box: Uint8Array }[];
    assert.ok(rows.length >= 1);
    const box = rows[0]!.box;
    box[box.length - 1]! ^= 1;
    db.prepare("UPDATE sessions SET box = ? WHERE id = ?").run(box, rows[0]!.id);
    db.close();
    const altered = await FileSessionStore.open(path);
    await assert.rejects(
      Agent.start({ id: "bob", transport: url, identity, store: altered }),
      (e) => e instanceof SessionError && /does not open/.test(e.message),
    );
    altered.close();
  });
});

Deno.test("file store: a hello recorded before a crash, its welcome never sent, is answered again after the restart", async () => {
  await withFile(async (path) => {
    const directory = new MemoryDirectory();
    const trust = new TofuTrust();
    const bobId = await Identity.generate();
    const alice = await SporeEngine.create({
      id: "alice",
      identity: await Identity.generate(),
      directory,
      trust,
    });
    await alice.publishCard();
    let store = await FileSessionStore.open(path);
    let bob = await SporeEngine.create({
      id: "bob",
      identity: bobId,
      directory,
      trust: new TofuTrust(),
      store,
    });
    await bob.publishCard();
    const { bytes, established } = await alice.hello("bob");
    const first = await bob.open(bytes);
    assert.equal(first.status, "handshake"); // bob recorded the hello... and died before publishing the welcome
    store.close();
    store = await FileSessionStore.open(path);
    bob = await SporeEngine.create({ id: "bob", identity: bobId, directory, trust: new TofuTrust(), store });
    // alice retries the same hello: it is answered again (was: refused as a replay, and her connect timed out).
    const again = await bob.open(bytes);
    assert.ok(again.status === "handshake" && again.reply);
    await alice.open(again.reply);
    const session = await established;
    // The session made from a hello seen before is provisional: bob sends on it only after alice proved her keys.
    const spore = await alice.seal("bob", { type: "n", content: "after the restart" });
    const opened = await bob.open(spore);
    assert.ok(opened.status === "message" && opened.spore.content === "after the restart");
    assert.equal((await bob.sealSpore("alice", { type: "n" })).info.sessionId, session.id);
    store.close();
  });
});
