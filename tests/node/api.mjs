// The public API on Node (22 and later), imported by its package name: agents on the in-process broker with
// the try/finally form of closing (scenario.mjs; `await using` needs Node 24, see api_using.mjs), every export of the package, and the file-backed stores.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, FileDirectory, Identity, provider, TrustFile } from "@spores/spores";
import { exercise } from "./scenario.mjs";

const memory = await exercise(Agent, "memory://node-api");

// Every entry point of the package loads (the CLI is Deno-only, and not loaded here).
const entryPoints = {};
for (
  const name of ["", "/crypto", "/spore", "/memory", "/redis", "/amqp", "/sqs", "/mqtt", "/stomp", "/nats"]
) {
  entryPoints[`@spores/spores${name}`] = Object.keys(await import(`@spores/spores${name}`)).length;
}

// The file-backed stores: a card directory and a signed trust file, written and read back.
const dir = await mkdtemp(join(tmpdir(), "spores-node-"));
let files;
try {
  const identity = await Identity.generate();
  const path = join(dir, "trust.json");
  const trust = await TrustFile.open(path, identity);
  const other = await Identity.generate();
  await Promise.all([
    trust.pin("bob", other.fingerprint),
    (await TrustFile.open(path, identity)).setIfAbsent("carol", identity.fingerprint),
  ]);
  const reopened = await TrustFile.open(path, identity);
  const directory = new FileDirectory(join(dir, "cards.json"));
  const erin = await Agent.start({ id: "erin", transport: "memory://node-files", directory, identity });
  await erin.close();
  const card = await new FileDirectory(join(dir, "cards.json")).lookup("erin");
  files = { pins: reopened.list().map((e) => e.id), card: card?.fingerprint === identity.fingerprint };
} finally {
  await rm(dir, { recursive: true, force: true });
}

console.log(
  JSON.stringify({
    node: process.version,
    backends: (await provider()).backends,
    memory,
    entryPoints,
    files,
  }),
);
