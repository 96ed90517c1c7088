// Load through one broker: `--agents` agents, in one process or split over two, each sending `--messages`
// messages of `--size` bytes to peers chosen at random. Every message carries (sender, seq), so the receiving
// side counts each one exactly: delivered, lost (its `send` resolved but no handler ran), duplicated (a handler
// ran twice), and the rate and each process's peak RSS (`Deno.memoryUsage().rss`, sampled every 100 ms).
//
// With `--slow=<ms>` it measures one agent whose handler takes that long while `--messages` arrive from one
// sender: the most handlers running at once and the most deliveries the agent holds unacknowledged (both
// bounded by `--prefetch`), and the RSS it grows by.
//
// Run: deno run --allow-net=127.0.0.1,localhost --allow-read=.,/tmp --allow-write=/tmp --allow-env --allow-run
//        bench/load.ts --transport=<memory|redis|amqp|mqtt|stomp|nats|sqs> [--agents=50] [--messages=2000]
//        [--size=1024] [--processes=1|2] [--window=4] [--ahead=2000] [--slow=50 --prefetch=64]
//        [--cut=n,...] [--stall=60] [--diag] [--json]
// `--window`: sends in flight per agent; `--ahead`: the most messages of one process sent and not yet handled
// (a sender that outruns its receivers only fills the broker; Mosquitto drops past 1,000 per session);
// `--cut`: the agents (one process) reach the broker through a relay whose connections are all closed each time
// n messages were handled; `--stall`: seconds without a message handled after which the run stops and counts
// what is missing (and the sends that never settled); `--diag`: publishes, deliveries and card lookups under way
// in the progress lines (stderr, every 10 s). The last line printed is the result as JSON (`result {...}`).
import { Agent, openTransport } from "../mod.ts";
import type { Delivery, Transport } from "../transports/transport.ts";
import { loadTarget } from "./load_targets.ts";
import { type Relay, startRelay } from "../tests/_relay.ts";

const args = new Map(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => {
    const at = a.indexOf("=");
    return at < 0 ? [a.slice(2), "true"] as const : [a.slice(2, at), a.slice(at + 1)] as const;
  }),
);
const num = (name: string, fallback: number) => Number(args.get(name) ?? fallback);
const TRANSPORT = args.get("transport") ?? "memory";
const SLOW = num("slow", 0);
const AGENTS = SLOW ? 2 : num("agents", 50);
const MESSAGES = num("messages", SLOW ? 5000 : 2000);
const SIZE = num("size", 1024);
const PROCESSES = num("processes", 1);
const WINDOW = num("window", SLOW ? 64 : 4);
const PREFETCH = num("prefetch", 64);
const AHEAD = num("ahead", SLOW ? (TRANSPORT === "mqtt" ? 900 : MESSAGES) : 2000);
const STALL_MS = num("stall", 60) * 1000;
const ROLE = args.get("role") ?? "main";
if (PROCESSES !== 1 && PROCESSES !== 2) throw new Error("--processes is 1 or 2");

const ids = Array.from({ length: AGENTS }, (_, i) => `a${String(i).padStart(3, "0")}`);
const half = PROCESSES === 2 ? Math.ceil(AGENTS / 2) : AGENTS;
/** The agents of this process: the first half in the main process, the rest in the child. */
const mine = ROLE === "child" ? ids.map((_, i) => i).slice(half) : ids.map((_, i) => i).slice(0, half);
const isMine = (i: number) => ROLE === "child" ? i >= half : i < half;

// ---- peak RSS, and progress on stderr every 10 s ----
let peakRss = Deno.memoryUsage().rss;
const sampler = setInterval(() => peakRss = Math.max(peakRss, Deno.memoryUsage().rss), 100);
const progress = setInterval(() => {
  console.error(
    `${ROLE}: ${started} sends begun, ${sentOk} resolved, ${sendFailed} failed, ${distinctHere} handled here` +
      (args.has("diag")
        ? `; under way: ${diag.publishing} publishes, ${diag.delivering} deliveries, ${diag.lookingUp} lookups`
        : ""),
  );
}, 10_000);
const MiB = (b: number) => Math.round(b / 2 ** 20 * 10) / 10;

