// MQTT against Mosquitto processes this test starts on free loopback ports, with configurations the shared
// broker does not have: TLS and mutual TLS with a generated CA (a wrong CA and a missing client certificate
// refused), and small queue limits (max_queued_messages), to measure and surface what an away agent loses.
import assert from "node:assert/strict";
import { Agent, TransportError } from "../mod.ts";
import { type MqttDropped, MqttTransport } from "../transports/mqtt.ts";
import { requireTool } from "./_env.ts";
import { freePort, makePki, type TestPki, waitPort } from "./_tls.ts";

const MOSQUITTO = "/usr/sbin/mosquitto";

/** A Mosquitto of this test's own, on free ports, with `config` (listeners are added from `ports`). */
async function mosquitto(config: (ports: number[]) => string, listeners = 1) {
  const dir = await Deno.makeTempDir({ prefix: "spores-mosquitto-" });
  const ports = Array.from({ length: listeners }, () => freePort());
  await Deno.writeTextFile(`${dir}/mosquitto.conf`, `${config(ports)}\npersistence false\nlog_dest none\n`);
  const child = new Deno.Command(MOSQUITTO, {
    args: ["-c", `${dir}/mosquitto.conf`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    for (const p of ports) await waitPort(p);
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    const { stderr } = await child.output();
    throw new Error(`mosquitto did not start: ${new TextDecoder().decode(stderr)}`, { cause: e });
  }
  return {
    ports,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.output();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const tools = () => requireTool("mosquitto", ["test", "-x", MOSQUITTO]);

/**
 * Copies the broker's PEM files next to its configuration, readable by the user Mosquitto runs as (started
 * as root, it drops to the `mosquitto` user before it reads them).
 */
async function brokerPem(pki: TestPki): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "spores-mosquitto-pem-" });
  const copy = async (from: string, name: string) => {
    await Deno.copyFile(from, `${dir}/${name}`);
    await Deno.chmod(`${dir}/${name}`, 0o644);
    return `${dir}/${name}`;
  };
  await Deno.chmod(dir, 0o755);
  return {
    ...pki,
    dir,
    caFile: await copy(pki.caFile, "ca.crt"),
    serverCert: await copy(pki.serverCert, "server.crt"),
    serverKey: await copy(pki.serverKey, "server.key"),
  };
}

function tlsConfig(pki: TestPki, [tls, mtls]: number[]): string {
  return [
    "per_listener_settings false",
    "allow_anonymous true",
    `listener ${tls} 127.0.0.1`,
    `cafile ${pki.caFile}`,
    `certfile ${pki.serverCert}`,
    `keyfile ${pki.serverKey}`,
    `listener ${mtls} 127.0.0.1`,
    `cafile ${pki.caFile}`,
    `certfile ${pki.serverCert}`,
    `keyfile ${pki.serverKey}`,
    "require_certificate true",
  ].join("\n");
}

Deno.test("mqtt: TLS and mutual TLS to a Mosquitto with a generated CA; wrong CA and missing client certificate refused", async () => {
  if (!(await tools()) || !(await requireTool("openssl", ["openssl", "version"]))) return;
  const pki = await makePki();
  const pem = await brokerPem(pki);
  const broker = await mosquitto((ports) => tlsConfig(pem, ports), 2);
  const [tlsPort, mtlsPort] = broker.ports;
  const open: MqttTransport[] = [];
  try {
    // Server-authenticated TLS: agents talk end to end over it.
    const transportOptions = { prefix: "tls", tls: { ca: pki.ca }, connectTimeoutMs: 5000 };
    const url = `mqtts://127.0.0.1:${tlsPort}`;
    await using alice = await Agent.start({ id: "alice", transport: url, transportOptions });
    await using bob = await Agent.start({ id: "bob", transport: url, transportOptions });
    const got = Promise.withResolvers<unknown>();
    bob.on("chat", (m) => got.resolve(m.content));
    await alice.connect("bob");
    await alice.send("bob", { type: "chat", content: "over TLS" });
    assert.equal(await got.promise, "over TLS");

    // Mutual TLS: a client certificate signed by the CA gets in.
    const mtls = `mqtts://127.0.0.1:${mtlsPort}`;
    const client = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
    const m = await MqttTransport.connect(mtls, { prefix: "mtls", tls: client, connectTimeoutMs: 5000 });
    open.push(m);
    const delivered = Promise.withResolvers<number>();
    const sub = await m.subscribe({ agent: "carol" }, async (d) => {
      delivered.resolve(d.bytes.length);
      await d.ack();
    });
    await m.publish({ agent: "carol" }, new Uint8Array(1000));
    assert.equal(await delivered.promise, 1000);
    await sub.close();

    // Refused: a server certificate from another CA; no client certificate where one is required; a client
    // certificate the broker's CA did not sign.
    await assert.rejects(
      MqttTransport.connect(url, { tls: { ca: pki.otherCa }, connectTimeoutMs: 3000 }),
      TransportError,
    );
    await assert.rejects(MqttTransport.connect(url, { connectTimeoutMs: 3000 }), TransportError);
    await assert.rejects(
      MqttTransport.connect(mtls, { tls: { ca: pki.ca }, connectTimeoutMs: 3000 }),
      TransportError,
    );
    const strangerPki = await makePki();
    try {
      await assert.rejects(
        MqttTransport.connect(mtls, {
          tls: { ca: pki.ca, cert: strangerPki.clientCert, key: strangerPki.clientKey },
          connectTimeoutMs: 3000,
        }),
        TransportError,
      );
    } finally {
      await Deno.remove(strangerPki.dir, { recursive: true });
    }
    // Plain MQTT to a TLS listener does not connect either.
    await assert.rejects(
      MqttTransport.connect(`mqtt://127.0.0.1:${tlsPort}`, { connectTimeoutMs: 3000 }),
      TransportError,
    );
  } finally {
    for (const t of open) await t.close();
    await broker.stop();
    await Deno.remove(pki.dir, { recursive: true });
    await Deno.remove(pem.dir, { recursive: true });
  }
});

Deno.test("mqtt: past max_queued_messages the broker drops an away agent's messages, and the transport says so", async () => {
  if (!(await tools())) return;
  const LIMIT = 10;
  const SENT = 50;
  const broker = await mosquitto(([p]) =>
    [`listener ${p} 127.0.0.1`, "allow_anonymous true", `max_queued_messages ${LIMIT}`, "sys_interval 1"]
      .join(
        "\n",
      )
  );
  const url = `mqtt://127.0.0.1:${broker.ports[0]}`;
  const t = await MqttTransport.connect(url, { prefix: "limits" });
  try {
    const events: MqttDropped[] = [];
    t.addEventListener("dropped", (e) => events.push((e as CustomEvent<MqttDropped>).detail));
    await (await t.subscribe({ agent: "away" }, (d) => d.ack())).close(); // the session exists; the agent leaves
    for (let i = 0; i < SENT; i++) await t.publish({ agent: "away" }, new Uint8Array([i]));
    const end = Date.now() + 5000;
    while (t.stats.brokerDropped < SENT - LIMIT && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const got: number[] = [];
    const sub = await t.subscribe({ agent: "away" }, async (d) => {
      got.push(d.bytes[0]!);
      await d.ack();
    });
    await new Promise((r) => setTimeout(r, 500));
    await sub.close();
    // The first LIMIT were kept (in order); the rest were dropped, and reported.
    assert.deepEqual(got, Array.from({ length: LIMIT }, (_, i) => i));
    assert.equal(t.stats.brokerDropped, SENT - LIMIT);
    assert.equal(events.reduce((n, e) => n + e.dropped, 0), SENT - LIMIT);
  } finally {
    await t.close();
    await broker.stop();
  }
});
