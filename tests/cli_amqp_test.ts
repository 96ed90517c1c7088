// The `spores` command against the real RabbitMQ server, as subprocesses.
import assert from "node:assert/strict";
import { cleanRabbit } from "./_cleanup.ts";
import { assertOneLineError, Background, keygen, spores } from "./_cli.ts";
import { requireBroker } from "./_env.ts";

const AMQP = "amqp://guest:guest@127.0.0.1:5672";
const PASS = "a passphrase for these tests";
const ENV = { SPORES_PASSPHRASE: PASS };

Deno.test("cli amqp: send and listen round trip, session load run, doctor", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const exchange = `spores-clitest-${crypto.randomUUID().slice(0, 8)}`;
  const o = ["-O", `exchange=${exchange}`];
  const dir = await Deno.makeTempDir({ prefix: "spores-cli-" });
  let listener: Background | undefined;
  try {
    await keygen(`${dir}/bob.key`, PASS, ["--hybrid"]);
    listener = new Background([
      "listen",
      AMQP,
      ...o,
      "--id",
      "bob",
      "--key",
      `${dir}/bob.key`,
      "--count",
      "2",
    ], ENV);
    await listener.waitFor(listener.stderrLines, /listening as bob/);
    const one = await spores([
      "send",
      AMQP,
      ...o,
      "--to",
      "bob",
      "--type",
      "chat",
      "--content",
      '{"a":[1,"x",null]}',
    ]);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /as a sealed spore/);
    const two = await spores([
      "send",
      AMQP,
      ...o,
      "--to",
      "bob",
      "--type",
      "chat",
      "--text",
      "on a session",
      "--connect",
    ]);
    assert.equal(two.code, 0, two.stderr);
    assert.match(two.stdout, /on a session/);
    assert.equal(await listener.exit(), 0, listener.stderrLines.join("\n"));
    const got = listener.stdoutLines.map((l) => JSON.parse(l));
    assert.deepEqual(got.map((m) => m.content).sort(), [{ a: [1, "x", null] }, "on a session"].sort());
    assert.deepEqual(got.map((m) => m.kind).sort(), ["sealed", "session"]);

    const load = await spores(["send", AMQP, ...o, "--loopback", "--type", "load", "-n", "500", "--json"]);
    assert.equal(load.code, 0, load.stderr);
    const s = JSON.parse(load.stdout);
    assert.equal(s.delivered, 500);

    const doctor = await spores(["doctor", AMQP, ...o, "--json"]);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    const report = JSON.parse(doctor.stdout);
    assert.equal(report.url, "amqp://guest:***@127.0.0.1:5672");
    const byName = new Map(report.checks.map((c: { check: string; status: string }) => [c.check, c.status]));
    for (const name of ["connect", "permissions", "directory"]) {
      assert.equal(byName.get(name), "ok", doctor.stdout);
    }
    assert.ok(byName.has("plugins") && byName.has("clock"));
  } finally {
    if (listener) {
      try {
        listener.child.kill("SIGKILL");
      } catch {
        // exited
      }
      await listener.exit();
    }
    await cleanRabbit(exchange);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli amqp: refused credentials are exit 5 for send, a finding for doctor; the password is never printed", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const url = "amqp://guest:not-the-password@127.0.0.1:5672";
  const [send, doctor] = await Promise.all([
    spores(["send", url, "--to", "bob", "--type", "t"]),
    spores(["doctor", url]),
  ]);
  assertOneLineError(send, 5, /\[ERR_TRANSPORT\]/);
  assert.equal(doctor.code, 6);
  assert.match(doctor.stdout, /^FAIL +connect/m);
  for (const run of [send, doctor]) assert.doesNotMatch(run.stdout + run.stderr, /not-the-password/);
});
