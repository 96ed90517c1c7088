/**
 * Three agents on NATS JetStream (127.0.0.1:4222): a session, a dead letter
 * and a broadcast that a member who was away still receives, through the
 * stream `spores_example` (subjects `spores_example.>`).
 *
 * Run:
 * ```sh
 * deno run --allow-net=127.0.0.1:4222 --allow-read=. examples/nats_agents.ts
 * ```
 * `--allow-net` for the server; `--allow-read=.` because the NATS transport is loaded by URL scheme from local
 * files (importing `@spores/spores/nats` from JSR needs no read permission).
 *
 * @module
 */
import { Agent } from "../mod.ts";

const url = "nats://127.0.0.1:4222";
const transportOptions = { prefix: "spores_example", ackWaitMs: 5000 };
await using dispatcher = await Agent.start({ id: "dispatcher", transport: url, transportOptions });
await using worker = await Agent.start({
  id: "worker",
  transport: url,
  transportOptions,
  maxRedeliveries: 1,
});
await using auditor = await Agent.start({ id: "auditor", transport: url, transportOptions });

const done = Promise.withResolvers<void>();
let events = 0;
const tick = () => ++events === 4 && done.resolve();
worker.on("job", (m) => {
  if (m.content === "explode") throw new Error("cannot do that");
  console.log(`worker  ← job ${JSON.stringify(m.content)} (${m.kind} spore)`);
  tick();
});
worker.addEventListener("dead-letter", (e) => {
  const { message, attempts } = (e as CustomEvent).detail;
  console.log(`worker  ✗ job ${JSON.stringify(message.content)} dead-lettered after ${attempts} attempts`);
  tick();
});
// The auditor joins the channel, goes away, and catches up when it is back.
const audit = { members: ["worker", "auditor"], posters: ["dispatcher"] };
dispatcher.setMembers("audit", { members: ["worker", "auditor"] });
await auditor.join("audit", audit);
await auditor.leave("audit");
for (const a of [worker, auditor]) {
  a.on("notice", (m) => {
    console.log(`${a.id.padEnd(7)} ← #${m.channel} ${JSON.stringify(m.content)} from ${m.from}`);
    tick();
  });
}
await worker.join("audit", audit);

await dispatcher.connect("worker");
await dispatcher.send("worker", { type: "job", content: "index" });
await dispatcher.send("worker", { type: "job", content: "explode" });
await dispatcher.broadcast("audit", { type: "notice", content: { jobs: 2 } });
await auditor.join("audit", audit);
await done.promise;
