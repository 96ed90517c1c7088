// STOMP over TLS on Node (node:tls): node tls.mjs <stomp+ssl URL> <options as JSON> <options with a wrong CA>.
// The agents exchange messages over mutual TLS; a connection whose CA does not match is refused. Their cards
// are in a file (the transport's card lookups are tested elsewhere): what is tested here is the TLS socket.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, FileDirectory } from "@spores/spores";
import { createTransport } from "@spores/spores/stomp";
import { exercise } from "./scenario.mjs";

const [url, options, wrongCa] = process.argv.slice(2);
const dir = await mkdtemp(join(tmpdir(), "spores-node-tls-"));
let result;
try {
  result = await exercise(Agent, url, JSON.parse(options), new FileDirectory(join(dir, "cards.json")));
} finally {
  await rm(dir, { recursive: true, force: true });
}
const refused = await createTransport(url, JSON.parse(wrongCa)).then(
  async (t) => {
    await t.close();
    return "accepted";
  },
  (e) => e.code,
);
console.log(JSON.stringify({ node: process.version, ...result, wrongCa: refused }));
