// Agents on RabbitMQ's STOMP adapter: end to end over TCP and WebSocket, bounded redelivery into the dead-letter
// queue, the broker closing the agents' connections during 10,000 messages, a receiver SIGKILLed mid-stream,
// 1 MiB spores, TLS and mutual TLS through a loopback terminator.
import assert from "node:assert/strict";
import { Agent, ConfigError, FileDirectory, Identity, type Message, TransportError } from "../mod.ts";
import { createTransport, type StompTransport } from "../transports/stomp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker, requireTool } from "./_env.ts";
import { makePki, tlsProxy } from "./_tls.ts";
import { spawnDeno } from "./_process.ts";

const TCP = "stomp://guest:guest@127.0.0.1:61613";
const WS = "stomp+ws://guest:guest@127.0.0.1:15674/ws";
const prefix = `spores-stomp-${crypto.randomUUID().slice(0, 8)}`;
const transportOptions = { prefix };
const FAST = { logN: 10, r: 8, p: 1 };
const until = async (cond: () => boolean, ms = 60_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

async function rabbitmqctl(...args: string[]): Promise<string> {
  const out = await new Deno.Command("rabbitmqctl", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`rabbitmqctl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/**
 * Closes, from the broker, the STOMP connections of `transports` (found by their local ports), and no other.
 * `rabbitmqctl close_connection` does not see STOMP connections in RabbitMQ 3.10, so this asks the STOMP
 * adapter itself (`rabbit_stomp_reader:close_connection/2`, what the management UI's "force close" calls).
 */
async function closeConnectionsOf(...transports: StompTransport[]): Promise<number> {
  const ports = transports.flatMap((t) => t.localPorts);
  if (ports.length === 0) return 0;
  const out = await rabbitmqctl(
    "eval",
    `Ports = [${ports.join(",")}], length([rabbit_stomp_reader:close_connection(P, "spores test") || ` +
      `P <- rabbit_stomp:list(), ` +
      `lists:member(proplists:get_value(peer_port, rabbit_stomp_reader:info(P, [peer_port])), Ports)]).`,
  );
  return Number(out.trim());
}

Deno.test("stomp: agents by URL talk end to end across TCP and WebSocket; broadcast reaches a member that was away", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  await using alice = await Agent.start({ id: "alice", transport: TCP, transportOptions });
  await using bob = await Agent.start({ id: "bob", transport: WS, transportOptions });
  assert.equal(alice.transport.name, "stomp");
  const got = Promise.withResolvers<Message>();
  bob.on("chat", (m) => got.resolve(m));
  await alice.connect("bob");
  await alice.send("bob", {
    type: "chat",
    content: { text: "over stomp", bytes: new Uint8Array([0, 1, 0]) },
    priority: 7,
  });
  const m = await got.promise;
  assert.deepEqual(m.content, { text: "over stomp", bytes: new Uint8Array([0, 1, 0]) });
  assert.equal(m.kind, "session");
  assert.equal(m.priority, 7);

  // carol joins #ops, goes away; alice broadcasts; carol comes back and catches up.
  const carolIdentity = await Identity.generate({ extractable: true });
  const carol = await Agent.start({ id: "carol", transport: TCP, transportOptions, identity: carolIdentity });
  const ops = { members: ["alice", "bob", "carol"], posters: ["alice"] };
  await carol.join("ops", ops);
  await bob.join("ops", ops);
  await alice.join("ops", ops);
  const bobHeard = Promise.withResolvers<Message>();
  bob.on("alert", (m) => bobHeard.resolve(m));
  await carol.close();
  await alice.broadcast("ops", { type: "alert", content: "disk full" });
  assert.equal((await bobHeard.promise).content, "disk full");
  await using back = await Agent.start({
    id: "carol",
    transport: WS,
    transportOptions,
    identity: carolIdentity,
  });
  const carolHeard = Promise.withResolvers<Message>();
  back.on("alert", (m) => carolHeard.resolve(m));
  await back.join("ops", ops);
  const heard = await carolHeard.promise;
  assert.equal(heard.content, "disk full");
  assert.equal(heard.kind, "broadcast");
});

Deno.test("stomp: a failing handler is redelivered maxRedeliveries times, then dead-lettered", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  await using alice = await Agent.start({ id: "dl-alice", transport: TCP, transportOptions });
  await using bob = await Agent.start({ id: "dl-bob", transport: TCP, transportOptions, maxRedeliveries: 2 });
  let calls = 0;
  bob.on("fail", () => {
    calls++;
    throw new Error("handler failed");
  });
  await alice.send("dl-bob", { type: "fail", content: 1 });
  await until(() => bob.metrics().deadLetters === 1, 20_000, "a dead letter");
  assert.equal(calls, 3);
  assert.equal(bob.metrics().redeliveries, 2);
  const raw = await createTransport(TCP, transportOptions) as StompTransport;
  try {
    const dead: Uint8Array[] = [];
    const d = raw.destinations.dead("dl-bob");
    const sub = await raw.subscribeRaw(
      d.destination,
      { ...d.headers, ack: "client-individual" },
      async (m) => {
        dead.push(m.bytes);
        await m.ack();
      },
    );
    await until(() => dead.length === 1, 10_000, "the dead letter in its queue");
    await sub.close();
  } finally {
    await raw.close();
  }
});

Deno.test("stomp: the broker closes the agents' connections during 10,000 messages; each is handled exactly once", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const alice = await Agent.start({ id: "s-alice", transport: TCP, transportOptions });
  const bob = await Agent.start({ id: "s-bob", transport: TCP, transportOptions, prefetch: 256 });
  const handled = new Map<string, number>();
  bob.on("n", (m) => void handled.set(m.id, (handled.get(m.id) ?? 0) + 1));
  const confirmed = new Set<string>();
  let failures = 0;
  let closed = 0;
  try {
    await alice.connect("s-bob");
    const N = 10_000;
    const closer = (async () => {
      for (const at of [2500, 6000]) {
        await until(() => confirmed.size >= at, 120_000, "progress");
        closed += await closeConnectionsOf(
          alice.transport as StompTransport,
          bob.transport as StompTransport,
        );
      }
    })();
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < N) {
        const i = next++;
        for (;;) {
          try {
            confirmed.add(await alice.send("s-bob", { type: "n", content: i }));
            break;
          } catch (e) {
            if (!(e instanceof TransportError)) throw e;
            failures++;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
    }));
    await closer;
    await until(
      () => [...confirmed].every((id) => handled.has(id)),
      120_000,
      "every confirmed spore handled",
    );
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(closed >= 4, `the broker closed ${closed} connections`);
    assert.ok((bob.transport as StompTransport).connections >= 3, "bob reconnected");
    for (const [id, n] of handled) assert.equal(n, 1, `spore ${id} handled ${n} times`);
    assert.equal(confirmed.size, N);
    console.log(
      `(${closed} connections closed; ${failures} publishes failed during the outages and were retried)`,
    );
  } finally {
    await alice.close();
    await bob.close();
  }
});

Deno.test("stomp: a receiver SIGKILLed mid-stream and restarted loses nothing", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const identity = await Identity.generate({ extractable: true });
  const passphrase = crypto.randomUUID();
  const file = await Deno.makeTempFile({ suffix: ".key" });
  await Deno.writeFile(file, await identity.seal(passphrase, FAST));
  const spawn = () =>
    spawnDeno(
      new URL("./fixtures/stomp_bob.ts", import.meta.url),
      ["--allow-net=127.0.0.1:61613", `--allow-read=${file},.`],
      [file, passphrase, prefix],
      { cwd: new URL("../", import.meta.url) },
    );
  const alice = await Agent.start({ id: "k-alice", transport: TCP, transportOptions });
  let first = spawn();
  let second: ReturnType<typeof spawn> | undefined;
  try {
    await until(() => first.lines.includes("ready"), 30_000, "bob started");
    const N = 600;
    const sent = async () => {
      for (let i = 0; i < N; i++) await alice.send("bob", { type: "n", content: i }); // sealed: no session to lose
    };
    const sending = sent();
    await until(() => first.lines.length > 150, 60_000, "bob handling");
    first.child.kill("SIGKILL");
    await first.child.status;
    await first.reading.catch(() => {});
    const handledBefore = first.lines.filter((l) => l.startsWith("got ")).length;
    await sending;
    second = spawn();
    const all = () => new Set([...first.lines, ...second!.lines].filter((l) => l.startsWith("got ")));
    await until(() => all().size === N, 60_000, "every message handled by one of the two processes");
    assert.ok(handledBefore < N, "the kill happened mid-stream");
    console.log(`(killed after ${handledBefore}; the restarted receiver handled ${second.lines.length - 1})`);
  } finally {
    for (const p of [first, second]) {
      try {
        p?.child.kill("SIGKILL");
      } catch { /* already gone */ }
      await p?.reading.catch(() => {});
    }
    first = undefined as never;
    await alice.close();
    await Deno.remove(file);
  }
});

Deno.test("stomp: 1 MiB spores over TCP and WebSocket arrive intact", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  await using alice = await Agent.start({ id: "big-alice", transport: TCP, transportOptions });
  await using bob = await Agent.start({ id: "big-bob", transport: WS, transportOptions });
  const content = new Uint8Array((1 << 20) - 64);
  for (let i = 0; i < content.length; i += 65_536) crypto.getRandomValues(content.subarray(i, i + 65_536));
  content.fill(0, 1000, 2000); // a run of NUL bytes
  const got: Message[] = [];
  bob.on("big", (m) => void got.push(m));
  await alice.send("big-bob", { type: "big", content }); // sealed
  await alice.connect("big-bob");
  await alice.send("big-bob", { type: "big", content }); // in the session
  await until(() => got.length === 2, 30_000, "two 1 MiB spores");
  for (const m of got) assert.deepEqual(m.content, content);
});

Deno.test("stomp over TLS and mutual TLS; a wrong CA or a missing client certificate is refused", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  if (!(await requireTool("openssl", ["openssl", "version"]))) return;
  const pki = await makePki();
  const open = await tlsProxy(pki, 61613, false);
  const mutual = await tlsProxy(pki, 61613, true);
  const webTls = await tlsProxy(pki, 15674, true);
  try {
    const url = `stomp+ssl://guest:guest@127.0.0.1:${open.port}`;
    await using alice = await Agent.start({
      id: "tls-alice",
      transport: url,
      transportOptions: { prefix, tls: { ca: pki.ca } },
    });
    const mtlsUrl = `stomp+ssl://guest:guest@127.0.0.1:${mutual.port}`;
    await using bob = await Agent.start({
      id: "tls-bob",
      transport: mtlsUrl,
      transportOptions: { prefix, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } },
    });
    const got = Promise.withResolvers<Message>();
    bob.on("t", (m) => got.resolve(m));
    await alice.send("tls-bob", { type: "t", content: "over stomp+ssl" });
    assert.equal((await got.promise).content, "over stomp+ssl");
    await assert.rejects(
      createTransport(url, { prefix, tls: { ca: pki.otherCa }, connectTimeoutMs: 3000 }),
      TransportError,
    );
    await assert.rejects(createTransport(url, { prefix, connectTimeoutMs: 3000 }), TransportError); // system roots
    await assert.rejects(
      createTransport(mtlsUrl, { prefix, tls: { ca: pki.ca }, connectTimeoutMs: 3000 }),
      TransportError,
    );
    await assert.rejects(
      createTransport(url, { prefix, tls: { ca: pki.ca, servername: "other" } }),
      ConfigError,
    );
    // Web-STOMP over TLS with a client certificate (stomp+wss://), and without one refused.
    const wssUrl = `stomp+wss://guest:guest@127.0.0.1:${webTls.port}/ws`;
    await using carol = await Agent.start({
      id: "tls-carol",
      transport: wssUrl,
      transportOptions: { prefix, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } },
    });
    const toCarol = Promise.withResolvers<Message>();
    carol.on("t", (m) => toCarol.resolve(m));
    await alice.send("tls-carol", { type: "t", content: "over stomp+wss" });
    assert.equal((await toCarol.promise).content, "over stomp+wss");
    await assert.rejects(
      createTransport(wssUrl, { prefix, tls: { ca: pki.ca }, connectTimeoutMs: 3000 }),
      TransportError,
    );
    await assert.rejects(
      createTransport(wssUrl, { prefix, tls: { ca: pki.otherCa, cert: pki.clientCert, key: pki.clientKey } }),
      TransportError,
    );
  } finally {
    await open.close();
    await mutual.close();
    await webTls.close();
    await Deno.remove(pki.dir, { recursive: true });
  }
});

