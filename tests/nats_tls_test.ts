// NATS over TLS and mutual TLS, with user/password and token authentication from the URL, against
// nats-server processes of this test (certificates from tests/_tls.ts).
import assert from "node:assert/strict";
import { TransportError } from "../mod.ts";
import { NatsTransport } from "../transports/nats.ts";
import { requireTool } from "./_env.ts";
import { startNatsServer } from "./_nats.ts";
import { makePki } from "./_tls.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("nats over TLS and mutual TLS; user/password and token from the URL; wrong ones are refused", async () => {
  if (!(await requireTool("nats-server", ["/usr/sbin/nats-server", "--version"]))) return;
  if (!(await requireTool("openssl", ["openssl", "version"]))) return;
  const pki = await makePki();
  const tls = (verify: boolean) =>
    `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}", ca_file: "${pki.caFile}", verify: ${verify}, timeout: 3 }`;
  const mutual = await startNatsServer((port, dir) =>
    [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: "${dir}/js" }`,
      tls(true),
      `authorization { user: "app", password: "s3cr:et" }`,
      "",
    ].join("\n")
  );
  const token = await startNatsServer((port, dir) =>
    [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: "${dir}/js" }`,
      tls(false),
      `authorization { token: "t0ken" }`,
      "",
    ].join("\n")
  );
  const open = (url: string, t: { ca?: string; cert?: string; key?: string }) =>
    NatsTransport.connect(url, { prefix: "tls", tls: t, connectTimeoutMs: 3000 });
  const full = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
  try {
    // Mutual TLS with a password (percent-encoded in the URL): a round trip through JetStream.
    const t = await open(`tls://app:s3cr%3Aet@127.0.0.1:${mutual.port}`, full);
    try {
      const got = Promise.withResolvers<string>();
      const sub = await t.subscribe({ agent: "bob" }, async (d) => {
        got.resolve(new TextDecoder().decode(d.bytes));
        await d.ack();
      });
      await t.publish({ agent: "bob" }, enc("over mutual TLS"));
      assert.equal(await got.promise, "over mutual TLS");
      await sub.close();
    } finally {
      await t.close();
    }
    const refused = async (url: string, o: { ca?: string; cert?: string; key?: string }, why: string) => {
      await assert.rejects(open(url, o), TransportError, why);
    };
    const m = `127.0.0.1:${mutual.port}`;
    await refused(`tls://app:s3cr%3Aet@${m}`, { ca: pki.ca }, "no client certificate");
    await refused(
      `tls://app:s3cr%3Aet@${m}`,
      { ...full, ca: pki.otherCa },
      "server certificate from another CA",
    );
    await refused(`tls://app:wrong@${m}`, full, "wrong password");
    const e = await open(`tls://app:not-the-password@${m}`, full).catch((e) => e);
    assert.match(e.message, /refused the user name and password or the token/);
    assert.ok(!e.message.includes("not-the-password"));
    // TLS required by the server: a nats:// URL upgrades; the token comes from the URL.
    const k = `127.0.0.1:${token.port}`;
    const t2 = await open(`nats://t0ken@${k}`, { ca: pki.ca });
    await t2.publish({ agent: "bob" }, enc("over TLS with a token"));
    await t2.close();
    await refused(`tls://wrong@${k}`, { ca: pki.ca }, "wrong token");
    await refused(`tls://t0ken@${k}`, {}, "server certificate not trusted by the system store");
  } finally {
    await mutual.kill();
    await token.kill();
    for (const d of [mutual.dir, token.dir, pki.dir]) await Deno.remove(d, { recursive: true });
  }
});

/** The permissions README.md documents for prefix `app` (stream `app`, bucket `app_cards`), read from it. */
async function documented(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const at = readme.indexOf("The permissions a NATS user needs");
  const block = /```text\n([\s\S]*?)```/.exec(readme.slice(at));
  if (at < 0 || !block) throw new Error("README.md lists no NATS permissions");
  return `{\n${block[1]}}`;
}

Deno.test("nats: agents work with exactly the permissions the README lists; less is refused", async () => {
  if (!(await requireTool("nats-server", ["/usr/sbin/nats-server", "--version"]))) return;
  const permissions = await documented();
  const server = await startNatsServer((port, dir) =>
    [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: "${dir}/js" }`,
      `authorization { users: [`,
      `  { user: "app", password: "pw", permissions: ${permissions} }`,
      `  { user: "narrow", password: "pw", permissions: { publish: ["$JS.API.>"], subscribe: ["_INBOX.>"] } }`,
      `] }`,
      "",
    ].join("\n")
  );
  const url = `nats://app:pw@127.0.0.1:${server.port}`;
  const transportOptions = { prefix: "app", ackWaitMs: 2000, fetchExpiresMs: 1000 };
  try {
    const { Agent } = await import("../mod.ts");
    await using alice = await Agent.start({ id: "alice", transport: url, transportOptions });
    await using bob = await Agent.start({
      id: "bob",
      transport: url,
      transportOptions: { ...transportOptions, maxRedeliveries: 0 },
      maxRedeliveries: 0,
    });
    const seen = Promise.withResolvers<string>();
    (bob.transport.directory!).watch((card) => card.id === "carol" && seen.resolve(card.id));
    await new Promise((r) => setTimeout(r, 200));
    const got: unknown[] = [];
    const dead = Promise.withResolvers<void>();
    bob.on("n", (m) => {
      if (m.content === "bad") throw new Error("refuse");
      got.push(m.content);
    });
    bob.addEventListener("dead-letter", () => dead.resolve());
    const ops = { members: ["alice", "bob"] };
    alice.setMembers("ops", ops);
    await bob.join("ops", ops);
    await alice.connect("bob");
    await alice.send("bob", { type: "n", content: 1 });
    await alice.send("bob", { type: "n", content: "bad" });
    await alice.broadcast("ops", { type: "n", content: 2 });
    await dead.promise;
    const end = Date.now() + 10_000;
    while (got.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got.sort(), [1, 2]);
    // The acknowledgements reached the server: within less than ack_wait (2 s) nothing is pending with bob's
    // consumers, and nothing was delivered twice.
    const jsm = (bob.transport as NatsTransport).jsm;
    const infos = () =>
      Promise.all(["agent_bob", "member_ops__bob"].map((c) => jsm.consumers.info("app", c)));
    const settled = Date.now() + 1500;
    while ((await infos()).some((i) => i.num_ack_pending > 0) && Date.now() < settled) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const i of await infos()) {
      assert.equal(i.num_ack_pending, 0, `${i.name}: acknowledgements did not reach the server`);
      assert.equal(i.num_redelivered, 0, `${i.name}: redelivered`);
    }
    await using carol = await Agent.start({ id: "carol", transport: url, transportOptions });
    assert.equal(await seen.promise, carol.id);
    // Without the prefix's subjects, the stream cannot even be set up for that user.
    await assert.rejects(
      NatsTransport.connect(`nats://narrow:pw@127.0.0.1:${server.port}`, { prefix: "other" }).then(
        async (t) => {
          try {
            await t.publish({ agent: "x" }, enc("x"));
          } finally {
            await t.close();
          }
        },
      ),
      TransportError,
    );
  } finally {
    await server.kill();
    await Deno.remove(server.dir, { recursive: true });
  }
});
