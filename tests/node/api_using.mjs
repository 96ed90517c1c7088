// `await using` on Node 24, which has explicit resource management: agents close at the end of the block.
import { Agent } from "@spores/spores";

let closed;
{
  await using bob = await Agent.start({
    id: "bob",
    transport: "memory://node-using",
    handlers: { add: (m) => m.reply(m.content.reduce((a, b) => a + b, 0)) },
  });
  await using alice = await Agent.start({ id: "alice", transport: "memory://node-using" });
  const answer = await alice.request("bob", { type: "add", content: [20, 22] }, { timeoutMs: 10_000 });
  closed = { answer: answer.content, bob, alice };
}
// After the block both agents are closed: sending fails.
const refused = await closed.alice.send("bob", { type: "add", content: [1] }).then(() => false, () => true);
console.log(JSON.stringify({ node: process.version, answer: closed.answer, refusedAfterClose: refused }));