// ---- counting ----
/** handled[s][q]: how many times message q of sender s was handled here. */
const handled = ids.map(() => new Uint8Array(MESSAGES));
/** sent[s][q] for this process's senders: 1 once `send` resolved, 2 if it failed. */
const sent = ids.map(() => new Uint8Array(MESSAGES));
let distinctHere = 0; // distinct (s, q) handled in this process
let handledOfMineHere = 0; // handlings here of messages this process sent
let handledOfMineThere = 0; // the other process's handlings of messages this process sent (it tells us)
let handledOfTheirsHere = 0; // handlings here of messages the other process sent (we tell it)
let started = 0; // sends begun by this process
let sentOk = 0;
let sendFailed = 0;
let wrongSender = 0; // content naming a sender other than the authenticated one
let lastProgress = Date.now();
const errors: string[] = [];

interface Content {
  s: number;
  q: number;
  p: Uint8Array;
}

function count(from: string, c: Content): void {
  if (ids[c.s] !== from || c.q < 0 || c.q >= MESSAGES) {
    wrongSender++;
    return;
  }
  const times = ++handled[c.s]![c.q]!;
  if (times === 1) distinctHere++;
  if (isMine(c.s)) handledOfMineHere++;
  else handledOfTheirsHere++;
  lastProgress = Date.now();
  if (relay && cuts < cutAt.length && distinctHere >= cutAt[cuts]!) {
    cuts++;
    relay.cut();
  }
}

// ---- the broker ----
const urlArg = args.get("url");
const target = await loadTarget(TRANSPORT, urlArg);
if (PROCESSES === 2 && !target.crossProcess) {
  throw new Error(`${TRANSPORT}:// lives in one process: run it with --processes=1`);
}
const prefix = args.get("prefix") ?? target.prefix();

// ---- connections cut: with --cut=<n1,n2,...>, the agents of this process reach the broker through a relay
// whose connections are all closed each time this process has handled that many messages ----
const cutAt = (args.get("cut") ?? "").split(",").filter((x) => x !== "").map(Number);
let agentUrl = target.url;
let relay: Relay | undefined;
let cuts = 0;
if (cutAt.length > 0) {
  const url = new URL(target.url);
  relay = startRelay(Number(url.port));
  url.port = String(relay.port);
  agentUrl = url.href;
}

// ---- the agents ----
const agents = new Map<number, Agent>();
let rejected = 0;
let deadLetters = 0;
let brokerDropped = 0;
const rejectedCodes: Record<string, number> = {};

/** Deliveries the slow agent holds (handed to it, not yet acknowledged), and the most at once. */
const holding = { now: 0, max: 0 };
/** Handlers of the slow agent running, and the most at once. */
const running = { now: 0, max: 0 };
let slowTransport: Transport | undefined;

