// A Node agent and a Deno agent on one broker: node interop.mjs <url> <transport options as JSON>.
// The Node agent asks the Deno agent ("deno") to add; the Deno agent, in turn, asks it to multiply.
import { Agent, Identity, provider } from "@spores/spores";
import { within } from "./scenario.mjs";

const [url, options] = process.argv.slice(2);
const asked = Promise.withResolvers();
const agent = await Agent.start({
  id: "node",
  // Hybrid signatures (Ed25519 + ML-DSA-65): on Node 22 both come from @noble, on 24 from Web Crypto.
  identity: await Identity.generate({ postQuantumSignatures: true }),
  transport: url,
  transportOptions: JSON.parse(options ?? "{}"),
  handlers: {
    mul: async (m) => {
      await m.reply(m.content.reduce((a, b) => a * b, 1));
      asked.resolve(m.from);
    },
  },
});
try {
  const sum = await agent.request("deno", { type: "add", content: [40, 2] }, { timeoutMs: 30_000 });
  const from = await within(asked.promise, 30_000, "the Deno agent's request");
  // Let the reply leave before closing.
  await new Promise((r) => setTimeout(r, 200));
  console.log(JSON.stringify({
    node: process.version,
    sum: sum.content,
    askedBy: from,
    backends: (await provider()).backends,
  }));
} finally {
  await agent.close();
}
