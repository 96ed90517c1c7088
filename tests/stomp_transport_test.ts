// The STOMP transport on the real RabbitMQ of this machine: the shared conformance suite over TCP (61613)
// and over WebSocket (Web-STOMP, 15674), binary bodies, ids that cannot escape their destination.
import assert from "node:assert/strict";
import { ConfigError } from "../mod.ts";
import { createTransport, StompDestinations } from "../transports/stomp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { transportConformance } from "./transport_conformance.ts";

const TCP = "stomp://guest:guest@127.0.0.1:61613";
const WS = "stomp+ws://guest:guest@127.0.0.1:15674/ws";
const prefix = `spores-stomp-${crypto.randomUUID().slice(0, 8)}`;

transportConformance({
  name: "stomp (tcp)",
  available: () => requireBroker("RabbitMQ STOMP", 61613),
  open: () => createTransport(TCP, { prefix }),
  slackMs: 500,
});

transportConformance({
  name: "stomp (websocket)",
  available: () => requireBroker("RabbitMQ Web-STOMP", 15674),
  open: () => createTransport(WS, { prefix }),
  slackMs: 500,
});

Deno.test("stomp: remove the conformance tests' queues", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  await cleanRabbit(prefix);
});
