// The RabbitMQ card directory under attack: spores claiming unknown senders create no broker state.
import assert from "node:assert/strict";
import { Agent } from "../mod.ts";
import { createTransport } from "../transports/amqp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";

const AMQP = "amqp://guest:guest@127.0.0.1:5672";

async function queues(prefix: string): Promise<string[]> {
  const out = await new Deno.Command("rabbitmqctl", {
    args: ["list_queues", "-q", "--no-table-headers", "name"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim()).filter((n) =>
    n.startsWith(prefix)
  );
}

Deno.test("amqp directory: looking up unknown agents declares nothing and answers at once", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  const exchange = `spores-dir-${crypto.randomUUID().slice(0, 8)}`;
  const transport = await createTransport(AMQP, { exchange });
  try {
    await using bob = await Agent.start({ id: "bob", transport });
    const before = await queues(exchange);
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => transport.directory!.lookup(`nobody-${i}`)),
    );
    const elapsed = performance.now() - started;
    assert.ok(answers.every((a) => a === undefined));
    assert.deepEqual(await queues(exchange), before, "no card queue made for an unknown id");
    assert.ok(elapsed < 5000, `50 negative lookups took ${elapsed.toFixed(0)} ms`);
    // A known agent is still found, and an agent that publishes later is found once it has.
    assert.equal((await transport.directory!.lookup("bob"))?.id, "bob");
    await using _carol = await Agent.start({
      id: "nobody-1",
      transport: AMQP,
      transportOptions: { exchange },
    });
    assert.equal((await transport.directory!.lookup("nobody-1"))?.id, "nobody-1");
    assert.ok(bob.id);
  } finally {
    await transport.close();
    await cleanRabbit(exchange);
  }
});
