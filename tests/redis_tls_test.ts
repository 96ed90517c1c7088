// TLS and mutual TLS to Redis on loopback: a redis-server of the test's own, with generated certificates.
import assert from "node:assert/strict";
import { Agent, type Message, TransportError } from "../mod.ts";
import { createTransport, RedisTransport } from "../transports/redis.ts";
import { requireTool } from "./_env.ts";
import { freePort, makePki, type TestPki, waitPort } from "./_tls.ts";

/** Runs `test` against a redis-server of its own with TLS on a free loopback port, then stops it. */
async function withTlsRedis(
  authClients: "optional" | "yes",
  test: (url: string, pki: TestPki) => Promise<void>,
) {
  const pki = await makePki();
  const port = freePort();
  const server = new Deno.Command("redis-server", {
    args: [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--tls-cert-file",
      pki.serverCert,
      "--tls-key-file",
      pki.serverKey,
      "--tls-ca-cert-file",
      pki.caFile,
      "--tls-auth-clients",
      authClients,
      // An ACL user besides the default one, for the credentials test.
      "--user",
      "agent",
      "on",
      ">s3cret-pass",
      "~*",
      "&*",
      "+@all",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      pki.dir,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitPort(port);
    await test(`rediss://127.0.0.1:${port}`, pki);
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await Deno.remove(pki.dir, { recursive: true });
  }
}

Deno.test("redis over TLS and mutual TLS; a wrong CA or a missing client certificate is refused", async () => {
  if (!(await requireTool("redis-server", ["redis-server", "--version"]))) return;
  if (!(await requireTool("openssl", ["openssl", "version"]))) return;
  await withTlsRedis("optional", async (url, pki) => {
    // Server authentication with the right CA: agents talk end to end.
    await using alice = await Agent.start({
      id: "alice",
      transport: url,
      transportOptions: { tls: { ca: pki.ca } },
    });
    await using bob = await Agent.start({
      id: "bob",
      transport: url,
      transportOptions: { tls: { ca: pki.ca } },
    });
    const got = Promise.withResolvers<Message>();
    bob.on("t", (m) => got.resolve(m));
    await alice.send("bob", { type: "t", content: "over TLS" });
    assert.equal((await got.promise).content, "over TLS");
    // Mutual TLS: a client certificate signed by the CA.
    const mtls = await createTransport(url, {
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    });
    await mtls.publish({ agent: "bob" }, new Uint8Array([1]));
    await mtls.close();
    // A CA that did not sign the server certificate.
    await assert.rejects(
      createTransport(url, {
        tls: { ca: pki.otherCa },
        connectTimeoutMs: 2000,
        ioredis: { retryStrategy: () => null },
      }),
      TransportError,
    );
  });
});

Deno.test("redis mutual TLS required: a client without a certificate is refused", async () => {
  if (!(await requireTool("redis-server", ["redis-server", "--version"]))) return;
  await withTlsRedis("yes", async (url, pki) => {
    const ok = await createTransport(url, { tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    await ok.publish({ agent: "x" }, new Uint8Array([1]));
    await ok.close();
    await assert.rejects(
      createTransport(url, {
        tls: { ca: pki.ca },
        connectTimeoutMs: 2000,
        ioredis: { retryStrategy: () => null },
      }),
      TransportError,
    );
  });
});

Deno.test("redis: ACL user and password and the database number come from the URL; a wrong password is refused", async () => {
  if (!(await requireTool("redis-server", ["redis-server", "--version"]))) return;
  await withTlsRedis("optional", async (url, pki) => {
    const port = new URL(url).port;
    const tls = { ca: pki.ca };
    const t = await RedisTransport.connect(`rediss://agent:s3cret-pass@127.0.0.1:${port}/2`, {
      tls,
      prefix: "acl",
    });
    await t.publish({ agent: "bob" }, new Uint8Array([7]));
    await t.close();
    // The entry is in database 2, not in database 0.
    const db0 = await RedisTransport.connect(`rediss://agent:s3cret-pass@127.0.0.1:${port}/0`, {
      tls,
      prefix: "acl",
    });
    const db2 = await RedisTransport.connect(`rediss://agent:s3cret-pass@127.0.0.1:${port}/2`, {
      tls,
      prefix: "acl",
    });
    assert.equal(await db0.client.exists("acl:agent:{bob}"), 0);
    assert.equal(await db2.client.exists("acl:agent:{bob}"), 1);
    await db0.close();
    await db2.close();
    const wrong = RedisTransport.connect(`rediss://agent:wrong@127.0.0.1:${port}/2`, {
      tls,
      connectTimeoutMs: 2000,
      ioredis: { retryStrategy: () => null },
    });
    await assert.rejects(wrong, (e) => e instanceof TransportError && !String(e.message).includes("wrong"));
  });
});
