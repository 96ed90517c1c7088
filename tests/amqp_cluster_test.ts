// Agents on a real three-node RabbitMQ cluster owned by the test (own node names, ports, cookie and data under a
// temp dir): quorum queues replicated over the nodes, a URL listing every node, and one node SIGKILLed during a
// 10,000-message stream with publisher confirms.
import assert from "node:assert/strict";
import { Agent, type Message, TransportError } from "../mod.ts";
import type { AmqpTransport } from "../transports/amqp.ts";
import { startRabbitCluster } from "./_rabbit_cluster.ts";
import { requireTool } from "./_env.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name:
    "amqp cluster: quorum queues survive a node SIGKILLed mid-stream; nothing confirmed is lost or doubled",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    if (!(await requireTool("RabbitMQ server", ["test", "-x", "/usr/sbin/rabbitmq-server"]))) return;
    const cluster = await startRabbitCluster();
    try {
      const transportOptions = {
        exchange: "spc",
        queueType: "quorum",
        maxBackoffMs: 500,
        publishTimeoutMs: 60_000,
      };
      await using alice = await Agent.start({ id: "alice", transport: cluster.url, transportOptions });
      await using bob = await Agent.start({ id: "bob", transport: cluster.url, transportOptions });
      assert.equal(bob.transport.capabilities.priority, false, "quorum queues have no priorities here");

      // bob's queue is a quorum queue with a member on each of the three nodes.
      const queues = await cluster.ctl(
        cluster.nodes[1]!,
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "type",
      );
      assert.match(queues, /spc\.agent\.bob\s+quorum/);
      const status = await cluster.ctl(
        cluster.nodes[1]!,
        "eval",
        'rabbit_quorum_queue:status(<<"/">>, <<"spc.agent.bob">>).',
      );
      for (const node of cluster.nodes) assert.ok(status.includes(node.name), `a member on ${node.name}`);

      const handled = new Map<number, number>();
      bob.on(
        "n",
        (m: Message) => void handled.set(m.content as number, (handled.get(m.content as number) ?? 0) + 1),
      );
      await alice.connect("bob");
      const count = 10_000;
      const confirmed = new Set<number>();
      let failures = 0;
      const outage = { from: 0, to: 0 }; // first failed publish to the first confirmed one after it
      let next = 0;
      const connectionsBefore = (alice.transport as AmqpTransport).connections;
      const started = Date.now();
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < count) {
          const i = next++;
          if (i === 3000) void cluster.kill(cluster.nodes[0]!); // the node both agents are connected to
          // Retrying with the same spore id is safe: the receiver hands one id to its handler once.
          const id = crypto.randomUUID().replaceAll("-", "");
          for (const giveUp = Date.now() + 90_000;;) {
            try {
              await alice.send("bob", { type: "n", content: i, id });
              confirmed.add(i);
              if (outage.from > 0 && outage.to === 0) outage.to = Date.now();
              break;
            } catch (e) {
              if (!(e instanceof TransportError) || Date.now() > giveUp) throw e;
              failures++;
              if (outage.from === 0) outage.from = Date.now();
              await sleep(100);
            }
          }
        }
      }));
      const sendMs = Date.now() - started;
      const end = Date.now() + 60_000;
      while ([...confirmed].some((i) => !handled.has(i)) && Date.now() < end) await sleep(100);
      await sleep(500);
      const lost = [...confirmed].filter((i) => !handled.has(i)).length;
      const doubled = [...handled.values()].filter((n) => n > 1).length;
      console.log(
        `  ${
          JSON.stringify({
            count,
            confirmed: confirmed.size,
            lost,
            doubled,
            failures,
            sendMs,
            outageMs: outage.to - outage.from,
          })
        }`,
      );
      assert.equal(confirmed.size, count);
      assert.equal(lost, 0, "no confirmed message lost");
      assert.equal(doubled, 0, "no message reached a handler twice");
      assert.ok((alice.transport as AmqpTransport).connections > connectionsBefore, "alice failed over");
      assert.ok((bob.transport as AmqpTransport).connections > 1, "bob failed over");
    } finally {
      await cluster.stop();
    }
  },
});
