/**
 * Three agents on RabbitMQ (127.0.0.1:5672, guest/guest): a session, priorities
 * and a broadcast, through the durable topic exchange `spores-example`.
 *
 * Run:
 * ```sh
 * deno run --allow-net=127.0.0.1:5672 --allow-read=. examples/amqp_agents.ts
 * ```
 * `--allow-net` for the broker; `--allow-read=.` because the AMQP transport is loaded by URL scheme from local
 * files (importing `@spores/spores/amqp` from JSR needs no read permission).
 *
 * @module
 */
import { Agent } from "../mod.ts";

const url = "amqp://guest:guest@127.0.0.1:5672";
const transportOptions = { exchange: "spores-example" };
await using dispatcher = await Agent.start({ id: "dispatcher", transport: url, transportOptions });
await using worker = await Agent.start({ id: "worker", transport: url, transportOptions });
await using auditor = await Agent.start({ id: "auditor", transport: url, transportOptions });

const done = Promise.withResolvers<void>();
let events = 0;
const tick = () => ++events === 4 && done.resolve();
worker.on("job", (m) => {
  console.log(`worker  ← job ${JSON.stringify(m.content)} priority ${m.priority} (${m.kind})`);
  tick();
});
for (const a of [worker, auditor]) {
  a.on("notice", (m) => {
    console.log(`${a.id.padEnd(7)} ← #${m.channel} ${JSON.stringify(m.content)} from ${m.from}`);
    tick();
  });
  await a.join("audit", { members: ["worker", "auditor"], posters: ["dispatcher"] });
}
dispatcher.setMembers("audit", { members: ["worker", "auditor"] });

await dispatcher.connect("worker");
await dispatcher.send("worker", { type: "job", content: { task: "index" }, priority: 2 });
await dispatcher.send("worker", { type: "job", content: { task: "page on-call" }, priority: 9 });
await dispatcher.broadcast("audit", { type: "notice", content: { jobs: 2 } });
await done.promise;
