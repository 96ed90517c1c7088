// mod.ts needs no Deno permission and loads no broker client.
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const BROKER_CLIENTS = [
  /\bamqplib\b/,
  /\bioredis\b/,
  /npm:\/?mqtt@/,
  /\bmqtt@/,
  /@stomp\/stompjs/,
  /@aws-sdk\//,
  /\bnats@/,
];

Deno.test("mod.ts runs a full seal/open round trip with no permission granted", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--quiet", "tests/fixtures/pure_round_trip.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(result.opened, "hello bob");
  assert.equal(result.backends["ML-KEM-768"], "native");
});

Deno.test("the module graph of mod.ts holds no broker client", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const names = [
    ...info.modules.map((m: { specifier: string }) => m.specifier),
    ...Object.keys(info.npmPackages ?? {}),
  ];
  assert.ok(names.length > 10, "deno info returned an implausibly small graph");
  for (const name of names) {
    for (const client of BROKER_CLIENTS) assert.doesNotMatch(name, client);
  }
  // The check itself can fail: a broker client in the list would be caught.
  assert.ok(BROKER_CLIENTS.some((c) => c.test("npm:/ioredis@5.4.1")));
});
