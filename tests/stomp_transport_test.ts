// The STOMP transport on the real RabbitMQ of this machine: the shared conformance suite over TCP (61613)
// and over WebSocket (Web-STOMP, 15674), binary bodies, ids that cannot escape their destination.
import assert from "node:assert/strict";
import {
  type Address,
  ConfigError,
  createCard,
  Identity,
  SporeError,
  type Transport,
  TransportError,
} from "../mod.ts";
import { createTransport, StompDestinations, StompTransport } from "../transports/stomp.ts";
import { cleanRabbit } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { freePort } from "./_tls.ts";
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
  name: "stomp (tcp, quorum queues)",
  available: () => requireBroker("RabbitMQ STOMP", 61613),
  open: () => createTransport(TCP, { prefix: `${prefix}-q`, queueType: "quorum" }),
  slackMs: 500,
});

transportConformance({
  name: "stomp (websocket)",
  available: () => requireBroker("RabbitMQ Web-STOMP", 15674),
  open: () => createTransport(WS, { prefix }),
  slackMs: 500,
});

const enc = (s: string) => new TextEncoder().encode(s);
const until = async (cond: () => boolean | Promise<boolean>, ms = 10_000, what = "condition") => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

/** Reads up to `count` deliveries of `agent`'s queue (acknowledging them) within `ms`. */
async function drain(t: Transport, from: Address, count: number, ms: number, member?: string) {
  const got: Uint8Array[] = [];
  const sub = await t.subscribe(from, async (d) => {
    got.push(d.bytes);
    await d.ack();
  }, { member });
  await until(() => got.length >= count, ms).catch(() => {});
  await sub.close();
  return got;
}

for (const [label, url, port] of [["tcp", TCP, 61613], ["websocket", WS, 15674]] as const) {
  Deno.test(`stomp (${label}): NUL bytes and a 1 MiB body arrive intact`, async () => {
    if (!(await requireBroker("RabbitMQ STOMP", port))) return;
    const t = await createTransport(url, { prefix });
    try {
      const agent = `bin-${crypto.randomUUID().slice(0, 8)}`;
      const nul = new Uint8Array([0, 0, 10, 0, 255, 0, 0]); // NUL bytes and a newline: a frame must not end here
      const big = crypto.getRandomValues(new Uint8Array(65_536));
      const mib = new Uint8Array(1 << 20);
      for (let i = 0; i < mib.length; i += 65_536) mib.set(big, i);
      mib[12345] = 0;
      await t.publish({ agent }, nul);
      await t.publish({ agent }, mib);
      await t.publish({ agent }, new Uint8Array(0));
      const got = await drain(t, { agent }, 3, 10_000);
      assert.equal(got.length, 3);
      assert.deepEqual(got[0], nul);
      assert.equal(got[1]!.length, mib.length);
      assert.deepEqual(got[1], mib);
      assert.equal(got[2]!.length, 0);
    } finally {
      await t.close();
    }
  });
}

Deno.test("stomp: ids that could leave their destination, bad URLs and bad options are ConfigErrors", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const t = await createTransport(TCP, { prefix });
  try {
    for (const agent of ["a/b", "../x", "a b", "", "x".repeat(129), "a\nb", "*", "#"]) {
      await assert.rejects(t.publish({ agent }, enc("x")), ConfigError, agent);
      await assert.rejects(t.subscribe({ agent }, (d) => d.ack()), ConfigError, agent);
    }
    await assert.rejects(t.publish({ channel: "c/../d" }, enc("x")), ConfigError);
    await assert.rejects(t.subscribe({ channel: "c" }, (d) => d.ack(), { member: "m/1" }), ConfigError);
    await assert.rejects(t.subscribe({ channel: "c" }, (d) => d.ack()), ConfigError); // no member
    await assert.rejects(t.publish({ agent: "ok" }, enc("x"), { priority: 10 }), ConfigError);
    await assert.rejects(t.publish({ agent: "ok" }, enc("x"), { dedupId: "a:b\nc" }), ConfigError);
    await assert.rejects(t.publish({ agent: "ok" }, new Uint8Array((4 << 20) + 1)), TransportError);
  } finally {
    await t.close();
  }
  const d = new StompDestinations("p");
  assert.equal(d.agentSend("bob").destination, "/queue/p.agent.bob");
  assert.equal(d.memberSubscription("ops", "carol").headers["x-queue-name"], "p.channel.ops.carol");
  const amqp = new StompDestinations("x", "amqp");
  assert.equal(amqp.agentSend("bob", "chat.v1").destination, "/exchange/x/agent.bob.chat_v1");
  assert.equal(amqp.agentSubscription("bob").destination, "/exchange/x/agent.bob.#");
  assert.throws(() => amqp.agentSend("bob", "a/b"), ConfigError);
  assert.throws(() => new StompDestinations("x", "other" as "amqp"), ConfigError);
  assert.throws(() => new StompDestinations("a/b"), ConfigError);
  assert.throws(
    () => new StompDestinations("x".repeat(64)).memberQueue("c".repeat(128), "m".repeat(128)),
    ConfigError,
  );
  await assert.rejects(createTransport("http://127.0.0.1:61613"), ConfigError);
  await assert.rejects(createTransport("stomp://"), ConfigError);
});

