/**
 * `spores listen`: print verified messages as JSON lines until Ctrl-C.
 *
 * @module
 */
import { Command } from "commander";
import type { Message } from "../mod.ts";
import { usage } from "./errors.ts";
import { note, out, parseCount, parseDuration, toJsonValue } from "./io.ts";
import { agentKeys, startAgent, withAgent } from "./agent.ts";

/** The JSON line printed for a message. */
export function messageLine(m: Message): string {
  return JSON.stringify({
    id: m.id,
    type: m.type,
    from: m.from,
    to: m.to,
    kind: m.kind,
    channel: m.channel,
    suite: m.suite,
    priority: m.priority,
    createdAt: new Date(m.createdAt).toISOString(),
    redeliveries: m.redeliveries,
    content: toJsonValue(m.content),
  });
}

/** `spores listen`. */
export function listenCommand(): Command {
  const cmd = new Command("listen")
    .description(
      "receive messages as an agent and print each verified one as a JSON line on stdout; Ctrl-C stops",
    )
    .argument(
      "<url>",
      "transport URL: memory://, redis(s)://, amqp(s)://, mqtt(s)://, stomp(+ssl|+ws|+wss)://, sqs://, nats://",
    )
    .option(
      "--type <type>",
      "print only this message type (repeatable); others are acknowledged, skipped and counted on stderr",
      (v: string, all: string[] = []) => [...all, v],
    )
    .option(
      "--channel <name>",
      "also join this channel (repeatable)",
      (v: string, all: string[] = []) => [...all, v],
    )
    .option("-n, --count <n>", "exit after printing this many messages")
    .option("--timeout <duration>", "exit after this long (e.g. 30s)");
  withAgent(cmd);
  return cmd.action(async (url: string, o) => {
    const keys = await agentKeys(o);
    if (keys.id === undefined) throw usage("listen needs --id (the agent whose queue to read)");
    const limit = o.count === undefined ? Infinity : parseCount(o.count, "--count");
    const timeoutMs = o.timeout === undefined ? undefined : parseDuration(o.timeout, "--timeout");
    const types = o.type === undefined ? undefined : new Set<string>(o.type);
    const done = Promise.withResolvers<string>();
    const closing = Promise.withResolvers<void>();
    let printed = 0;
    let skipped = 0;
    const agent = await startAgent(url, o, keys, keys.id);
    const onSignal = () => done.resolve("interrupted");
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, onSignal);
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => done.resolve("timeout"), timeoutMs);
    try {
      agent.onAny(async (m) => {
        if (printed >= limit) {
          // Not this run's: handed back to the broker (redelivered to the next listener) when we close.
          await closing.promise;
          throw new Error("listener stopped");
        }
        if (types && !types.has(m.type)) {
          skipped++;
          return;
        }
        try {
          out(messageLine(m));
        } catch (e) {
          // stdout closed (`| head -1`): stop, and hand this message back to the broker.
          done.resolve("stdout closed");
          throw e;
        }
        printed++;
        if (printed >= limit) done.resolve("count");
      });
      for (const channel of o.channel ?? []) await agent.join(channel);
      note(`listening as ${keys.id} (${agent.identity.fingerprint}); Ctrl-C stops`);
      const why = await done.promise;
      if (why !== "count" && why !== "stdout closed") {
        note(`stopped (${why}) after ${printed} message${printed === 1 ? "" : "s"}`);
      }
    } finally {
      clearTimeout(timer);
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
      closing.resolve();
      await agent.close();
      if (skipped > 0) {
        note(`skipped ${skipped} message${skipped === 1 ? "" : "s"} of other types (acknowledged)`);
      }
    }
  });
}
