// An MQTT subscription runs at most `prefetch` handlers at once. Mosquitto (2.0.11) sent a session whose
// receive maximum was 8 over 200 unacknowledged messages once acknowledgements flowed (a 50 ms handler, 300
// messages), and every one went to a handler at once: the transport holds the excess until a handler finishes.
import assert from "node:assert/strict";
import { createTransport, MqttTransport, sessionOf } from "../transports/mqtt.ts";
import { requireBroker } from "./_env.ts";

const MQTT = "mqtt://127.0.0.1:1883";

Deno.test("mqtt: 300 messages to a 50 ms handler with prefetch 8: never more than 8 handlers at once, each once, in order", async () => {
  if (!(await requireBroker("Mosquitto", 1883))) return;
  const prefix = `spores-prefetch-${crypto.randomUUID().slice(0, 8)}`;
  const rx = await createTransport(MQTT, { prefix });
  const tx = await createTransport(MQTT, { prefix });
  try {
    let running = 0, most = 0;
    const got: string[] = [];
    const sub = await rx.subscribe({ agent: "bob" }, async (d) => {
      most = Math.max(most, ++running);
      got.push(d.dedupId!);
      await new Promise((r) => setTimeout(r, 50));
      running--;
      await d.ack();
    }, { prefetch: 8 });
    const total = 300;
    for (let i = 0; i < total; i++) {
      await tx.publish({ agent: "bob" }, new Uint8Array(1000), {
        dedupId: `m${i}`,
        priority: 4,
        ttlMs: 60_000,
      });
    }
    const end = Date.now() + 30_000;
    while (got.length < total && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200)); // nothing more comes
    await sub.close();
    assert.ok(most <= 8, `${most} handlers ran at once`);
    assert.ok(most > 1, "handlers ran concurrently");
    assert.deepEqual(got, Array.from({ length: total }, (_, i) => `m${i}`));
  } finally {
    await rx.close();
    await tx.close();
    const t = await MqttTransport.connect(MQTT, { prefix, watchDrops: false });
    await t.removeSession(sessionOf(prefix, { agent: "bob" }).clientId);
    await t.close();
  }
});
