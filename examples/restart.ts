/**
 * Restarts: a worker goes down while a client keeps sending, and comes back.
 *
 * With a persistent store (`FileSessionStore`, or `RedisSessionStore` on Redis) the restarted worker opens
 * everything at once. This example uses the default in-memory store, whose sessions die with the worker:
 * the worker asks the client, in a signed request, to send again what it can no longer open, and the client
 * does, with the same spore ids. Nothing whose send resolved is lost.
 *
 * Run: `deno run examples/restart.ts` (no permission needed on `memory://`).
 * With a file store: `deno run --allow-read=. --allow-write=. examples/restart.ts --file worker.state`.
 *
 * @module
 */
import { Agent, FileSessionStore, Identity, type Message } from "../mod.ts";

const file = Deno.args[Deno.args.indexOf("--file") + 1];
const identity = await Identity.generate(); // in a deployment: Identity.open(keyFile, passphrase)
const handled: number[] = [];

async function startWorker(): Promise<{ worker: Agent; store?: FileSessionStore }> {
  const store = Deno.args.includes("--file") ? await FileSessionStore.open(file!) : undefined;
  const worker = await Agent.start({
    id: "worker",
    transport: "memory://restart",
    identity,
    store,
    handlers: { job: (m: Message) => void handled.push(m.content as number) },
  });
  return { worker, store };
}

let { worker, store } = await startWorker();
await using client = await Agent.start({ id: "client", transport: "memory://restart" });
client.addEventListener("lost", (e) => console.log(`lost for good: ${e.detail.ids.length}`));
await client.connect("worker");
for (let n = 0; n < 5; n++) await client.send("worker", { type: "job", content: n });

await worker.close(); // down (a crash would do the same)
store?.close();
for (let n = 5; n < 10; n++) await client.send("worker", { type: "job", content: n }); // still on the old session

({ worker, store } = await startWorker());
while (handled.length < 10) await new Promise((r) => setTimeout(r, 10));
const m = client.metrics();
console.log(`worker handled ${handled.length}: ${handled.join(" ")}`);
console.log(`client sent again ${m.resent}, lost ${m.lost}`);
await worker.close();
store?.close();
