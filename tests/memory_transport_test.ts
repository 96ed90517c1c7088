// The in-process broker: the conformance suite, and what only it promises.
import assert from "node:assert/strict";
import { TransportError } from "../mod.ts";
import { createTransport, MemoryBroker, MemoryTransport } from "../transports/memory.ts";
import { transportConformance } from "./transport_conformance.ts";

transportConformance({ name: "memory", open: () => createTransport("memory://conformance") });

Deno.test("memory broker: a full queue applies back-pressure, then fails with TransportError", async () => {
  const broker = new MemoryBroker({ maxQueueBytes: 100, publishTimeoutMs: 200 });
  const t = new MemoryTransport(broker);
  await t.publish({ agent: "slow" }, new Uint8Array(60));
  const blocked = t.publish({ agent: "slow" }, new Uint8Array(60));
  let settled = false;
  blocked.then(() => settled = true, () => settled = true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(settled, false, "publisher should wait for space");
  // A consumer frees space: the waiting publish completes.
  const sub = await t.subscribe({ agent: "slow" }, (d) => d.ack());
  await blocked;
  await sub.close();
  // With no consumer, the wait ends in a TransportError.
  await t.publish({ agent: "stuck" }, new Uint8Array(90));
  await assert.rejects(t.publish({ agent: "stuck" }, new Uint8Array(90)), TransportError);
  await assert.rejects(t.publish({ agent: "x" }, new Uint8Array(5 << 20)), TransportError);
  await t.close();
  await assert.rejects(t.publish({ agent: "x" }, new Uint8Array(1)), TransportError);
});

Deno.test("memory broker: competing consumers share a queue, each message once", async () => {
  const broker = new MemoryBroker();
  const t1 = new MemoryTransport(broker);
  const t2 = new MemoryTransport(broker);
  const seen: number[] = [];
  const done = Promise.withResolvers<void>();
  const handler = async (d: { bytes: Uint8Array; ack(): Promise<void> }) => {
    seen.push(d.bytes[0]! + (d.bytes[1]! << 8));
    await d.ack();
    if (seen.length === 1000) done.resolve();
  };
  await t1.subscribe({ agent: "w" }, handler);
  await t2.subscribe({ agent: "w" }, handler);
  for (let i = 0; i < 1000; i++) await t1.publish({ agent: "w" }, new Uint8Array([i & 0xff, i >> 8]));
  await done.promise;
  assert.equal(new Set(seen).size, 1000);
  await t1.close();
  await t2.close();
});
