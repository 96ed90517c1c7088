/**
 * `spores send`: one message, or a load run (`--count N`) with a progress bar
 * and a rate and latency summary.
 *
 * @module
 */
import { Command } from "commander";
import {
  Agent,
  checkMessageSize,
  type Identity,
  newSporeId,
  type OutgoingSpore,
  SporeEngine,
  TofuTrust,
  type TrustPolicy,
} from "../mod.ts";
import { CliError, Exit, usage } from "./errors.ts";
import { note, out, parseCount, parseDuration, readFileBounded, readStdin } from "./io.ts";
import { type AgentCliOptions, agentKeys, runId, startAgent, stderrLogger, withAgent } from "./agent.ts";
import { connect, redact, transportOptions, withJson } from "./options.ts";
import { Progress, summarize } from "./progress.ts";

const MAX_CONTENT = 1 << 20;

async function contentOf(o: Record<string, unknown>): Promise<unknown> {
  const given = ["text", "content", "dataFile", "stdin"].filter((k) => o[k] !== undefined);
  if (given.length > 1) throw usage("give one of --text, --content, --data-file or --stdin");
  if (o.text !== undefined) return o.text;
  if (o.content !== undefined) {
    try {
      return JSON.parse(o.content as string);
    } catch {
      throw usage("--content is not valid JSON");
    }
  }
  if (o.dataFile !== undefined) return await readFileBounded(o.dataFile as string, MAX_CONTENT, "data file");
  if (o.stdin) return await readStdin(MAX_CONTENT);
  return undefined;
}

/** Where a run's messages go. */
interface Sender {
  send(message: OutgoingSpore): Promise<string>;
  close(): Promise<void>;
}

/**
 * One-shot sealed spores need no queue of the sender's own: the engine seals,
 * the transport publishes (as the agent runtime does), and no queue is left
 * behind on the broker for a sender that exits.
 */
async function sealedSender(
  url: string,
  o: AgentCliOptions,
  keys: { identity: Identity; trust?: TrustPolicy },
  id: string,
  to: string,
): Promise<Sender> {
  const transport = await connect(url, transportOptions(o));
  try {
    if (!transport.directory) throw usage(`${redact(url)} has no card directory`);
    const engine = await SporeEngine.create({
      id,
      identity: keys.identity,
      directory: transport.directory,
      trust: keys.trust ?? new TofuTrust(),
    });
    await engine.publishCard();
    return {
      async send(message) {
        const { bytes, info } = await engine.sealSpore(to, message);
        checkMessageSize(bytes, transport.capabilities.maxMessageBytes);
        await transport.publish({ agent: to }, bytes, {
          priority: info.priority,
          ttlMs: Math.max(1, info.expiresAt - Date.now()),
          dedupId: info.id,
          type: info.type,
        });
        return info.id;
      },
      close: () => transport.close(),
    };
  } catch (e) {
    await transport.close();
    throw e;
  }
}

