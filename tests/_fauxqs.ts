// An SQS/SNS server (fauxqs, in memory) started inside the test process on a free loopback port.
// startFauxqs() listens on 0.0.0.0; its buildApp() lets the server listen on loopback only.
import { buildApp } from "fauxqs";

/** Credentials any fauxqs accepts (it checks none). */
export const FAUXQS_CREDENTIALS = { accessKeyId: "spores-test", secretAccessKey: "spores-test" };

/** A running fauxqs. */
export interface Fauxqs {
  /** `sqs://us-east-1?endpoint=http://127.0.0.1:<port>`. */
  url: string;
  /** Its HTTP endpoint. */
  endpoint: string;
  /** Port. */
  port: number;
  /** Stops it. */
  stop(): Promise<void>;
}

/** Starts fauxqs on a free loopback port (or `port`). */
export async function startSqs(port = 0): Promise<Fauxqs> {
  const app = buildApp({ logger: false, host: "127.0.0.1" });
  const address = await app.listen({ port, host: "127.0.0.1" });
  const actual = Number(new URL(address).port);
  const endpoint = `http://127.0.0.1:${actual}`;
  return {
    url: `sqs://us-east-1?endpoint=${encodeURIComponent(endpoint)}`,
    endpoint,
    port: actual,
    stop: async () => void await app.close(),
  };
}

/** Options of the transports tests open on fauxqs. */
export function sqsOptions(prefix: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { prefix, credentials: FAUXQS_CREDENTIALS, waitTimeSeconds: 1, ...extra };
}

// As a program: a receiving process for the multi-process tests.
//   deno run --allow-net=127.0.0.1 --allow-env --allow-read tests/_fauxqs.ts <url> <prefix> <agent> <mode> <vis>
// mode "hang": prints "got <dedupId>" for a delivery and never finishes it (the test SIGKILLs the process);
// mode "ack": prints "<dedupId>" for every delivery after acknowledging it.
if (import.meta.main) {
  const [url, prefix, agent, mode, visibility] = Deno.args;
  const { createTransport } = await import("../transports/sqs.ts");
  const t = await createTransport(
    url!,
    sqsOptions(prefix!, { visibilityTimeoutSeconds: Number(visibility) }),
  );
  const out = new TextEncoder();
  await t.subscribe({ agent: agent! }, async (d) => {
    if (mode === "hang") {
      await Deno.stdout.write(out.encode(`got ${d.dedupId}\n`));
      await new Promise(() => {});
    }
    await d.ack();
    await Deno.stdout.write(out.encode(`${d.dedupId}\n`));
  }, { prefetch: 64 });
  await Deno.stdout.write(out.encode("ready\n"));
  Deno.addSignalListener("SIGTERM", () => void t.close().then(() => Deno.exit(0)));
}
