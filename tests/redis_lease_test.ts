// A message another process of the agent is still handling is waited for, not returned to the broker over and
// over (each return spends a delivery attempt, and enough of them dead-letter a message that was being handled).
import assert from "node:assert/strict";
import { Agent, Identity } from "../mod.ts";
import { RedisSessionStore, RedisTransport } from "../transports/redis.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";

const REDIS = "redis://127.0.0.1:6379";

Deno.test("redis: a message reclaimed while its handler runs elsewhere waits for it; no attempt is spent", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  const prefix = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  // Entries idle for 300 ms are reclaimed by the other consumer; the transport dead-letters after 3 deliveries.
  const options = { prefix, visibilityTimeoutMs: 300, claimIntervalMs: 100, blockMs: 100, maxDeliveries: 3 };
  const identity = await Identity.generate({ extractable: true });
  const transports = [
    await RedisTransport.connect(REDIS, options),
    await RedisTransport.connect(REDIS, options),
  ];
  const bobs: Agent[] = [];
  try {
    let runs = 0;
    const finished = Promise.withResolvers<void>();
    for (const transport of transports) {
      const bob = await Agent.start({
        id: "bob",
        identity,
        transport,
        store: new RedisSessionStore(transport.client, "bob", { prefix }),
        handlerLeaseMs: 10_000,
      });
      bob.on("slow", async () => {
        runs++;
        await new Promise((r) => setTimeout(r, 2500)); // far past the visibility timeout
        finished.resolve();
      });
      bobs.push(bob);
    }
    await using alice = await Agent.start({ id: "alice", transport: REDIS, transportOptions: options });
    await bobs[1]!.close(); // the first process reads the message
    await alice.send("bob", { type: "slow", content: null });
    while (runs === 0) await new Promise((r) => setTimeout(r, 10));
    bobs[1] = await Agent.start({ // and the second comes up while its handler runs
      id: "bob",
      identity,
      transport: transports[1]!,
      store: new RedisSessionStore(transports[1]!.client, "bob", { prefix }),
      handlerLeaseMs: 10_000,
    });
    bobs[1].on("slow", () => void runs++);
    await finished.promise;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(runs, 1, "handled once");
    assert.equal(await transports[0]!.client.xlen(`${prefix}:dlq:{bob}`), 0, "not dead-lettered");
    assert.equal(bobs.reduce((n, b) => n + b.metrics().deadLetters, 0), 0);
  } finally {
    for (const bob of bobs) await bob.close();
    for (const t of transports) await t.close();
    await cleanRedis(prefix);
  }
});
