/**
 * Two agents chat through Redis (the server on 127.0.0.1:6379).
 *
 * Run:
 * ```sh
 * deno run --allow-net=127.0.0.1:6379 --allow-read=. --allow-env examples/redis_chat.ts
 * ```
 * `--allow-net` for the server; `--allow-read=.` because the Redis transport is loaded by URL scheme from
 * local files (an import of `@spores/spores/redis` from JSR needs no read permission); `--allow-env` for
 * ioredis's own environment lookups.
 *
 * @module
 */
import { Agent } from "../mod.ts";

const url = "redis://127.0.0.1:6379";
const transportOptions = { prefix: "spores-example" };
await using alice = await Agent.start({ id: "alice", transport: url, transportOptions });
await using bob = await Agent.start({ id: "bob", transport: url, transportOptions });

const done = Promise.withResolvers<void>();
bob.on("chat", async (msg) => {
  console.log(`bob   ← ${msg.from}: ${JSON.stringify(msg.content)} (${msg.kind} spore)`);
  await bob.send(msg.from, { type: "chat", content: "hello alice, via Redis streams" });
});
alice.on("chat", (msg) => {
  console.log(`alice ← ${msg.from}: ${JSON.stringify(msg.content)} (${msg.kind} spore)`);
  done.resolve();
});

const session = await alice.connect("bob");
console.log(`alice ⇄ bob  session ${session.id.slice(0, 8)}… over ${alice.transport.name}`);
await alice.send("bob", { type: "chat", content: "hello bob" });
await done.promise;
