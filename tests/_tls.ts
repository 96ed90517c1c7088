// Test certificates made with openssl: a CA, a server certificate for 127.0.0.1, a client certificate,
// and an unrelated CA.

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** PEM files in a temporary directory. */
export interface TestPki {
  dir: string;
  ca: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "1",
    "-subj",
    `/CN=${name}`,
  );
}

async function makeLeaf(dir: string, name: string, ext: string): Promise<void> {
  await openssl(
    dir,
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${name}`,
  );
  await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "1",
    "-extfile",
    `${name}.ext`,
  );
}

/** Makes a CA, a server and a client certificate, and a second, unrelated CA. */
export async function makePki(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "spores-pki-" });
  await makeCa(dir, "ca");
  await makeCa(dir, "other");
  await makeLeaf(dir, "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await makeLeaf(dir, "client", "extendedKeyUsage=clientAuth\n");
  const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
  return {
    dir,
    ca: await read("ca.crt"),
    caFile: `${dir}/ca.crt`,
    serverCert: `${dir}/server.crt`,
    serverKey: `${dir}/server.key`,
    clientCert: await read("client.crt"),
    clientKey: await read("client.key"),
    otherCa: await read("other.crt"),
  };
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Waits until 127.0.0.1:port accepts connections. */
export async function waitPort(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      if (Date.now() > end) throw new Error(`nothing listens on ${port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * A TLS terminator on a free loopback port that forwards to 127.0.0.1:`target` in the clear: it lets a
 * client's TLS and mutual TLS be tested against a broker that speaks plain TCP. With `requireClientCert`,
 * a client without a certificate signed by the CA is refused during the handshake.
 */
export async function tlsProxy(
  pki: TestPki,
  target: number,
  requireClientCert: boolean,
): Promise<{ port: number; close(): Promise<void> }> {
  const tls = await import("node:tls");
  const net = await import("node:net");
  const sockets = new Set<{ destroy(): void }>();
  const server = tls.createServer({
    cert: await Deno.readTextFile(pki.serverCert),
    key: await Deno.readTextFile(pki.serverKey),
    ca: pki.ca,
    requestCert: requireClientCert,
    rejectUnauthorized: requireClientCert,
  }, (client) => {
    const upstream = net.connect(target, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  server.on("tlsClientError", () => {});
  const port = freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
