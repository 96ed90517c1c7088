/**
 * Two agents chat over an authenticated post-quantum session.
 *
 * Run: `deno run examples/chat.ts` (no permission needed on `memory://`).
 *
 * @module
 */
import { Agent } from "../mod.ts";

type Chat = { chat: { text: string } };

await using alice = await Agent.start<Chat>({ id: "alice", transport: "memory://chat" });
await using bob = await Agent.start<Chat>({ id: "bob", transport: "memory://chat" });

const done = Promise.withResolvers<void>();
let turns = 0;
for (const [me, other] of [[alice, "bob"], [bob, "alice"]] as const) {
  me.on("chat", async (msg) => {
    console.log(`${me.id} got "${msg.content.text}" from ${msg.from} (${msg.kind}, ${msg.suite})`);
    if (++turns === 4) return done.resolve();
    await me.send(other, { type: "chat", content: { text: `reply ${turns} from ${me.id}` } });
  });
}

const session = await alice.connect("bob");
console.log(`session ${session.id} established`);
await alice.send("bob", { type: "chat", content: { text: "hello bob" } });
await done.promise;
