// Type-checked with TypeScript (tsc, Node module resolution) against the declarations of the installed
// package, as a Node user's TypeScript project would be: the public types resolve and are not `any`.
import { Agent, FileDirectory, Identity, type Message, TrustFile } from "@spores/spores";
import { createTransport as redis } from "@spores/spores/redis";
import { createTransport as stomp } from "@spores/spores/stomp";
import * as nats from "@spores/spores/nats";
import * as sqs from "@spores/spores/sqs";
import * as mqtt from "@spores/spores/mqtt";
import * as amqp from "@spores/spores/amqp";
import * as memory from "@spores/spores/memory";
import * as primitives from "@spores/spores/crypto";
import * as protocol from "@spores/spores/spore";

const bob = await Agent.start({
  id: "bob",
  transport: "memory://",
  handlers: { add: (m: Message) => m.reply(1) },
});
const answer: Message = await bob.request("bob", { type: "add", content: [1] }, { timeoutMs: 1000 });
// @ts-expect-error: a recipient is an agent id, a string
await bob.request(42, { type: "add", content: [1] });
// @ts-expect-error: Agent.start needs an id
await Agent.start({ transport: "memory://" });
const identity: Identity = await Identity.generate();
const trust: TrustFile = await TrustFile.open("/tmp/trust.json", identity);
const directory: FileDirectory = new FileDirectory("/tmp/cards.json");
export const used = [
  answer,
  trust,
  directory,
  redis,
  stomp,
  nats,
  sqs,
  mqtt,
  amqp,
  memory,
  primitives,
  protocol,
];