Deno.test("stomp: wrong credentials, an unknown virtual host and a closed port are refused with a TransportError", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const refused = (e: unknown) => {
    assert.ok(e instanceof TransportError);
    assert.doesNotMatch(e.message, /wrong/, "the password is not in the message");
    assert.match(String((e.cause as Error)?.message), /refused the connection/);
    return true;
  };
  for (
    const url of [
      "stomp://guest:wrong@127.0.0.1:61613",
      "stomp+ws://guest:wrong@127.0.0.1:15674/ws",
      "stomp://guest:guest@127.0.0.1:61613/no-such-vhost",
    ]
  ) await assert.rejects(createTransport(url, { connectTimeoutMs: 5000 }), refused, url);
  await assert.rejects(
    createTransport(`stomp://127.0.0.1:${freePort()}`, { connectTimeoutMs: 2000 }),
    TransportError,
  );
  // The default virtual host named explicitly works.
  const t = await createTransport("stomp://guest:guest@127.0.0.1:61613/%2F", { prefix });
  await t.close();
});

Deno.test("stomp: await using closes the transport and every connection it opened", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  let kept: StompTransport;
  {
    await using t = await StompTransport.connect(TCP, { prefix });
    kept = t;
    await t.subscribe({ agent: `dispose-${crypto.randomUUID().slice(0, 8)}` }, (d) => d.ack());
    assert.equal(t.localPorts.length, 2);
  }
  assert.equal(kept.localPorts.length, 0);
  await assert.rejects(kept.publish({ agent: "x" }, enc("x")), TransportError);
});

Deno.test("stomp: an expired message and a dead-lettered one go to the agent's dead-letter queue", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const t = await createTransport(TCP, { prefix }) as StompTransport;
  try {
    const agent = `dl-${crypto.randomUUID().slice(0, 8)}`;
    await drain(t, { agent }, 0, 50); // the queue exists, nobody consumes
    await t.publish({ agent }, enc("expires"), { ttlMs: 30 });
    await t.publish({ agent }, enc("poison"));
    await new Promise((r) => setTimeout(r, 200));
    const sub = await t.subscribe({ agent }, async (d) => {
      assert.equal(new TextDecoder().decode(d.bytes), "poison");
      await d.deadLetter!();
    });
    const dead: string[] = [];
    const deadSub = await t.subscribeRaw(
      `/queue/${t.destinations.deadQueue(agent)}`,
      { ...t.destinations.dead(agent).headers, ack: "client-individual" },
      async (d) => {
        dead.push(new TextDecoder().decode(d.bytes));
        await d.ack();
      },
    );
    await until(() => dead.length >= 2, 10_000, "two dead letters");
    await sub.close();
    await deadSub.close();
    assert.deepEqual(dead.sort(), ["expires", "poison"]);
    assert.equal((await drain(t, { agent }, 1, 300)).length, 0);
  } finally {
    await t.close();
  }
});

Deno.test("stomp: the directory keeps the last card, verifies what it reads, and announces new cards", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const a = await createTransport(TCP, { prefix }) as StompTransport;
  const b = await createTransport(WS, { prefix }) as StompTransport;
  try {
    const id = `card-${crypto.randomUUID().slice(0, 8)}`;
    const seen: string[] = [];
    b.directory.watch((card) => void seen.push(card.fingerprint));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await a.directory.lookup(id), undefined);
    const first = await Identity.generate();
    const second = await Identity.generate();
    await a.directory.publish(await createCard(id, first));
    await a.directory.publish(await createCard(id, second));
    const card = await b.directory.lookup(id);
    assert.equal(card?.fingerprint, second.fingerprint, "the last card replaces the first");
    assert.equal(
      (await a.directory.lookup(id))?.fingerprint,
      second.fingerprint,
      "a read leaves it in place",
    );
    await until(() => seen.length >= 2, 5000, "announcements");
    assert.deepEqual(seen, [first.fingerprint, second.fingerprint]);
    // A forged card written straight into the queue (as a broker could) is refused on read.
    const forged = await createCard(id, second);
    forged[forged.length - 1]! ^= 1;
    const dest = a.destinations.card(id);
    await a.send(dest.destination, forged, { ...dest.headers, persistent: "true" });
    await assert.rejects(b.directory.lookup(id), SporeError);
    await assert.rejects(a.directory.publish(forged), SporeError);
  } finally {
    await a.close();
    await b.close();
  }
});