Deno.test('stomp and amqp agents on one RabbitMQ talk to each other (the "amqp" topology)', async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const exchange = `${prefix}-x`;
  // One directory for both sides (see transports/stomp/destinations.ts for why they cannot share card queues).
  const file = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.remove(file);
  const directory = new FileDirectory(file);
  // The AMQP side declares the exchanges; STOMP cannot.
  await using alice = await Agent.start({
    id: "ix-alice",
    transport: "amqp://guest:guest@127.0.0.1:5672",
    transportOptions: { exchange },
    directory,
  });
  await using bob = await Agent.start({
    id: "ix-bob",
    transport: TCP,
    transportOptions: { prefix: exchange, topology: "amqp" },
    directory,
  });
  await using carol = await Agent.start({
    id: "ix-carol",
    transport: WS,
    transportOptions: { prefix: exchange, topology: "amqp" },
    directory,
  });
  const toBob = Promise.withResolvers<Message>();
  const toAlice = Promise.withResolvers<Message>();
  bob.on("chat", (m) => toBob.resolve(m));
  alice.on("chat", (m) => toAlice.resolve(m));
  await alice.connect("ix-bob"); // the handshake crosses both ways
  await alice.send("ix-bob", { type: "chat", content: "amqp to stomp", priority: 8 });
  const m = await toBob.promise;
  assert.equal(m.content, "amqp to stomp");
  assert.equal(m.priority, 8);
  await bob.send("ix-alice", { type: "chat", content: "stomp to amqp" });
  assert.equal((await toAlice.promise).content, "stomp to amqp");
  // A broadcast from AMQP reaches STOMP members, and one from STOMP reaches AMQP members.
  const ix = { members: ["ix-alice", "ix-bob", "ix-carol"], posters: ["ix-alice", "ix-bob"] };
  for (const a of [alice, bob, carol]) await a.join("ix", ix);
  const heard = { alice: [] as unknown[], carol: [] as unknown[] };
  alice.on("news", (m) => void heard.alice.push(m.content));
  carol.on("news", (m) => void heard.carol.push(m.content));
  await alice.broadcast("ix", { type: "news", content: "from amqp" });
  await bob.broadcast("ix", { type: "news", content: "from stomp" });
  await until(() => heard.carol.length === 2 && heard.alice.length === 2, 20_000, "broadcasts");
  assert.deepEqual(heard.carol.sort(), ["from amqp", "from stomp"]);
  assert.deepEqual(heard.alice.sort(), ["from amqp", "from stomp"]); // a member hears its own broadcast too
  await Deno.remove(file);
});

