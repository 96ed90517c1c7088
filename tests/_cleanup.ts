// Removes what broker tests created, so the machine's brokers are left as they were found.
import { connect } from "amqplib";

/** Deletes RabbitMQ queues and exchanges whose names start with `prefix`. */
export async function cleanRabbit(prefix: string): Promise<void> {
  const list = async (what: string) => {
    const out = await new Deno.Command("rabbitmqctl", {
      args: [what, "-q", "--no-table-headers", "name"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim()).filter((n) =>
      n.startsWith(prefix)
    );
  };
  const queues = await list("list_queues");
  const exchanges = await list("list_exchanges");
  const conn = await connect("amqp://guest:guest@127.0.0.1:5672");
  try {
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q);
    for (const x of exchanges) await ch.deleteExchange(x);
    await ch.close();
  } finally {
    await conn.close();
  }
}

/** Deletes Redis keys whose names start with `prefix`. */
export async function cleanRedis(prefix: string): Promise<void> {
  const scan = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", "6379", "--scan", "--pattern", `${prefix}*`],
    stdout: "piped",
  }).output();
  const keys = new TextDecoder().decode(scan.stdout).split("\n").filter((k) => k.length > 0);
  for (let i = 0; i < keys.length; i += 500) {
    await new Deno.Command("redis-cli", {
      args: ["-h", "127.0.0.1", "-p", "6379", "DEL", ...keys.slice(i, i + 500)],
    })
      .output();
  }
}
