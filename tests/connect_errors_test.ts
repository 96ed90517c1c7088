// A failed connection says why in plain words: a missing permission, a refused connection, refused
// credentials, an unknown host, TLS, a time-out; never a credential.
import assert from "node:assert/strict";
import { Agent, explainConnectError, TransportError } from "../mod.ts";
import { requireBroker } from "./_env.ts";

async function probe(url: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      ...args,
      new URL("./fixtures/connect_error.ts", import.meta.url).pathname,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("a missing --allow-net says so, with the flag to add (Redis and RabbitMQ)", async () => {
  const redis = await probe("redis://127.0.0.1:6379", ["--allow-read=.", "--allow-env"]);
  assert.match(redis, /TransportError: cannot reach Redis at redis:\/\/127\.0\.0\.1:6379: permission denied/);
  assert.match(redis, /--allow-net=127\.0\.0\.1:6379/);
  const amqp = await probe("amqp://guest:guest@127.0.0.1:5672", ["--allow-read=.", "--allow-env"]);
  assert.match(amqp, /permission denied: run Deno with --allow-net=127\.0\.0\.1:5672/);
});

Deno.test("nothing listening: connection refused, not a vague failure", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const e = await Agent.start({
    id: "probe",
    transport: `redis://127.0.0.1:${port}`,
    transportOptions: { connectTimeoutMs: 2000, maxBackoffMs: 100 },
  }).catch((e) => e);
  assert.ok(e instanceof TransportError);
  assert.match(e.message, new RegExp(`connection refused: nothing listens on 127\\.0\\.0\\.1:${port}`));
});

Deno.test("a wrong RabbitMQ password: refused credentials, and the password is not in the message", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const e = await Agent.start({ id: "probe", transport: "amqp://guest:not-the-password@127.0.0.1:5672" })
    .catch((e) => e);
  assert.ok(e instanceof TransportError);
  assert.match(e.message, /refused the user name or password/);
  assert.ok(!e.message.includes("not-the-password"));
});

Deno.test("explainConnectError reads the whole cause chain", () => {
  const wrap = (inner: unknown) => new Error("outer", { cause: inner });
  const coded = (code: string, message = code) => Object.assign(new Error(message), { code });
  assert.match(
    explainConnectError(wrap(coded("ENOTFOUND")), "nohost.invalid:5672"),
    /^host not found: nohost\.invalid/,
  );
  assert.match(explainConnectError(wrap(coded("ETIMEDOUT")), "10.0.0.1:6379"), /^timed out connecting/);
  assert.match(
    explainConnectError(
      new AggregateError([coded("ERR_TLS_CERT_ALTNAME_INVALID", "certificate mismatch")]),
      "h:1",
    ),
    /^TLS failed \(certificate mismatch\)/,
  );
  assert.match(
    explainConnectError(wrap(new Error("WRONGPASS invalid username-password pair")), "h:1"),
    /refused the user name or password/,
  );
  assert.equal(explainConnectError(new Error("something else"), "h:1"), "something else");
});