/** `t`, with each delivery counted from the moment it is handed out until it is acknowledged or returned. */
function counting(t: Transport): Transport {
  return new Proxy(t, {
    get(target, key) {
      if (key === "subscribe") {
        return (
          address: Parameters<Transport["subscribe"]>[0],
          handler: Parameters<Transport["subscribe"]>[1],
          options: Parameters<Transport["subscribe"]>[2],
        ) =>
          target.subscribe(address, (d) => {
            holding.max = Math.max(holding.max, ++holding.now);
            let settled = false;
            const settle = () => settled ? undefined : (settled = true, holding.now--);
            const wrapped: Delivery = {
              bytes: d.bytes,
              redeliveries: d.redeliveries,
              dedupId: d.dedupId,
              priority: d.priority,
              ack: () => (settle(), d.ack()),
              nack: () => (settle(), d.nack()),
              deadLetter: d.deadLetter ? () => (settle(), d.deadLetter!()) : undefined,
            };
            return handler(wrapped);
          }, options);
      }
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** With --diag: publishes and deliveries under way in this process (to tell where a stalled run waits). */
const diag = { publishing: 0, delivering: 0, lookingUp: 0 };
const diagTransports: Transport[] = [];

/** `t`, counting its publishes and deliveries under way into `diag`. */
function watched(t: Transport): Transport {
  return new Proxy(t, {
    get(target, key) {
      if (key === "publish") {
        return async (...a: Parameters<Transport["publish"]>) => {
          diag.publishing++;
          try {
            return await target.publish(...a);
          } finally {
            diag.publishing--;
          }
        };
      }
      if (key === "directory" && target.directory) {
        const directory = target.directory;
        return new Proxy(directory, {
          get(dir, k) {
            if (k === "lookup") {
              return async (id: string) => {
                diag.lookingUp++;
                try {
                  return await dir.lookup(id);
                } finally {
                  diag.lookingUp--;
                }
              };
            }
            const v = Reflect.get(dir, k, dir);
            return typeof v === "function" ? v.bind(dir) : v;
          },
        });
      }
      if (key === "subscribe") {
        return (
          address: Parameters<Transport["subscribe"]>[0],
          handler: Parameters<Transport["subscribe"]>[1],
          options: Parameters<Transport["subscribe"]>[2],
        ) =>
          target.subscribe(address, async (d) => {
            diag.delivering++;
            try {
              return await handler(d);
            } finally {
              diag.delivering--;
            }
          }, options);
      }
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

async function startAgent(i: number): Promise<void> {
  const id = ids[i]!;
  const slowReceiver = SLOW > 0 && i === 1;
  if (slowReceiver) slowTransport = counting(await openTransport(agentUrl, target.options(prefix)));
  let own: Transport | undefined;
  if (args.has("diag") && !slowReceiver) {
    own = watched(await openTransport(agentUrl, target.options(prefix)));
    diagTransports.push(own);
  }
  const agent = await Agent.start({
    id,
    transport: slowTransport && slowReceiver ? slowTransport : own ?? agentUrl,
    transportOptions: target.options(prefix),
    prefetch: PREFETCH,
    refusals: "silent",
  });
  agent.on("load", async (m) => {
    if (SLOW) {
      running.max = Math.max(running.max, ++running.now);
      await new Promise((r) => setTimeout(r, SLOW));
      running.now--;
    }
    count(m.from, m.content as Content);
  });
  agent.addEventListener("rejected", (e) => {
    rejected++;
    const code = (e as CustomEvent<{ code: string }>).detail?.code ?? "?";
    rejectedCodes[code] = (rejectedCodes[code] ?? 0) + 1;
  });
  agent.addEventListener("dead-letter", () => void deadLetters++);
  (agent.transport as unknown as EventTarget).addEventListener?.("dropped", (e) => {
    brokerDropped = Math.max(brokerDropped, (e as CustomEvent<{ total: number }>).detail?.total ?? 0);
  });
  agents.set(i, agent);
}

/** Starts this process's agents, a few at a time (each makes its keys and publishes its card). */
async function startAll(): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < mine.length) await startAgent(mine[next++]!);
  }));
}

const stalled = () => Date.now() - lastProgress > STALL_MS;
/** Resolves once nothing was handled for STALL_MS (sends that never settle must not hold the run for ever). */
async function untilStalled(): Promise<void> {
  while (!stalled()) await new Promise((r) => setTimeout(r, 100));
}
const outstanding = () => started - sendFailed - handledOfMineHere - handledOfMineThere;

/** Sends every message of this process's senders, `WINDOW` in flight per agent, at most `AHEAD` unhandled. */
async function sendAll(): Promise<void> {
  const padding = crypto.getRandomValues(new Uint8Array(SIZE));
  const senders = SLOW ? mine.filter((i) => i === 0) : mine;
  await Promise.all(senders.map(async (s) => {
    const agent = agents.get(s)!;
    let q = 0;
    await Promise.all(Array.from({ length: WINDOW }, async () => {
      while (q < MESSAGES) {
        while (outstanding() >= AHEAD && !stalled()) await new Promise((r) => setTimeout(r, 2));
        if (stalled()) break; // nothing handled for STALL_MS: what was not sent is left unsent
        if (q >= MESSAGES) break; // another of this agent's loops took the last one while this one waited
        const seq = q++;
        let peer = SLOW ? 1 : Math.floor(Math.random() * (AGENTS - 1));
        if (!SLOW && peer >= s) peer++;
        started++;
        try {
          await agent.send(ids[peer]!, { type: "load", content: { s, q: seq, p: padding } });
          sent[s]![seq] = 1;
          sentOk++;
        } catch (e) {
          sent[s]![seq] = 2;
          sendFailed++;
          if (errors.length < 5) errors.push(String(e));
        }
      }
    }));
  }));
}

async function closeAll(): Promise<void> {
  // Bounded: after a stall, an agent may wait for work that never ends.
  await Promise.race([
    Promise.all([...agents.values()].map((a) => a.close().catch(() => {}))),
    new Promise((r) => setTimeout(r, 30_000)),
  ]);
  await slowTransport?.close();
  await Promise.all(diagTransports.map((t) => t.close().catch(() => {})));
}

// ---- the child process of a two-process run ----
// Lines on stdin: "go", "h <n>" (the main process's handlings of this process's messages), "report".
// Lines on stdout: "ready", "p <distinct here> <handlings here of the main's messages>" every 100 ms,
// "sent <ok> <failed>", "report <json>", "closed".
const enc = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    yield* parts;
  }
}

interface ChildReport {
  sentOk: number;
  sendFailed: number;
  started: number;
  /** For each sender: base64 of one byte per message, 1 once its `send` resolved, 2 if it failed. */
  sent: string[];
  /** For each sender: the handling counts here, base64 of one byte per message. */
  handled: string[];
  peakRss: number;
  rejected: number;
  rejectedCodes: Record<string, number>;
  deadLetters: number;
  brokerDropped: number;
  wrongSender: number;
  errors: string[];
  baselineRss: number;
  maxHandlersRunning: number;
  maxDeliveriesHeld: number;
}

const b64 = (bytes: Uint8Array) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(s);
};
const unb64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

