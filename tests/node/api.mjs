// The public API on Node (22 and later), imported by its package name: agents on the in-process broker with
// the try/finally form of closing (scenario.mjs; `await using` needs Node 24, see api_using.mjs), every
// export of the package, and the file-backed stores (cards, trust pins, session state).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, FileDirectory, FileSessionStore, Identity, provider, TrustFile } from "@spores/spores";
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
  // Session state in a file (node:sqlite): a restarted receiver opens, with no new handshake, the session
  // spores sent while it was down.
  const keeper = await Identity.generate();
  const state = join(dir, "state.db");
  const got = [];
  const chat = (m) => void got.push(m.content);
  const until = async (cond) => {
    for (const end = Date.now() + 10_000; !cond();) {
      if (Date.now() > end) throw new Error(`${got.length} of 6 messages arrived`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  let store = await FileSessionStore.open(state);
  let bob = await Agent.start({
    id: "bob",
    transport: "memory://node-state",
    identity: keeper,
    store,
    handlers: { chat },
  });
  const alice = await Agent.start({ id: "alice", transport: "memory://node-state", refusals: "silent" });
  let handshakes;
  try {
    await alice.connect("bob");
    for (let i = 0; i < 3; i++) await alice.send("bob", { type: "chat", content: i });
    await until(() => got.length === 3);
    await bob.close();
    store.close();
    for (let i = 3; i < 6; i++) await alice.send("bob", { type: "chat", content: i });
    store = await FileSessionStore.open(state);
    bob = await Agent.start({
      id: "bob",
      transport: "memory://node-state",
      identity: keeper,
      store,
      handlers: { chat },
    });
    await until(() => got.length === 6);
    handshakes = bob.metrics().handshakes;
  } finally {
    await alice.close();
    await bob.close();
    store.close();
  }
  files = {
    pins: reopened.list().map((e) => e.id),
    card: card?.fingerprint === identity.fingerprint,
    restarted: { got, handshakes },
  };
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