Deno.test("stomp: examples/stomp_agents.ts runs with the permissions its header states", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--quiet",
        "--allow-net=127.0.0.1:61613,127.0.0.1:15674",
        "--allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE",
        "--allow-read=.",
        "examples/stomp_agents.ts",
      ],
      cwd: new URL("../", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const text = new TextDecoder().decode(out.stdout);
    assert.match(text, /worker {2}← job \{"task":"page on-call"\} priority 9 \(session\)/);
    assert.match(text, /auditor ← #audit/);
  } finally {
    await cleanRabbit("spores-example-stomp");
  }
});

Deno.test("stomp: the directory announces cards, also after the broker closed the watcher's connections", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const watcher = await createTransport(TCP, transportOptions) as StompTransport;
  const publisher = await createTransport(TCP, transportOptions);
  try {
    const seen: string[] = [];
    watcher.directory.watch((card) => void seen.push(card.id));
    await until(() => watcher.localPorts.length >= 2, 5000, "the watching connection");
    const first = await Agent.start({ id: "watched-1", transport: publisher });
    await until(() => seen.includes("watched-1"), 10_000, "first announcement");
    const before = watcher.connections;
    assert.ok((await closeConnectionsOf(watcher)) >= 2);
    await until(() => watcher.connections >= before + 2, 20_000, "reconnection");
    const second = await Agent.start({ id: "watched-2", transport: publisher });
    await until(() => seen.includes("watched-2"), 20_000, "announcement after reconnecting");
    assert.equal((await watcher.directory.lookup("watched-1"))?.fingerprint, first.identity.fingerprint);
    await first.close();
    await second.close();
  } finally {
    await watcher.close();
    await publisher.close();
  }
});

Deno.test("stomp: remove the tests' queues", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  await cleanRabbit(prefix); // the AMQP exchanges too
});