if (ROLE === "child") {
  await startAll();
  let baselineRss = Deno.memoryUsage().rss;
  say("ready");
  const progress = setInterval(() => say(`p ${distinctHere} ${handledOfTheirsHere}`), 100);
  for await (const line of lines(Deno.stdin.readable)) {
    if (line === "go") {
      baselineRss = Deno.memoryUsage().rss;
      Promise.race([sendAll(), untilStalled()]).then(() => say(`sent ${sentOk} ${sendFailed}`));
    } else if (line.startsWith("h ")) {
      const there = Number(line.slice(2));
      if (there > handledOfMineThere) lastProgress = Date.now();
      handledOfMineThere = there;
    } else if (line === "report") {
      clearInterval(progress);
      say(`p ${distinctHere} ${handledOfTheirsHere}`);
      const report: ChildReport = {
        sentOk,
        sendFailed,
        started,
        sent: sent.map((row) => b64(row)),
        handled: handled.map((row) => b64(row)),
        peakRss,
        rejected,
        rejectedCodes,
        deadLetters,
        brokerDropped,
        wrongSender,
        errors,
        baselineRss,
        maxHandlersRunning: running.max,
        maxDeliveriesHeld: holding.max,
      };
      say(`report ${JSON.stringify(report)}`);
      await closeAll();
      say("closed");
      break;
    }
  }
  clearInterval(sampler);
  clearInterval(progress);
  Deno.exit(0);
}

// ---- the main process ----
let child: Deno.ChildProcess | undefined;
let childWriter: WritableStreamDefaultWriter<Uint8Array> | undefined;
const childState = {
  ready: Promise.withResolvers<void>(),
  sent: Promise.withResolvers<{ ok: number; failed: number }>(),
  report: Promise.withResolvers<ChildReport>(),
  closed: Promise.withResolvers<void>(),
  distinct: 0,
};
for (const p of [childState.ready, childState.sent, childState.report]) p.promise.catch(() => {});
const tell = (line: string) => childWriter!.write(enc.encode(line + "\n"));

