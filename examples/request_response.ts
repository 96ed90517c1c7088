/**
 * Request and reply: a client asks a server and awaits its answer;
 * `request` correlates the reply with the request, `message.reply` answers.
 *
 * Run: `deno run examples/request_response.ts` (no permission needed on `memory://`).
 *
 * @module
 */
import { Agent } from "../mod.ts";

type Api = { "add": { a: number; b: number } };

// Handlers given to start are in place before the first message is read.
await using server = await Agent.start<Api>({
  id: "calculator",
  transport: "memory://rr",
  handlers: {
    add: (req) => req.reply(req.content.a + req.content.b),
  },
});
await using client = await Agent.start<Api>({ id: "client", transport: "memory://rr" });

await client.connect("calculator");
const add = async (a: number, b: number) =>
  (await client.request("calculator", { type: "add", content: { a, b } }, { timeoutMs: 5000 })).content;
const results = await Promise.all([add(1, 2), add(20, 22), add(-5, 5)]);
console.log(`results from ${server.id}:`, results);
