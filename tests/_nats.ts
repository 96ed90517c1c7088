// NATS test helpers: removing a test's stream and bucket, and nats-server processes of a test's own.
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { freePort, waitPort } from "./_tls.ts";

/** The machine's shared server. */
export const NATS_URL = "nats://127.0.0.1:4222";

/** A fresh prefix (stream `<prefix>`, bucket `<prefix>_cards`). */
export function natsPrefix(): string {
  return `spores_test_${crypto.randomUUID().slice(0, 8)}`;
}

/** Deletes the stream and card bucket of `prefix` on the server at `url`. */
export async function cleanNats(prefix: string, url = NATS_URL): Promise<void> {
  const nc = await connect({ servers: url.replace(/^nats:\/\//, "") });
  try {
    const jsm = await jetstreamManager(nc);
    const stream = prefix.replaceAll(".", "_");
    for (const name of [stream, `KV_${stream}_cards`, `KV_${stream}_cards_pins`]) {
      await jsm.streams.delete(name).catch(() => {});
    }
  } finally {
    await nc.close();
  }
}

/** A nats-server process of a test's own. */
export interface NatsServer {
  port: number;
  url: string;
  dir: string;
  child: Deno.ChildProcess;
  kill(signal?: Deno.Signal): Promise<void>;
}

/** Starts `nats-server` with `config` (a config file's text; `{port}` and `{dir}` are filled in). */
export async function startNatsServer(
  config: (port: number, dir: string) => string,
  options: { port?: number; dir?: string; wait?: boolean } = {},
): Promise<NatsServer> {
  const port = options.port ?? freePort();
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "spores-nats-" });
  const file = `${dir}/server.conf`;
  await Deno.writeTextFile(file, config(port, dir));
  const child = new Deno.Command("/usr/sbin/nats-server", {
    args: ["-c", file],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let done = false;
  const server: NatsServer = {
    port,
    url: `nats://127.0.0.1:${port}`,
    dir,
    child,
    async kill(signal: Deno.Signal = "SIGTERM") {
      if (done) return;
      done = true;
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      await child.status;
    },
  };
  if (options.wait !== false) {
    try {
      await waitPort(port, 15_000);
    } catch (e) {
      await server.kill("SIGKILL");
      throw e;
    }
  }
  return server;
}
