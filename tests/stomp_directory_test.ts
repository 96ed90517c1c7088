// The STOMP card directory: a lookup reads an existing card queue only, so an id with no card is answered at
// once and leaves no queue behind (a spore claiming an unknown sender creates no broker state).
import assert from "node:assert/strict";
import { connect } from "amqplib";
import { createCard, Identity } from "../mod.ts";
import { StompTransport } from "../transports/stomp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";

const TCP = "stomp://guest:guest@127.0.0.1:61613";

async function queueExists(name: string): Promise<boolean> {
  const conn = await connect("amqp://guest:guest@127.0.0.1:5672");
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => {});
    try {
      await ch.checkQueue(name);
      await ch.close();
      return true;
    } catch {
      return false;
    }
  } finally {
    await conn.close().catch(() => {});
  }
}

Deno.test("stomp directory: an unknown id is answered at once and no queue is created for it", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const prefix = `spores-stompdir-${crypto.randomUUID().slice(0, 8)}`;
  const transport = await StompTransport.connect(TCP, { prefix });
  try {
    const started = performance.now();
    assert.equal(await transport.directory.lookup("nobody-here"), undefined);
    const ms = performance.now() - started;
    assert.ok(ms < 2000, `answered in ${Math.round(ms)} ms (a 5 s wait is for queues that exist)`);
    assert.equal(await queueExists(`${prefix}.card.nobody-here`), false, "no card queue was created");
    // A published card is found.
    const identity = await Identity.generate();
    await transport.directory.publish(await createCard("alice", identity));
    assert.equal((await transport.directory.lookup("alice"))?.fingerprint, identity.fingerprint);
    // And the transport still works after the refused subscription (its own connection is not the lookup's).
    assert.equal((await transport.directory.lookup("alice"))?.id, "alice");
  } finally {
    await transport.close();
    await cleanRabbit(prefix);
  }
});
