/**
 * The Reef: Praval's call shape (`send`, `broadcast`, `subscribe` with
 * spore types), with every spore sealed and signed underneath.
 *
 * Run: `deno run examples/reef.ts` (no permission needed on `memory://`).
 *
 * @module
 */
import { Reef, type Spore, SporeType } from "../mod.ts";

await using reef = await Reef.start({ transport: "memory://reef" });
const seen = Promise.withResolvers<void>();
let count = 0;
const show = (who: string) => (spore: Spore) => {
  console.log(
    `${who.padEnd(8)} ${spore.sporeType.padEnd(9)} from ${spore.fromAgent}: ${
      JSON.stringify(spore.knowledge)
    }`,
  );
  if (++count === 3) seen.resolve();
};

await reef.subscribe("analyst", show("analyst"));
await reef.subscribe("curator", show("curator"));

await reef.send("researcher", "analyst", { question: "why do tides lag the moon?" }, {
  sporeType: SporeType.REQUEST,
  priority: 8,
  expiresInSeconds: 60,
});
await reef.broadcast("researcher", { finding: "friction with the sea floor" });
await seen.promise;
