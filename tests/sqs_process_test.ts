// The SQS transport with receiving processes on fauxqs: a SIGKILLed handler's message comes back after the
// visibility timeout and is handled once; 10,000 messages shared by two processes, no duplicate handled.
import assert from "node:assert/strict";
import { createTransport } from "../transports/sqs.ts";
import { type Fauxqs, sqsOptions, startSqs } from "./_fauxqs.ts";
import { spawnDeno } from "./_process.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };
const prefix = () => `t${crypto.randomUUID().slice(0, 8)}`;
const enc = (s: string) => new TextEncoder().encode(s);

function spawnReceiver(server: Fauxqs, p: string, agent: string, mode: "hang" | "ack", visibility: number) {
  return spawnDeno(
    new URL("./_fauxqs.ts", import.meta.url),
    ["--allow-net=127.0.0.1", "--allow-env", "--allow-read"],
    [server.url, p, agent, mode, String(visibility)],
  );
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name:
    "sqs: a handler process SIGKILLed mid-message; the message comes back after the visibility timeout, once",
  ...noSanitize,
  fn: async () => {
    const server = await startSqs();
    const p = prefix();
    const t = await createTransport(server.url, sqsOptions(p));
    const worker = spawnReceiver(server, p, "bob", "hang", 2);
    try {
      await until(() => worker.lines.includes("ready"), 20_000, "worker ready");
      await t.publish({ agent: "bob" }, enc("crash me"), { dedupId: "m1" });
      await until(() => worker.lines.includes("got m1"), 10_000, "worker received");
      const killedAt = Date.now();
      worker.child.kill("SIGKILL");
      await worker.child.status;
      const got: { id?: string; redeliveries: number; at: number }[] = [];
      const sub = await t.subscribe({ agent: "bob" }, async (d) => {
        got.push({ id: d.dedupId, redeliveries: d.redeliveries, at: Date.now() });
        await d.ack();
      });
      await until(() => got.length >= 1, 15_000, "redelivery");
      // Acknowledged: it must not come back, even after another visibility timeout.
      await new Promise((r) => setTimeout(r, 3000));
      await sub.close();
      assert.equal(got.length, 1, `handled ${got.length} times`);
      assert.equal(got[0]!.id, "m1");
      assert.equal(got[0]!.redeliveries, 1);
      assert.ok(got[0]!.at - killedAt >= 1000, "came back before the visibility timeout");
    } finally {
      try {
        worker.child.kill("SIGKILL");
      } catch {
        // already killed by the test
      }
      await worker.child.status.catch(() => {});
      await worker.reading.catch(() => {});
      await t.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "sqs: 10,000 messages, two receiving processes of one agent, no duplicate reaches a handler",
  ...noSanitize,
  fn: async () => {
    const server = await startSqs();
    const p = prefix();
    const t = await createTransport(server.url, sqsOptions(p));
    const workers = [spawnReceiver(server, p, "bob", "ack", 30), spawnReceiver(server, p, "bob", "ack", 30)];
    try {
      await until(() => workers.every((w) => w.lines.includes("ready")), 20_000, "workers ready");
      const N = 10_000;
      for (let i = 0; i < N; i += 500) {
        await Promise.all(
          Array.from(
            { length: Math.min(500, N - i) },
            (_, j) => t.publish({ agent: "bob" }, enc(`m${i + j}`), { dedupId: `m${i + j}` }),
          ),
        );
      }
      const handled = () => workers.reduce((n, w) => n + w.lines.length - 1, 0);
      await until(() => handled() >= N, 60_000, `${N} handled`);
      await new Promise((r) => setTimeout(r, 1500)); // room for a late duplicate to show up
      const ids = workers.flatMap((w) => w.lines.filter((l) => l !== "ready"));
      assert.equal(ids.length, N, `handled ${ids.length} for ${N} messages`);
      assert.equal(new Set(ids).size, N, "a message reached a handler twice");
      for (const w of workers) assert.ok(w.lines.length > 100, "one process did (almost) all the work");
    } finally {
      for (const w of workers) {
        w.child.kill("SIGKILL");
        await w.child.status.catch(() => {});
        await w.reading.catch(() => {});
      }
      await t.close();
      await server.stop();
    }
  },
});
