// The `spores` command against the real Redis server, as subprocesses: send/listen round trips, Ctrl-C, a
// pinned-only trust store, a load run and doctor.
import assert from "node:assert/strict";
import { cleanRedis } from "./_cleanup.ts";
import { assertOneLineError, Background, keygen, spores } from "./_cli.ts";
import { requireBroker } from "./_env.ts";

const REDIS = "redis://127.0.0.1:6379";
const PASS = "a passphrase for these tests";
const ENV = { SPORES_PASSPHRASE: PASS };

async function setup(): Promise<{ dir: string; prefix: string; o: string[] }> {
  const prefix = `spores-clitest-${crypto.randomUUID().slice(0, 8)}`;
  return { dir: await Deno.makeTempDir({ prefix: "spores-cli-" }), prefix, o: ["-O", `prefix=${prefix}`] };
}

Deno.test("cli redis: listen prints verified messages as JSON lines, filters by type, exits on Ctrl-C", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const { dir, prefix, o } = await setup();
  let listener: Background | undefined;
  try {
    const bobFp = await keygen(`${dir}/bob.key`, PASS);
    listener = new Background(
      ["listen", REDIS, ...o, "--id", "bob", "--key", `${dir}/bob.key`, "--type", "chat", "--type", "data"],
      ENV,
    );
    await listener.waitFor(listener.stderrLines, new RegExp(`listening as bob \\(${bobFp}\\)`));
    const sends = await Promise.all([
      spores(["send", REDIS, ...o, "--to", "bob", "--type", "noise", "--text", "not for the screen"]),
      spores(["send", REDIS, ...o, "--to", "bob", "--type", "chat", "--text", "hello bob", "--json"]),
      spores(["send", REDIS, ...o, "--to", "bob", "--type", "data", "--stdin"], {
        stdin: new Uint8Array([0, 1, 2, 255]),
      }),
    ]);
    for (const s of sends) assert.equal(s.code, 0, s.stderr);
    const chatId = JSON.parse(sends[1]!.stdout).id;
    const chat = JSON.parse(await listener.waitFor(listener.stdoutLines, /"type":"chat"/));
    assert.equal(chat.id, chatId);
    assert.equal(chat.to, "bob");
    assert.equal(chat.kind, "sealed");
    assert.equal(chat.content, "hello bob");
    assert.match(chat.from, /^cli-[0-9a-f]{8}$/);
    const data = JSON.parse(await listener.waitFor(listener.stdoutLines, /"type":"data"/));
    assert.deepEqual(data.content, { base64: "AAEC/w==" });
    // The filtered type is never printed; Ctrl-C ends the run cleanly and says what was skipped.
    await new Promise((r) => setTimeout(r, 300));
    listener.child.kill("SIGINT");
    assert.equal(await listener.exit(), 0, listener.stderrLines.join("\n"));
    assert.equal(listener.stdoutLines.length, 2, listener.stdoutLines.join("\n"));
    assert.ok(!listener.stdoutLines.some((l) => l.includes("not for the screen")));
    assert.ok(listener.stderrLines.some((l) => /stopped \(interrupted\) after 2 messages/.test(l)));
    assert.ok(listener.stderrLines.some((l) => /skipped 1 message of other types/.test(l)));
  } finally {
    if (listener) {
      try {
        listener.child.kill("SIGKILL");
      } catch {
        // exited
      }
      await listener.exit();
    }
    await cleanRedis(prefix);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli redis: a pinned-only trust store lets the pinned sender through and refuses an impostor", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const { dir, prefix, o } = await setup();
  let listener: Background | undefined;
  try {
    await keygen(`${dir}/bob.key`, PASS);
    await keygen(`${dir}/alice.key`, PASS);
    await keygen(`${dir}/mallory.key`, PASS);
    // Alice publishes her card; bob pins it from the directory.
    const pub = await spores(
      ["card", "--key", `${dir}/alice.key`, "--id", "alice", "--publish", REDIS, ...o],
      {
        env: ENV,
      },
    );
    assert.equal(pub.code, 0, pub.stderr);
    const store = ["--trust-file", `${dir}/bob.trust`, "--key", `${dir}/bob.key`];
    const pin = await spores(["trust", "pin", "alice", "--from", REDIS, ...o, ...store], { env: ENV });
    assert.equal(pin.code, 0, pin.stderr);

    listener = new Background(
      ["listen", REDIS, ...o, "--id", "bob", ...store, "--pinned-only", "--count", "1"],
      ENV,
    );
    await listener.waitFor(listener.stderrLines, /listening as bob/);
    // Mallory claims to be carol (unpinned) and then alice (trying to replace alice's card with hers).
    const carol = await spores(
      [
        "send",
        REDIS,
        ...o,
        "--key",
        `${dir}/mallory.key`,
        "--id",
        "carol",
        "--to",
        "bob",
        "--type",
        "chat",
        "--text",
        "from carol",
      ],
      { env: ENV },
    );
    assert.equal(carol.code, 0, carol.stderr);
    await listener.waitFor(listener.stderrLines, /rejected.*ERR_TRUST/);
    const fakeAlice = await spores(
      [
        "send",
        REDIS,
        ...o,
        "--key",
        `${dir}/mallory.key`,
        "--id",
        "alice",
        "--to",
        "bob",
        "--type",
        "chat",
        "--text",
        "fake alice",
      ],
      { env: ENV },
    );
    // The directory keeps alice's card (key continuity): mallory cannot publish hers as alice, so she cannot
    // even start as alice.
    assert.notEqual(fakeAlice.code, 0);
    assert.match(fakeAlice.stderr, /ERR_KEY_CHANGED/);
    const fromAlice = await spores(
      [
        "send",
        REDIS,
        ...o,
        "--key",
        `${dir}/alice.key`,
        "--id",
        "alice",
        "--to",
        "bob",
        "--type",
        "chat",
        "--text",
        "really alice",
      ],
      { env: ENV },
    );
    assert.equal(fromAlice.code, 0, fromAlice.stderr);
    assert.equal(await listener.exit(), 0, listener.stderrLines.join("\n"));
    assert.equal(listener.stdoutLines.length, 1);
    const got = JSON.parse(listener.stdoutLines[0]!);
    assert.equal(got.from, "alice");
    assert.equal(got.content, "really alice");

    // The store is unchanged by the impostor (pinned-only never records), and still verifies.
    const list = await spores(["trust", "list", ...store, "--json"], { env: ENV });
    assert.deepEqual(JSON.parse(list.stdout).entries.map((e: { id: string }) => e.id), ["alice"]);
  } finally {
    if (listener) {
      try {
        listener.child.kill("SIGKILL");
      } catch {
        // exited
      }
      await listener.exit();
    }
    await cleanRedis(prefix);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli redis: a session load run with delivery latency, and doctor", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const { dir, prefix, o } = await setup();
  try {
    const run = await spores([
      "send",
      REDIS,
      ...o,
      "--loopback",
      "--type",
      "load",
      "--count",
      "1000",
      "--json",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const s = JSON.parse(run.stdout);
    assert.equal(s.sent, 1000);
    assert.equal(s.delivered, 1000);
    assert.equal(s.session, true);
    assert.ok(s.deliveryLatencyMs.p50 > 0 && s.deliveryLatencyMs.p50 <= s.deliveryLatencyMs.max);

    const doctor = await spores(["doctor", REDIS, ...o, "--json"]);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    const report = JSON.parse(doctor.stdout);
    assert.equal(report.ok, true);
    const byName = new Map(report.checks.map((c: { check: string; status: string }) => [c.check, c.status]));
    for (const name of ["connect", "version", "clock", "permissions", "directory"]) {
      assert.equal(byName.get(name), "ok", `${name}: ${doctor.stdout}`);
    }
    // doctor leaves nothing behind but the run's own keys.
    const scan = await new Deno.Command("redis-cli", {
      args: ["--scan", "--pattern", `${prefix}:*doctor-*`],
      stdout: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(scan.stdout).trim(), "");
    const text = await spores(["doctor", REDIS, ...o]);
    assert.match(text.stdout, /^ok +connect +connected to redis:\/\/127\.0\.0\.1:6379/m);
    assert.match(text.stdout, /no problem found/);
  } finally {
    await cleanRedis(prefix);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli redis: an unreachable broker is exit 5 for send and a finding (exit 6) for doctor", async () => {
  // A port nothing listens on.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const url = `redis://127.0.0.1:${port}`;
  const [send, doctor] = await Promise.all([
    spores(["send", url, "--to", "bob", "--type", "t", "-O", "connectTimeoutMs=2000"]),
    spores(["doctor", url, "-O", "connectTimeoutMs=2000"]),
  ]);
  assertOneLineError(send, 5, /\[ERR_TRANSPORT\]/);
  assert.equal(doctor.code, 6, doctor.stderr);
  assert.match(doctor.stdout, /^FAIL +connect +cannot connect/m);
});
