// Transport options are typed by the URL's scheme (a misspelt option is a type error, proved by the
// `@ts-expect-error` lines below, which `deno check` and `deno test` type-check), and every transport refuses an
// unknown option at run time with a ConfigError that names it and lists the known ones.
import assert from "node:assert/strict";
import { Agent, ConfigError, openTransport, type TransportOptionsFor } from "../mod.ts";

// Never called: these lines are here to be type-checked.
function typeChecks(url: string): void {
  // Options of the scheme the URL names are accepted.
  void Agent.start({
    id: "a",
    transport: "redis://127.0.0.1:6379",
    transportOptions: { prefix: "x", maxLen: 10 },
  });
  void Agent.start({ id: "a", transport: "nats://127.0.0.1:4222", transportOptions: { ackWaitMs: 5000 } });
  void Agent.start({ id: "a", transport: "memory://t", transportOptions: { maxQueueBytes: 1 << 20 } });
  void Agent.start({ id: "a", transport: "stomp+ws://h:15674/ws", transportOptions: { topology: "amqp" } });
  void Agent.start({ id: "a", transport: "REDISS://h:6380", transportOptions: { tls: { ca: "pem" } } });
  void openTransport("sqs://us-east-1", {
    fifo: true,
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  // A URL known only at run time takes the options of any transport.
  void Agent.start({ id: "a", transport: url, transportOptions: { prefix: "x" } });

  // @ts-expect-error: a misspelt Redis option
  void Agent.start({ id: "a", transport: "redis://127.0.0.1:6379", transportOptions: { prefx: "x" } });
  // @ts-expect-error: an AMQP option on a NATS URL
  void Agent.start({ id: "a", transport: "nats://127.0.0.1:4222", transportOptions: { exchange: "x" } });
  // @ts-expect-error: the memory broker has no prefix
  void Agent.start({ id: "a", transport: "memory://t", transportOptions: { prefix: "x" } });
  // @ts-expect-error: a value of the wrong type
  void Agent.start({ id: "a", transport: "mqtt://h:1883", transportOptions: { qos: 3 } });
  // @ts-expect-error: a misspelt SQS option through openTransport
  void openTransport("sqs://us-east-1", { fifos: true });
  // @ts-expect-error: a key no transport knows, even for a URL known only at run time
  void Agent.start({ id: "a", transport: url, transportOptions: { bogus: 1 } });
  // @ts-expect-error: the options of a scheme, by name
  const wrong: TransportOptionsFor<"amqps://h"> = { stream: "x" };
  void wrong;
}
void typeChecks;

const CASES: [string, string, string][] = [
  ["memory", "memory://options-test", "maxQueueBytes"],
  ["redis", "redis://127.0.0.1:1", "visibilityTimeoutMs"],
  ["amqp", "amqp://guest:guest@127.0.0.1:1", "queueType"],
  ["mqtt", "mqtt://127.0.0.1:1", "sessionExpirySeconds"],
  ["stomp", "stomp://guest:guest@127.0.0.1:1", "topology"],
  ["sqs", "sqs://us-east-1?endpoint=http://127.0.0.1:1", "visibilityTimeoutSeconds"],
  ["nats", "nats://127.0.0.1:1", "ackWaitMs"],
];

for (const [scheme, url, known] of CASES) {
  Deno.test(`transport options ${scheme}: an unknown key is a ConfigError naming it and the known ones`, async () => {
    const bad = { [known.slice(0, -1)]: 1 } as Record<string, unknown>;
    for (
      const open of [
        () => openTransport(url, bad),
        () => Agent.start({ id: "a", transport: url, transportOptions: bad }),
      ]
    ) {
      await assert.rejects(open, (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.match(e.message, new RegExp(`unknown ${scheme} transport option "${known.slice(0, -1)}"`));
        assert.match(e.message, new RegExp(`known: .*\\b${known}\\b`));
        return true;
      });
    }
    await assert.rejects(() => openTransport(url, [] as never), ConfigError);
  });
}

Deno.test("transport options: the known options of a scheme are accepted", async () => {
  const t = await openTransport("memory://options-ok", { maxQueueBytes: 1 << 20, publishTimeoutMs: 100 });
  await t.close();
});
