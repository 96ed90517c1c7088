// The RabbitMQ transport on the real broker of this machine (127.0.0.1:5672, guest/guest).
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