/** A loopback "broker" that answers CONNECT and then runs `after` on the socket. */
function fakeBroker(
  after: (conn: Deno.Conn) => Promise<void>,
): { port: number; done: Promise<void>; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\0")) {
      const n = await conn.read(buf);
      if (n === null) return;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    await conn.write(new TextEncoder().encode("CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0"));
    try {
      await after(conn);
    } finally {
      try {
        conn.close();
      } catch { /* closed by the client */ }
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, done, close: () => listener.close() };
}

Deno.test("stomp: a broker that sends a frame without end is cut off at the size limit", async () => {
  let sent = 0;
  const broker = fakeBroker(async (conn) => {
    await conn.write(new TextEncoder().encode("MESSAGE\ndestination:/queue/x\ncontent-length:999999999\n\n"));
    const junk = new Uint8Array(16_384);
    try {
      while (sent < 64 << 20) sent += await conn.write(junk);
    } catch {
      // the client closed the connection
    }
  });
  const t = await createTransport(`stomp://127.0.0.1:${broker.port}`, {
    maxMessageBytes: 100_000,
    heartbeatMs: 0,
    maxBackoffMs: 60_000,
  });
  try {
    await broker.done;
    assert.ok(sent < 4 << 20, `the client read ${sent} bytes of an endless frame`);
  } finally {
    await t.close();
    broker.close();
  }
});

Deno.test("stomp: heartbeats find a broker that went silent; the transport reconnects and publishes again", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  // A loopback relay to the broker that can be frozen: it keeps the TCP connection open but forwards nothing.
  let frozen = false;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const relay = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port: 61613 });
      conns.push(client, upstream);
      const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
        const buf = new Uint8Array(65_536);
        try {
          for (;;) {
            const n = await from.read(buf);
            if (n === null) break;
            if (!frozen) await to.write(buf.subarray(0, n));
          }
        } catch { /* closed */ }
        try {
          to.close();
        } catch { /* closed */ }
      };
      void pipe(client, upstream);
      void pipe(upstream, client);
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  const t = await createTransport(`stomp://guest:guest@127.0.0.1:${port}`, {
    prefix,
    heartbeatMs: 200,
    connectTimeoutMs: 1000, // an attempt made while the relay is frozen gives up soon
    publishTimeoutMs: 10_000,
  }) as StompTransport;
  try {
    const agent = `hb-${crypto.randomUUID().slice(0, 8)}`;
    await t.publish({ agent }, enc("before"));
    frozen = true;
    const before = t.connections;
    // RabbitMQ raises the heartbeat to 1 s; the client gives up after two silent periods.
    await new Promise((r) => setTimeout(r, 3500));
    frozen = false;
    await until(() => t.connections > before, 10_000, "a reconnection after the silence");
    await t.publish({ agent }, enc("after"));
    const got = await drain(t, { agent }, 2, 5000);
    assert.deepEqual(got.map((b) => new TextDecoder().decode(b)).sort(), ["after", "before"]);
  } finally {
    await t.close();
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await relay.catch(() => {});
  }
});

Deno.test("stomp: queueType quorum declares quorum queues, and the broker's delivery count is the redelivery count", async () => {
  if (!(await requireBroker("RabbitMQ STOMP", 61613))) return;
  const p = `${prefix}-qt`;
  const t = await createTransport(TCP, { prefix: p, queueType: "quorum" });
  try {
    assert.equal(t.capabilities.priority, false);
    const counts: number[] = [];
    const sub = await t.subscribe({ agent: "q" }, async (d) => {
      counts.push(d.redeliveries);
      await (counts.length < 3 ? d.nack() : d.ack());
    });
    await t.publish({ agent: "q" }, enc("x"));
    await until(() => counts.length === 3, 10_000, "three deliveries");
    await sub.close();
    assert.deepEqual(counts, [0, 1, 2]);
    const out = await new Deno.Command("rabbitmqctl", {
      args: ["list_queues", "-q", "--no-table-headers", "name", "type"],
      stdout: "piped",
    }).output();
    const types = new Map(
      new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split("\t") as [string, string]),
    );
    assert.equal(types.get(`${p}.agent.q`), "quorum");
    assert.equal(types.get(`${p}.dead.q`), "quorum");
  } finally {
    await t.close();
  }
});

Deno.test("stomp: remove the tests' queues", async () => {
  if (!(await requireBroker("RabbitMQ", 5672))) return;
  await cleanRabbit(prefix);
});
