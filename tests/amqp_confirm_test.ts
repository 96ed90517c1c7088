// A RabbitMQ publish whose confirm (AMQP) or receipt (STOMP) is lost with its connection is published again, the
// same bytes with the same spore id, on the next connection: none of the sends that resolved is lost, and the
// receiving agent handles none twice.
import assert from "node:assert/strict";
import { Agent, TransportError } from "../mod.ts";
import { AmqpTransport } from "../transports/amqp.ts";
import type { StompTransport } from "../transports/stomp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { startRelay } from "./_relay.ts";
import { connect } from "amqplib";

const until = async (cond: () => boolean, ms = 60_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

interface CutOff {
  port: number;
  url(port: number): string;
  transportOptions: Record<string, unknown>;
  /** Publishes the transport made again. */
  republished(t: unknown): number;
  clean(): Promise<void>;
}

/**
 * Alice sends 2,000 messages, 100 in flight, through a relay that is cut twice while confirms are outstanding;
 * bob reads straight from the broker. Every send that resolved is handled, none twice.
 */
async function confirmsCutOff(c: CutOff): Promise<void> {
  const relay = startRelay(c.port);
  let alice: Agent | undefined;
  let bob: Agent | undefined;
  try {
    alice = await Agent.start({
      id: "alice",
      transport: c.url(relay.port),
      transportOptions: c.transportOptions,
    });
    bob = await Agent.start({ id: "bob", transport: c.url(c.port), transportOptions: c.transportOptions });
    const handled = new Map<number, number>();
    bob.on("n", (m) => void handled.set(m.content as number, (handled.get(m.content as number) ?? 0) + 1));
    await alice.connect("bob");
    const resolved = new Set<number>();
    const unknown: number[] = [];
    const other: unknown[] = [];
    const N = 2000;
    let cuts = 0;
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; i < N; i++) {
      if (i === 600 || i === 1400) cuts += relay.cut();
      const p: Promise<void> = alice.send("bob", { type: "n", content: i }).then(
        () => void resolved.add(i),
        (e) => {
          if (e instanceof TransportError && /outcome .* is unknown/.test(e.message)) unknown.push(i);
          else other.push(e);
        },
      ).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 100) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    assert.deepEqual(other, [], "no other failure");
    assert.ok(cuts >= 2, `${cuts} connections cut`);
    assert.equal(resolved.size + unknown.length, N);
    const republished = c.republished(alice.transport);
    assert.ok(republished > 0, "the cuts left confirms outstanding, and those sends were published again");
    await until(
      () => [...resolved].every((i) => handled.has(i)),
      60_000,
      `every resolved send handled (${handled.size})`,
    );
    await new Promise((r) => setTimeout(r, 1000)); // time for a late copy to show
    const twice = [...handled].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "a message was handled twice");
    console.log(
      `(${N} sends, ${cuts} connections cut: ${resolved.size} resolved, ${unknown.length} of unknown outcome, ` +
        `${republished} published again, ${handled.size} handled once each, ` +
        `${bob.metrics().duplicates} duplicate copies dropped)`,
    );
  } finally {
    await alice?.close().catch(() => {});
    await bob?.close().catch(() => {});
    relay.close();
    await c.clean();
  }
}

Deno.test("amqp: sends whose confirms were cut off are published again; none lost, none handled twice", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const exchange = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  await confirmsCutOff({
    port: 5672,
    url: (port) => `amqp://guest:guest@127.0.0.1:${port}`,
    transportOptions: { exchange, maxBackoffMs: 200 },
    republished: (t) => (t as AmqpTransport).republished,
    clean: () => cleanRabbit(exchange),
  });
});

Deno.test("stomp: sends whose receipts were cut off are sent again; none lost, none handled twice", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const prefix = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  await confirmsCutOff({
    port: 61613,
    url: (port) => `stomp://guest:guest@127.0.0.1:${port}`,
    transportOptions: { prefix, maxBackoffMs: 200 },
    republished: (t) => (t as StompTransport).republished,
    clean: () => cleanRabbit(prefix),
  });
});

Deno.test("amqp: a confirm lost on every attempt ends in a TransportError that says the outcome is unknown", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const exchange = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  const relay = startRelay(5672);
  const t = await AmqpTransport.connect(`amqp://guest:guest@127.0.0.1:${relay.port}`, {
    exchange,
    publishAttempts: 1,
  });
  try {
    const sub = await t.subscribe({ agent: "bob" }, async (d) => await d.ack());
    await sub.close();
    relay.freeze(); // the publish goes out but its confirm cannot come back
    const pending = t.publish({ agent: "bob" }, new Uint8Array([1, 2, 3]), { dedupId: "x1" });
    await new Promise((r) => setTimeout(r, 200));
    relay.cut();
    relay.thaw();
    const e = await pending.catch((e) => e);
    assert.ok(e instanceof TransportError, String(e));
    assert.match(e.message, /outcome of a publish to agent\.bob is unknown/);
    assert.match(e.message, /same spore again \(the same id\) is safe/);
  } finally {
    await t.close();
    relay.close();
    await cleanRabbit(exchange);
  }
});

Deno.test("amqp: a publish channel the broker closed (exchange deleted) is a refusal, not an unknown outcome, and is replaced", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const exchange = `spores-test-${crypto.randomUUID().slice(0, 8)}`;
  const t = await AmqpTransport.connect("amqp://guest:guest@127.0.0.1:5672", {
    exchange,
    publishAttempts: 3,
  });
  const raw = await connect("amqp://guest:guest@127.0.0.1:5672");
  try {
    const got: number[] = [];
    const sub = await t.subscribe({ agent: "bob" }, async (d) => {
      got.push(d.bytes[0]!);
      await d.ack();
    });
    await t.publish({ agent: "bob" }, new Uint8Array([1]));
    const ch = await raw.createChannel();
    await ch.deleteExchange(exchange);
    const e = await t.publish({ agent: "bob" }, new Uint8Array([2])).catch((e) => e);
    assert.ok(e instanceof TransportError, String(e));
    assert.match(e.message, /refused a publish to agent\.bob: .*NOT_FOUND/);
    assert.equal(t.republished, 0, "a refusal is not published again");
    // The exchange back (as the transport declares it): the next publish goes out on a new channel.
    await ch.assertExchange(exchange, "topic", { durable: true });
    await ch.bindQueue(`${exchange}.agent.bob`, exchange, "agent.bob.#");
    await ch.close();
    await t.publish({ agent: "bob" }, new Uint8Array([3]));
    await until(() => got.includes(3), 10_000, "the message after the refusal");
    assert.deepEqual(got, [1, 3]);
    await sub.close();
  } finally {
    await raw.close();
    await t.close();
    await cleanRabbit(exchange);
  }
});
