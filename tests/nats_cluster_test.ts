// A real 3-node nats-server cluster with JetStream (servers of this test, on free loopback ports, each with
// its own store under a temp dir): a stream with 3 replicas keeps every message while one node is SIGKILLed
// during a 10,000-message stream, and the agent reconnects to the survivors.
import assert from "node:assert/strict";
import { Agent } from "../mod.ts";
import { NatsTransport } from "../transports/nats.ts";
import { requireTool } from "./_env.ts";
import { type NatsServer, startNatsServer } from "./_nats.ts";
import { freePort } from "./_tls.ts";

/** Runs `count` jobs with at most `window` in flight. */
async function pump(count: number, window: number, job: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: window }, async () => {
    while (next < count) await job(next++);
  }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 30_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await sleep(10);
  }
};

async function startCluster(root: string): Promise<NatsServer[]> {
  const ports = [freePort(), freePort(), freePort()];
  const routes = [freePort(), freePort(), freePort()];
  const servers: NatsServer[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const dir = `${root}/n${i}`;
      await Deno.mkdir(dir);
      servers.push(
        await startNatsServer((port, d) =>
          [
            `server_name: n${i}`,
            `listen: 127.0.0.1:${port}`,
            `jetstream { store_dir: "${d}/js" }`,
            `cluster {`,
            `  name: spores`,
            `  listen: 127.0.0.1:${routes[i]}`,
            `  routes: [${routes.map((r) => `nats-route://127.0.0.1:${r}`).join(", ")}]`,
            `}`,
            "",
          ].join("\n"), { port: ports[i], dir, wait: true }),
      );
    }
  } catch (e) {
    for (const s of servers) await s.kill("SIGKILL");
    throw e;
  }
  return servers;
}

/** Connects once the cluster has elected a JetStream meta leader and can make an R3 stream. */
async function connectWhenReady(url: string, prefix: string): Promise<NatsTransport> {
  const end = Date.now() + 30_000;
  for (;;) {
    try {
      return await NatsTransport.connect(url, {
        prefix,
        replicas: 3,
        ackWaitMs: 3000,
        fetchExpiresMs: 1000,
        connectTimeoutMs: 3000,
        // A PubAck lost with the leader is retried after 1 s: the spore then arrives at most ~1 s of sends late,
        // well inside the receiver's replay window.
        pubAckTimeoutMs: 1000,
      });
    } catch (e) {
      if (Date.now() > end) throw e;
      await sleep(500);
    }
  }
}