/** `spores send`. */
export function sendCommand(): Command {
  const cmd = new Command("send")
    .description("send a message (or --count N of them, as a load run) to an agent")
    .argument(
      "<url>",
      "transport URL: memory://, redis(s)://, amqp(s)://, mqtt(s)://, stomp(+ssl|+ws|+wss)://, sqs://, nats://",
    )
    .option("--to <agent>", "the recipient")
    .requiredOption("--type <type>", "the message type")
    .option("--text <string>", "the content: a string")
    .option("--content <json>", "the content: a JSON value")
    .option("--data-file <path>", "the content: the bytes of this file")
    .option("--stdin", "the content: the bytes read from stdin")
    .option("--priority <0-9>", "priority", "4")
    .option("--ttl <duration>", "time to live (e.g. 30s, 5m)", "5m")
    .option("--connect", "run the handshake first and send on the session (the recipient must be listening)")
    .option("--sealed", "with --count: send one-shot sealed spores instead of opening a session")
    .option("-n, --count <n>", "send this many messages: a load run with a summary", "1")
    .option("--concurrency <n>", "messages in flight at once during a load run", "16")
    .option(
      "--loopback",
      "also run the recipient in this process and measure delivery latency (default recipient: a fresh id)",
    )
    .option(
      "--timeout <duration>",
      "how long to wait for the handshake and, with --loopback, deliveries",
      "30s",
    )
    .option("--progress", "draw the progress bar even when stderr is not a terminal")
    .option("--no-progress", "never draw the progress bar");
  withAgent(cmd);
  withJson(cmd);
  return cmd.action(async (url: string, o) => {
    if (o.to === undefined && !o.loopback) throw usage("give --to (or --loopback)");
    if (typeof o.type === "string" && o.type.startsWith("spores.")) {
      throw usage("message types starting with spores. are reserved");
    }
    const count = parseCount(o.count, "--count", 1, 10_000_000);
    const concurrency = parseCount(o.concurrency, "--concurrency", 1, 4096);
    const priority = parseCount(o.priority, "--priority", 0, 9);
    const ttlMs = parseDuration(o.ttl, "--ttl");
    const timeoutMs = parseDuration(o.timeout, "--timeout");
    const content = await contentOf(o);
    const keys = await agentKeys(o);
    const to: string | undefined = o.to ?? (o.loopback ? runId("cli-sink") : undefined);
    const session = Boolean(o.connect || (count > 1 && !o.sealed));

    const started = new Map<string, number>();
    const delivery: number[] = [];
    const allDelivered = Promise.withResolvers<void>();
    let sink: Agent | undefined;
    if (o.loopback) {
      sink = await Agent.start({
        id: to!,
        transport: url,
        transportOptions: transportOptions(o),
        logger: stderrLogger,
      });
      sink.onAny((m) => {
        const t0 = started.get(m.id);
        if (t0 === undefined) return;
        started.delete(m.id);
        delivery.push(performance.now() - t0);
        if (delivery.length === count) allDelivered.resolve();
      });
    }
    let sender: Sender | undefined;
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, onSignal);
    try {
      const id = keys.id ?? runId("cli");
      if (session) {
        const agent = await startAgent(url, o, keys, id);
        sender = { send: (m) => agent.send(to!, m), close: () => agent.close() };
        await agent.connect(to!, { timeoutMs, signal: stop.signal });
      } else {
        sender = await sealedSender(url, o, keys, id, to!);
      }
      const progress = new Progress(
        count,
        count > 1 && (o.progress === true ? true : o.progress === false ? false : Deno.stderr.isTerminal()),
      );
      const latency: number[] = [];
      let next = 0;
      let lastId = "";
      const t0 = performance.now();
      const worker = async () => {
        while (next < count && !stop.signal.aborted) {
          next++;
          const id = newSporeId();
          const begin = performance.now();
          started.set(id, begin);
          const message = { type: o.type as string, content, priority, ttlMs, id };
          lastId = await sender!.send(message);
          latency.push(performance.now() - begin);
          progress.tick();
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
      const sentSeconds = (performance.now() - t0) / 1000;
      if (sink && !stop.signal.aborted) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
        const aborted = new Promise<void>((resolve) =>
          stop.signal.addEventListener("abort", () => resolve())
        );
        await Promise.race([allDelivered.promise, late, aborted]);
        clearTimeout(timer);
      }
      progress.finish();
      const sent = latency.length;
      if (count === 1 && !o.loopback) {
        if (o.json) out(JSON.stringify({ id: lastId, to, session }));
        else out(`sent ${lastId} to ${to} ${session ? "on a session" : "as a sealed spore"}`);
        return;
      }
      const rate = sentSeconds > 0 ? Math.round(sent / sentSeconds) : sent;
      const summary: Record<string, unknown> = {
        sent,
        seconds: Math.round(sentSeconds * 1000) / 1000,
        rate,
        session,
        sendLatencyMs: summarize(latency),
      };
      if (sink) {
        summary.delivered = delivery.length;
        summary.deliveryLatencyMs = summarize(delivery);
      }
      if (stop.signal.aborted) summary.interrupted = true;
      if (o.json) out(JSON.stringify(summary));
      else {
        const l = summary.sendLatencyMs as ReturnType<typeof summarize>;
        out(`sent ${sent} spores in ${summary.seconds} s: ${rate} msg/s (${session ? "session" : "sealed"})`);
        out(
          `send latency (until the broker accepted), ms: p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  max ${l.max}`,
        );
        if (sink) {
          const d = summary.deliveryLatencyMs as ReturnType<typeof summarize>;
          out(
            `delivered ${delivery.length}/${sent}; delivery latency (send to handler), ms: ` +
              `p50 ${d.p50}  p90 ${d.p90}  p99 ${d.p99}  max ${d.max}`,
          );
        }
        if (stop.signal.aborted) note("interrupted");
      }
      if (sink && delivery.length < sent && !stop.signal.aborted) {
        throw new CliError(
          `only ${delivery.length} of ${sent} messages arrived within ${o.timeout}`,
          Exit.BROKER,
        );
      }
    } finally {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
      await sender?.close();
      await sink?.close();
    }
  });
}
