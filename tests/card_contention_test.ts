// RabbitMQ keeps each card in a last-value queue that a lookup reads by taking the card and giving it back, so
// readers of one card take turns. With 50 agents looking each other up at once (tests/load_test.ts), a lookup
// could wait longer than it allowed and answer "no card": the sender's `send` failed with "unknown recipient",
// and a receiver refused a valid spore as from an unknown sender, acknowledging it away. A card held by another
// reader for longer than that old allowance (500 ms) is found once it is given back.
import assert from "node:assert/strict";
import { connect } from "amqplib";
import { Identity } from "../mod.ts";
import { createCard } from "../spore/card.ts";
import { createTransport as amqpTransport } from "../transports/amqp.ts";
import { createTransport as stompTransport } from "../transports/stomp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";

const AMQP = "amqp://guest:guest@127.0.0.1:5672";
const STOMP = "stomp://guest:guest@127.0.0.1:61613";
const HOLD_MS = 1500;

/** Takes the only message of `queue` unacknowledged, as another reader does, and gives it back after `ms`. */
async function holdFor(queue: string, ms: number): Promise<void> {
  const conn = await connect(AMQP);
  try {
    const ch = await conn.createChannel();
    const msg = await ch.get(queue, { noAck: false });
    assert.ok(msg, `${queue} holds a card`);
    await new Promise((r) => setTimeout(r, ms));
    ch.nack(msg, false, true);
    await ch.close();
  } finally {
    await conn.close();
  }
}

Deno.test("amqp directory: a card another reader holds for 1.5 s is found, not reported missing", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const exchange = `spores-held-${crypto.randomUUID().slice(0, 8)}`;
  const owner = await amqpTransport(AMQP, { exchange });
  const reader = await amqpTransport(AMQP, { exchange });
  try {
    const bob = await Identity.generate();
    await owner.directory!.publish(await createCard("bob", bob));
    const holding = holdFor(`${exchange}.card.bob`, HOLD_MS);
    await new Promise((r) => setTimeout(r, 100)); // the card is taken
    const started = performance.now();
    const card = await reader.directory!.lookup("bob");
    assert.equal(card?.fingerprint, bob.fingerprint);
    assert.ok(performance.now() - started > 500, "the lookup did wait for the card");
    await holding;
  } finally {
    await owner.close();
    await reader.close();
    await cleanRabbit(exchange);
  }
});

Deno.test("stomp directory: a card another reader holds for 1.5 s is found, not reported missing", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const prefix = `spores-held-${crypto.randomUUID().slice(0, 8)}`;
  const owner = await stompTransport(STOMP, { prefix });
  const reader = await stompTransport(STOMP, { prefix });
  try {
    const bob = await Identity.generate();
    await owner.directory!.publish(await createCard("bob", bob));
    const holding = holdFor(`${prefix}.card.bob`, HOLD_MS);
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    const card = await reader.directory!.lookup("bob");
    assert.equal(card?.fingerprint, bob.fingerprint);
    assert.ok(performance.now() - started > 500, "the lookup did wait for the card");
    await holding;
  } finally {
    await owner.close();
    await reader.close();
    await cleanRabbit(prefix);
  }
});
