// The demo and every example run as written, with no permission, and say what they should.
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);

async function run(file: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--quiet", file],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `${file} failed:\n${new TextDecoder().decode(out.stderr)}`);
  return text;
}

Deno.test("demo: handshake, request/response, broadcast, tampered spore refused, rotation", async () => {
  const text = await run("examples/demo.ts");
  assert.match(text, /handshake, suite xwing-chacha20poly1305-ed25519/);
  assert.match(text, /bob answered 42/);
  assert.match(text, /carol\s+← alice on #ops/);
  assert.match(text, /refused \{"ERR_DECRYPT":1\}, no handler ran/);
  assert.match(text, /rotated its X-Wing key/);
});

Deno.test("examples run as written", async () => {
  assert.match(await run("examples/chat.ts"), /alice got "reply 3 from bob"/);
  assert.match(await run("examples/request_response.ts"), /results from calculator: \[ 3, 42, 0 \]/);
  assert.equal((await run("examples/broadcast.ts")).trim().split("\n").length, 9);
  const restart = await run("examples/restart.ts");
  assert.match(restart, /worker handled 10:/);
  assert.match(restart, /client sent again 5, lost 0/);
  const reef = await run("examples/reef.ts");
  assert.match(reef, /analyst\s+request\s+from researcher/);
  assert.match(reef, /curator\s+broadcast from researcher/);
});

Deno.test("examples/sqs_agents.ts runs with the permissions it documents, its SQS server inside", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--quiet",
      "--allow-net=127.0.0.1",
      "--allow-read=.",
      "--allow-env",
      "examples/sqs_agents.ts",
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  assert.match(text, /worker\s+← job \{"task":"index"\} \(session, from dispatcher\)/);
  assert.match(text, /auditor\s+← #audit \{"jobs":1\} from dispatcher \(caught up\)/);
  assert.match(text, /broken dead-lettered after 3 attempts/);
});
