// The RabbitMQ transport on the real broker of this machine (127.0.0.1:5672, guest/guest).
import assert from "node:assert/strict";
import { createTransport } from "../transports/amqp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { transportConformance } from "./transport_conformance.ts";

const AMQP = "amqp://guest:guest@127.0.0.1:5672";
const exchange = `spores-test-${crypto.randomUUID().slice(0, 8)}`;

transportConformance({
  name: "amqp",
  available: () => requireBroker("RabbitMQ", 5672),
  open: () => createTransport(AMQP, { exchange }),
  slackMs: 500,
});

Deno.test("amqp: remove the test's queues and exchanges", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  await cleanRabbit(exchange);
});

// Awaited one at a time, publish to delivery, for `count` messages of `size` bytes; the median in ms.
async function oneAtATime(confirms: boolean, size: number, count: number): Promise<number> {
  const x = `${exchange}-nagle-${confirms ? "c" : "p"}`;
  const t = await createTransport(AMQP, { exchange: x, confirms });
  try {
    let arrived: (() => void) | undefined;
    const sub = await t.subscribe({ agent: "nagle" }, async (d) => {
      await d.ack();
      arrived?.();
    });
    const body = new Uint8Array(size).fill(1);
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const got = new Promise<void>((r) => arrived = r);
      const start = performance.now();
      await t.publish({ agent: "nagle" }, body);
      await got;
      times.push(performance.now() - start);
    }
    await sub.close();
    return times.sort((a, b) => a - b)[count >> 1]!;
  } finally {
    await t.close();
    await cleanRabbit(x);
  }
}

Deno.test("amqp: a 4 KiB message is not held back by Nagle's algorithm (no ~40 ms wait per send)", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  for (const confirms of [true, false]) {
    const small = await oneAtATime(confirms, 64, 15);
    const large = await oneAtATime(confirms, 4096, 15);
    // With Nagle on, the large one waits for the broker's delayed ACK (≈40 ms) while the small one does not:
    // a ratio of 10× or more. Allow a generous 4× for a loaded machine.
    assert.ok(
      large < small * 4 + 2,
      `confirms=${confirms}: 4 KiB median ${large} ms against 64 B ${small} ms`,
    );
  }
});

Deno.test("amqp: confirms: false publishes on a plain channel (resolves without a confirm)", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const x = `${exchange}-plain`;
  const t = await createTransport(AMQP, { exchange: x, confirms: false });
  try {
    const seen: number[] = [];
    const sub = await t.subscribe({ agent: "plain" }, async (d) => {
      seen.push(d.bytes[0]!);
      await d.ack();
    });
    for (let i = 0; i < 50; i++) await t.publish({ agent: "plain" }, new Uint8Array([i]));
    // No queue for this agent: not noticed without confirms (no error), by design of the option.
    await t.publish({ agent: "nobody-here" }, new Uint8Array([1]));
    const end = Date.now() + 5000;
    while (seen.length < 50 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i));
    await sub.close();
  } finally {
    await t.close();
    await cleanRabbit(x);
  }
});
