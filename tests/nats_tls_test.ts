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
