/**
 * Broadcast: one sender, a channel, several members. Each message is
 * encrypted once under the sender's sender key and signed; members get the
 * sender key pairwise, over their own sealed spores.
 *
 * Run: `deno run examples/broadcast.ts` (no permission needed on `memory://`).
 *
 * @module
 */
import { Agent } from "../mod.ts";

const url = "memory://broadcast";
await using monitor = await Agent.start({ id: "monitor", transport: url });
const members = await Promise.all(
  ["pager", "dashboard", "archive"].map((id) => Agent.start({ id, transport: url })),
);

let received = 0;
const all = Promise.withResolvers<void>();
for (const m of members) {
  m.on("alert", (msg) => {
    console.log(`${m.id.padEnd(9)} ← ${msg.from} #${msg.channel}: ${JSON.stringify(msg.content)}`);
    if (++received === members.length * 3) all.resolve();
  });
  // Membership is explicit: who may read the channel, and whose broadcasts are accepted.
  await m.join("ops", { members: members.map((x) => x.id), posters: ["monitor"] });
}
monitor.setMembers("ops", { members: members.map((x) => x.id) });

for (const level of [1, 2, 3]) {
  await monitor.broadcast("ops", { type: "alert", content: { level }, priority: level + 5 });
}
await all.promise;
await Promise.all(members.map((m) => m.close()));