if (PROCESSES === 2) {
  child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1,localhost",
      "--allow-read=.,/tmp",
      "--allow-write=/tmp",
      "--allow-env",
      "--allow-run",
      import.meta.filename!,
      ...Deno.args.filter((a) => !/^--(role|prefix|url)=/.test(a)),
      "--role=child",
      `--prefix=${prefix}`,
      `--url=${target.url}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  childWriter = child.stdin.getWriter();
  (async () => {
    for await (const line of lines(child!.stdout)) {
      if (line === "ready") childState.ready.resolve();
      else if (line.startsWith("p ")) {
        const [d, theirs] = line.slice(2).split(" ").map(Number);
        if (d! > childState.distinct) lastProgress = Date.now();
        childState.distinct = d!;
        handledOfMineThere = theirs!;
      } else if (line.startsWith("sent ")) {
        const [ok, failed] = line.slice(5).split(" ").map(Number);
        childState.sent.resolve({ ok: ok!, failed: failed! });
      } else if (line.startsWith("report ")) childState.report.resolve(JSON.parse(line.slice(7)));
      else if (line === "closed") childState.closed.resolve();
    }
    const why = new Error("the child process ended early");
    childState.ready.reject(why);
    childState.sent.reject(why);
    childState.report.reject(why);
    childState.closed.resolve();
  })();
}

let result: Record<string, unknown>;
try {
  await Promise.all([startAll(), child ? childState.ready.promise : undefined]);
  const baselineRss = Deno.memoryUsage().rss;
  const relay = child
    ? setInterval(() => void tell(`h ${handledOfTheirsHere}`).catch(() => {}), 100)
    : undefined;
  const begin = performance.now();
  lastProgress = Date.now();
  if (child) await tell("go");
  const [, other] = await Promise.all([
    Promise.race([sendAll(), untilStalled()]),
    child ? childState.sent.promise : Promise.resolve({ ok: 0, failed: 0 }),
  ]);
  const expected = sentOk + other.ok;
  const distinct = () => distinctHere + childState.distinct;
  let end = performance.now();
  while (distinct() < expected) {
    if (Date.now() - lastProgress > STALL_MS) break; // nothing arrived for a long while: count what is missing
    await new Promise((r) => setTimeout(r, 10));
    end = performance.now();
  }
  // A moment for copies that would come after the last first delivery.
  await new Promise((r) => setTimeout(r, 2000));
  if (relay) clearInterval(relay);

  // Merge what both processes saw.
  let childReport: ChildReport | undefined;
  if (child) {
    await tell("report");
    childReport = await childState.report.promise;
    childReport.handled.forEach((row, s) => {
      const there = unb64(row);
      for (let q = 0; q < MESSAGES; q++) handled[s]![q]! += there[q]!;
    });
    childReport.sent.forEach((row, s) => {
      if (isMine(s)) return;
      sent[s]!.set(unb64(row));
    });
  }
  let delivered = 0, lost = 0, duplicated = 0, afterFailedSend = 0;
  for (let s = 0; s < AGENTS; s++) {
    for (let q = 0; q < MESSAGES; q++) {
      const n = handled[s]![q]!, state = sent[s]![q]!;
      if (n > 0 && state === 1) delivered++;
      if (n > 1) duplicated += n - 1;
      if (n === 0 && state === 1) lost++;
      if (n > 0 && state !== 1) afterFailedSend++;
    }
  }
  const seconds = (end - begin) / 1000;
  result = {
    transport: TRANSPORT,
    agents: AGENTS,
    messages: MESSAGES,
    size: SIZE,
    processes: PROCESSES,
    sent: expected,
    sendFailed: sendFailed + (childReport?.sendFailed ?? 0),
    // Sends that neither resolved nor failed by the end (the run stalled).
    sendsUnsettled: started - sentOk - sendFailed +
      (childReport ? childReport.started - childReport.sentOk - childReport.sendFailed : 0),
    delivered,
    lost,
    duplicated,
    handledAfterFailedSend: afterFailedSend,
    wrongSender: wrongSender + (childReport?.wrongSender ?? 0),
    seconds: Math.round(seconds * 100) / 100,
    rate: Math.round(delivered / seconds),
    peakRssMiB: [MiB(peakRss), ...(childReport ? [MiB(childReport.peakRss)] : [])],
    rejected: rejected + (childReport?.rejected ?? 0),
    rejectedCodes: { ...rejectedCodes, ...childReport?.rejectedCodes },
    deadLetters: deadLetters + (childReport?.deadLetters ?? 0),
    brokerDropped: Math.max(brokerDropped, childReport?.brokerDropped ?? 0),
    connectionsCut: cuts,
    errors: [...errors, ...(childReport?.errors ?? [])],
  };
  if (SLOW) {
    Object.assign(result, {
      slowMs: SLOW,
      prefetch: PREFETCH,
      // The receiving agent's figures (its process's RSS: the child's in a two-process run).
      maxHandlersRunning: childReport?.maxHandlersRunning ?? running.max,
      maxDeliveriesHeld: childReport?.maxDeliveriesHeld ?? holding.max,
      baselineRssMiB: MiB(childReport?.baselineRss ?? baselineRss),
      rssGrowthMiB: MiB(childReport ? childReport.peakRss - childReport.baselineRss : peakRss - baselineRss),
    });
  }
} finally {
  await closeAll();
  if (child) {
    await Promise.race([childState.closed.promise, new Promise((r) => setTimeout(r, 30_000))]);
    await childWriter!.close().catch(() => {});
    await child.status;
  }
  await target.cleanup(prefix, ids).catch((e) => console.error(`cleanup of ${prefix} failed: ${e}`));
  await target.stop?.();
  relay?.close();
  clearInterval(sampler);
  clearInterval(progress);
}

if (!args.has("json")) {
  const r = result;
  console.error(
    `${TRANSPORT}: ${AGENTS} agents × ${MESSAGES} × ${SIZE} B, ${PROCESSES} process(es): delivered ${r.delivered}` +
      ` of ${r.sent}, lost ${r.lost}, duplicated ${r.duplicated}, ${r.rate} msg/s over ${r.seconds} s,` +
      ` peak RSS ${(r.peakRssMiB as number[]).join(" + ")} MiB`,
  );
}
console.log(`result ${JSON.stringify(result)}`);
Deno.exit(0);