Deno.test("nats cluster: SIGKILL of the stream leader (bob's node) during 10,000 messages; each handled exactly once", async () => {
  if (!(await requireTool("nats-server", ["/usr/sbin/nats-server", "--version"]))) return;
  const root = await Deno.makeTempDir({ prefix: "spores-nats-cluster-" });
  const servers = await startCluster(root);
  const url = `nats://${servers.map((s) => `127.0.0.1:${s.port}`).join(",")}`;
  const prefix = "cluster";
  let alice: NatsTransport | undefined;
  let bob: NatsTransport | undefined;
  let a: Agent | undefined;
  let b: Agent | undefined;
  try {
    alice = await connectWhenReady(url, prefix);
    const info = await alice.jsm.streams.info(alice.names.stream);
    assert.equal(info.config.num_replicas, 3);
    // Bob is given the URL of the stream leader's node only: it learns the others from the cluster.
    const leader = servers[Number(info.cluster!.leader!.slice(1))]!;
    bob = await connectWhenReady(leader.url, prefix);
    assert.equal(bob.connection.getServer(), `127.0.0.1:${leader.port}`);
    a = await Agent.start({ id: "alice", transport: alice });
    b = await Agent.start({ id: "bob", transport: bob, prefetch: 128 });
    const seen = new Map<number, number>();
    b.on("n", (m) => void seen.set(m.content as number, (seen.get(m.content as number) ?? 0) + 1));
    const sender = a;
    await sender.connect("bob");
    const N = 10_000;
    let slowest = 0;
    await pump(N, 16, async (i) => {
      // Kill the node that leads the stream and holds bob's connection.
      if (i === 3000) await leader.kill("SIGKILL");
      const t0 = performance.now();
      await sender.send("bob", { type: "n", content: i });
      slowest = Math.max(slowest, performance.now() - t0);
    });
    console.log(
      `leader killed: ${alice.publishRetries} publish retries, slowest send ${slowest.toFixed(0)} ms, ` +
        `bob reconnected ${bob.reconnections}×`,
    );
    try {
      await until(() => seen.size === N, 60_000, `all ${N} handled (${seen.size} so far)`);
    } catch (e) {
      const missing = [...Array(N).keys()].filter((i) => !seen.has(i));
      const c = await alice.jsm.consumers.info(alice.names.stream, "agent_bob");
      console.log(
        "DIAG missing",
        missing.slice(0, 20),
        JSON.stringify({
          delivered: c.delivered,
          ack_floor: c.ack_floor,
          num_ack_pending: c.num_ack_pending,
          num_pending: c.num_pending,
          num_redelivered: c.num_redelivered,
          cluster: c.cluster,
        }),
        "bob metrics",
        JSON.stringify(b.metrics()).slice(0, 600),
      );
      throw e;
    }
    await sleep(1500);
    assert.equal(seen.size, N);
    assert.ok([...seen.values()].every((c) => c === 1), "a message was handled twice");
    // Every one of the N spores was handled once (above). A refusal here is of another spore: reported, not
    // failed on.
    const refused = b.metrics().rejected;
    if (Object.keys(refused).length > 0) console.log(`bob refused other spores: ${JSON.stringify(refused)}`);
    assert.ok(bob.reconnections >= 1, "bob reconnected");
    const stored = await alice.jsm.streams.info(alice.names.stream, {
      subjects_filter: `${prefix}.agent.bob.n`,
    });
    assert.equal(stored.state.subjects?.[`${prefix}.agent.bob.n`], N, "one stored copy of each spore");
    assert.notEqual(bob.connection.getServer(), `127.0.0.1:${leader.port}`);
    const after = await bob.jsm.streams.info(bob.names.stream);
    assert.ok(after.cluster?.leader && after.cluster.leader !== info.cluster!.leader, "a new stream leader");
  } finally {
    await a?.close();
    await b?.close();
    await alice?.close();
    await bob?.close();
    for (const s of servers) await s.kill("SIGKILL");
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("nats: a server SIGKILLed and restarted keeps every stored message; the client reconnects by itself", async () => {
  if (!(await requireTool("nats-server", ["/usr/sbin/nats-server", "--version"]))) return;
  const config = (port: number, dir: string) =>
    `listen: 127.0.0.1:${port}\njetstream { store_dir: "${dir}/js" }\n`;
  let server = await startNatsServer(config);
  const { port, dir } = server;
  const t = await NatsTransport.connect(server.url, {
    prefix: "restart",
    ackWaitMs: 2000,
    fetchExpiresMs: 1000,
  });
  try {
    const first = await t.subscribe({ agent: "bob" }, (d) => d.ack());
    await first.close();
    const N = 500;
    for (let i = 0; i < N; i++) {
      await t.publish({ agent: "bob" }, new TextEncoder().encode(String(i)), { dedupId: `m${i}` });
    }
    await server.kill("SIGKILL");
    server = await startNatsServer(config, { port, dir });
    await until(() => t.reconnections >= 1, 20_000, "reconnection");
    const seen = new Map<string, number>();
    const sub = await t.subscribe({ agent: "bob" }, async (d) => {
      const k = new TextDecoder().decode(d.bytes);
      seen.set(k, (seen.get(k) ?? 0) + 1);
      await d.ack();
    });
    await until(() => seen.size === N, 20_000, `all ${N} delivered (${seen.size})`);
    await sleep(500);
    await sub.close();
    assert.ok([...seen.values()].every((n) => n === 1));
  } finally {
    await t.close();
    await server.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
