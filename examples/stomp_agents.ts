/**
 * Three agents on RabbitMQ's STOMP adapter (guest/guest): two over plain STOMP on TCP (127.0.0.1:61613), one
 * over Web-STOMP (ws://127.0.0.1:15674/ws). A session with priorities, and a broadcast to a channel, under the
 * prefix `spores-example-stomp`.
 *
 * Run:
 * ```sh
 * deno run --allow-net=127.0.0.1:61613,127.0.0.1:15674 --allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE \
 *   --allow-read=. examples/stomp_agents.ts
 * ```
 * `--allow-net` for the broker's two listeners; `--allow-env` for the two switches the `ws` package (the
 * WebSocket client of `stomp+ws://`) reads; `--allow-read=.` because the STOMP transport is loaded by URL
 * scheme from local files (importing `@spores/spores/stomp` from JSR needs no read permission).
 *
 * @module
 */
import { Agent } from "../mod.ts";

const tcp = "stomp://guest:guest@127.0.0.1:61613";
const ws = "stomp+ws://guest:guest@127.0.0.1:15674/ws";
const transportOptions = { prefix: "spores-example-stomp" };
await using dispatcher = await Agent.start({ id: "dispatcher", transport: tcp, transportOptions });
await using worker = await Agent.start({ id: "worker", transport: tcp, transportOptions });
await using auditor = await Agent.start({ id: "auditor", transport: ws, transportOptions });

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
