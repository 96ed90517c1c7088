/**
 * Request and response: a client asks a server, matching answers to
 * requests by spore id.
 *
 * Run: `deno run examples/request_response.ts` (no permission needed on `memory://`).
 *
 * @module
 */
import { Agent } from "../mod.ts";

type Api = { "add": { a: number; b: number }; "result": { re: string; value: number } };

await using server = await Agent.start<Api>({ id: "calculator", transport: "memory://rr" });
await using client = await Agent.start<Api>({ id: "client", transport: "memory://rr" });

server.on("add", async (req) => {
  await server.send(req.from, {
    type: "result",
    content: { re: req.id, value: req.content.a + req.content.b },
  });
});

const waiting = new Map<string, (value: number) => void>();
client.on("result", (res) => waiting.get(res.content.re)?.(res.content.value));

async function add(a: number, b: number): Promise<number> {
  const reply = Promise.withResolvers<number>();
  const id = crypto.randomUUID();
  waiting.set(id, reply.resolve); // registered before sending: the answer cannot outrun it
  await client.send("calculator", { id, type: "add", content: { a, b } });
  return await reply.promise;
}

await client.connect("calculator");
const results = await Promise.all([add(1, 2), add(20, 22), add(-5, 5)]);
console.log("results:", results);
