// The `sqs` target of bench/e2e.ts: the SQS transport against fauxqs (an in-memory SQS/SNS server) run in a
// process of its own on a loopback port, as a broker would be (in the benchmark's process it would share the
// JavaScript thread with the sender); a --split receiver process finds it through SPORES_BENCH_SQS_URL, which
// it inherits.
//
// Run alone, it compares the two ways a spore can travel in SQS through the raw SDK (SendMessageBatch,
// ReceiveMessage, DeleteMessageBatch): a base64 body, or a binary message attribute.
//   deno run --allow-net=127.0.0.1 --allow-read=. --allow-env --allow-run bench/e2e_sqs.ts [messages]
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";
import { base64 } from "../crypto/bytes.ts";
import type { Transport } from "../transports/transport.ts";

const ENV = "SPORES_BENCH_SQS_URL";
const credentials = { accessKeyId: "bench", secretAccessKey: "bench" };

let server: Deno.ChildProcess | undefined;

/** The URL of the server (started in a child process on first use, or the parent's). */
async function serverUrl(): Promise<string> {
  const known = Deno.env.get(ENV);
  if (known) return known;
  server = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", "--allow-read=.", "--allow-env", import.meta.filename!, "--serve"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the fauxqs process ended before it listened");
    text += value;
  }
  reader.releaseLock();
  const url = `sqs://us-east-1?endpoint=${encodeURIComponent(text.trim())}`;
  Deno.env.set(ENV, url);
  return url;
}

if (Deno.args[0] === "--serve") {
  // The server process: listens, prints its address, and ends when its parent closes stdin (or exits).
  const app = buildApp({ logger: false, host: "127.0.0.1" });
  console.log(await app.listen({ port: 0, host: "127.0.0.1" }));
  for await (const _ of Deno.stdin.readable) { /* until the parent is gone */ }
  await app.close();
  Deno.exit(0);
}

const started = Deno.args[0] === "sqs" || import.meta.main ? await serverUrl() : "";

/** The bench/e2e.ts target. */
export const sqsTarget = {
  name: "Amazon SQS API (@aws-sdk/client-sqs 3.1169.0 against fauxqs 2.4.1, loopback)",
  get url(): string {
    return Deno.env.get(ENV) ?? started;
  },
  open: async (prefix: string): Promise<Transport> =>
    (await import("../transports/sqs.ts")).createTransport(sqsTarget.url, {
      prefix,
      credentials,
      waitTimeSeconds: 2,
    }),
  options: (prefix: string): Record<string, unknown> => ({ prefix, credentials, waitTimeSeconds: 2 }),
  cleanup: async (prefix: string): Promise<void> => {
    const { SqsTransport } = await import("../transports/sqs.ts");
    const t = await SqsTransport.connect(sqsTarget.url, { prefix, credentials });
    for (const id of ["alice", "bob"]) {
      for (const kind of ["a", "d"] as const) {
        const q = await (kind === "a" ? t.agentQueue(id) : t.deadLetterQueue(id));
        await t.sqs.send(new DeleteQueueCommand({ QueueUrl: q.url }));
      }
    }
    await t.close();
  },
};

/** Sends, receives and deletes `n` messages of `size` bytes, either way; returns messages per second. */
async function raw(client: SQSClient, queue: string, n: number, size: number, way: "body" | "attribute") {
  const payload = crypto.getRandomValues(new Uint8Array(size));
  const entry = (i: number) =>
    way === "body" ? { Id: String(i), MessageBody: base64.encode(payload) } : {
      Id: String(i),
      MessageBody: "spore",
      MessageAttributes: { s: { DataType: "Binary", BinaryValue: payload } },
    };
  const start = performance.now();
  let received = 0;
  const receiving = (async () => {
    const loops = Array.from({ length: 4 }, async () => {
      while (received < n) {
        const r = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: queue,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            MessageAttributeNames: way === "body" ? [] : ["s"],
          }),
        );
        const ms = r.Messages ?? [];
        for (const m of ms) {
          const bytes = way === "body" ? base64.decode(m.Body!) : m.MessageAttributes!.s!.BinaryValue!;
          if (bytes.length !== size) throw new Error("wrong size");
        }
        received += ms.length;
        if (ms.length > 0) {
          await client.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queue,
              Entries: ms.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
            }),
          );
        }
      }
    });
    await Promise.all(loops);
  })();
  const batches = Math.ceil(n / 10);
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < batches) {
      const b = next++;
      const count = Math.min(10, n - b * 10);
      await client.send(
        new SendMessageBatchCommand({
          QueueUrl: queue,
          Entries: Array.from({ length: count }, (_, i) => entry(i)),
        }),
      );
    }
  }));
  await receiving;
  return n / ((performance.now() - start) / 1000);
}

if (import.meta.main) {
  const n = Number(Deno.args[0] ?? 5000);
  const endpoint = decodeURIComponent(new URL(started).searchParams.get("endpoint")!);
  const client = new SQSClient({
    region: "us-east-1",
    endpoint,
    credentials,
    defaultUserAgentProvider: () => Promise.resolve([["bench"]] as [string, string?][]),
  });
  const queue = (await client.send(new CreateQueueCommand({ QueueName: `bench-${crypto.randomUUID()}` })))
    .QueueUrl!;
  console.log(
    `raw SDK, ${n} messages per round, 8 batch sends and 4 receive loops in flight, fauxqs loopback`,
  );
  for (const size of [1024, 65_536]) {
    const rounds: Record<string, number[]> = { body: [], attribute: [] };
    for (let r = 0; r < 2; r++) {
      for (const way of ["body", "attribute"] as const) {
        rounds[way]!.push(await raw(client, queue, n, size, way));
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `  ${size} B: base64 body ${mean(rounds.body!).toFixed(0)} msg/s, binary attribute ${
        mean(rounds.attribute!).toFixed(0)
      } msg/s (rounds ${rounds.body!.map((x) => x.toFixed(0))} / ${
        rounds.attribute!.map((x) => x.toFixed(0))
      })`,
    );
  }
  await client.send(new DeleteQueueCommand({ QueueUrl: queue }));
  client.destroy();
  await server?.stdin.close();
  await server?.status;
  Deno.exit(0);
}
