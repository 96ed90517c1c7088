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
  /^ws@/,
  /@nats-io\//,
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

interface Info {
  modules: { specifier: string; npmPackage?: string }[];
  npmPackages?: Record<string, { dependencies?: string[] }>;
}

/** Module specifiers and the npm packages (with their dependencies) that the graph of `entry` reaches. */
async function graph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as Info;
  // npmPackages lists the whole resolution of deno.json; only packages the modules reach count.
  const reached = new Set<string>();
  const visit = (pkg: string) => {
    if (reached.has(pkg)) return;
    reached.add(pkg);
    for (const dep of info.npmPackages?.[pkg]?.dependencies ?? []) visit(dep);
  };
  for (const m of info.modules) if (m.npmPackage) visit(m.npmPackage);
  return [...info.modules.map((m) => m.specifier), ...reached];
}

Deno.test("the module graph of mod.ts holds no broker client", async () => {
  const names = await graph("mod.ts");
  assert.ok(names.length > 10, "deno info returned an implausibly small graph");
  for (const name of names) {
    for (const client of BROKER_CLIENTS) assert.doesNotMatch(name, client);
  }
  // The check can fail: a transport's own graph does reach its broker client.
  const redis = await graph("transports/redis.ts");
  assert.ok(
    redis.some((n) => BROKER_CLIENTS.some((c) => c.test(n))),
    "ioredis not found in the Redis transport's graph",
  );
});

Deno.test("the SQS transport reaches the AWS SDK and never the test server fauxqs", async () => {
  const names = await graph("transports/sqs.ts");
  assert.ok(names.some((n) => /@aws-sdk\/client-sqs/.test(n)), "@aws-sdk/client-sqs not in the SQS graph");
  for (const name of names) assert.doesNotMatch(name, /fauxqs/);
});
