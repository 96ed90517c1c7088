// The brokers of bench/load.ts: how agents reach each one (URL and transport options under a fresh prefix), the
// fauxqs process SQS runs against, and the removal of everything a run made.
import { cleanRabbit, cleanRedis } from "../tests/_cleanup.ts";
import { cleanNats } from "../tests/_nats.ts";

/** One broker of the load runs. */
export interface LoadTarget {
  /** The transport URL the agents are started with. */
  url: string;
  /** Options of the transport under `prefix`. */
  options(prefix: string): Record<string, unknown>;
  /** A fresh prefix (queue, stream and key names start with it). */
  prefix(): string;
  /** Whether agents in two processes can reach each other through it. */
  crossProcess: boolean;
  /** Removes what a run under `prefix` left in the broker (agent ids `ids`). */
  cleanup(prefix: string, ids: string[]): Promise<void>;
  /** Stops a broker the run started (fauxqs). */
  stop?(): Promise<void>;
}

const short = () => crypto.randomUUID().slice(0, 8);

/** The fauxqs server of an SQS run, in a process of its own (in the agents' process it would share their thread). */
async function startFauxqs(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read=.",
      "--allow-env",
      new URL("./e2e_sqs.ts", import.meta.url).pathname,
      "--serve",
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the fauxqs process ended before it listened");
    text += value;
  }
  reader.releaseLock();
  return {
    url: `sqs://us-east-1?endpoint=${encodeURIComponent(text.trim())}`,
    stop: async () => {
      await child.stdin.close();
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}

const SQS_CREDENTIALS = { accessKeyId: "load", secretAccessKey: "load" };

/**
 * The target named `name` (memory, redis, amqp, mqtt, stomp, nats, sqs). For SQS, `url` names a running fauxqs
 * (a child process of a two-process run gets its parent's); without it one is started.
 */
export async function loadTarget(name: string, url?: string): Promise<LoadTarget> {
  switch (name) {
    case "memory":
      return {
        url: url ?? `memory://load-${short()}`,
        options: () => ({}),
        prefix: () => "",
        crossProcess: false,
        cleanup: async () => {},
      };
    case "redis":
      return {
        url: "redis://127.0.0.1:6379",
        options: (prefix) => ({ prefix }),
        prefix: () => `spores-load-${short()}`,
        crossProcess: true,
        cleanup: (prefix) => cleanRedis(prefix),
      };
    case "amqp":
      return {
        url: "amqp://guest:guest@127.0.0.1:5672",
        options: (prefix) => ({ exchange: prefix }),
        prefix: () => `spores-load-${short()}`,
        crossProcess: true,
        cleanup: (prefix) => cleanRabbit(prefix),
      };
    case "stomp":
      return {
        url: "stomp://guest:guest@127.0.0.1:61613",
        options: (prefix) => ({ prefix }),
        prefix: () => `spores-load-${short()}`,
        crossProcess: true,
        cleanup: (prefix) => cleanRabbit(prefix),
      };
    case "nats":
      return {
        url: "nats://127.0.0.1:4222",
        options: (prefix) => ({ prefix }),
        prefix: () => `spores_load_${short()}`,
        crossProcess: true,
        cleanup: (prefix) => cleanNats(prefix),
      };
    case "mqtt":
      return {
        url: "mqtt://127.0.0.1:1883",
        options: (prefix) => ({ prefix }),
        prefix: () => `spores-load-${short()}`,
        crossProcess: true,
        cleanup: async (prefix, ids) => {
          const { MqttTransport, sessionOf } = await import("../transports/mqtt.ts");
          const t = await MqttTransport.connect("mqtt://127.0.0.1:1883", { prefix, watchDrops: false });
          try {
            for (const id of ids) {
              await t.removeSession(sessionOf(prefix, { agent: id }).clientId);
              await t.directory.remove(id);
            }
          } finally {
            await t.close();
          }
        },
      };
    case "sqs": {
      const server = url ? undefined : await startFauxqs();
      return {
        url: url ?? server!.url,
        options: (prefix) => ({ prefix, credentials: SQS_CREDENTIALS, waitTimeSeconds: 1 }),
        prefix: () => `load${short()}`,
        crossProcess: true,
        cleanup: async () => {}, // fauxqs keeps everything in its own memory, gone when it stops
        stop: server?.stop,
      };
    }
    default:
      throw new Error(`unknown transport ${name}; known: memory, redis, amqp, mqtt, stomp, nats, sqs`);
  }
}
