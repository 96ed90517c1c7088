/**
 * `spores doctor URL`: connects, checks that this user may publish, consume
 * and publish cards, reads the broker's features and clock, and says what is
 * wrong in plain words.
 *
 * @module
 */
import { Command } from "commander";
import type { AmqpTransport } from "../transports/amqp.ts";
import type { RedisTransport } from "../transports/redis.ts";
import { createCard, hex, Identity, type Transport } from "../mod.ts";
import { CliError, describeError, Exit } from "./errors.ts";
import { out } from "./io.ts";
import { connect, redact, transportOptions, withJson, withTransportOptions } from "./options.ts";

type Status = "ok" | "info" | "warn" | "fail";

interface Check {
  status: Status;
  check: string;
  detail: string;
}

/** Clock skew the protocol tolerates by default, ms. */
const SKEW_LIMIT_MS = 300_000;
const TLS_SCHEMES = new Set(["rediss:", "amqps:", "mqtts:", "stomp+ssl:", "wss:", "tls:"]);
const MARK: Record<Status, string> = { ok: "ok  ", info: "info", warn: "WARN", fail: "FAIL" };

function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "[::1]" || host === "::1";
}

function clockCheck(skewMs: number, source: string): Check {
  const s = Math.round(skewMs / 100) / 10;
  const detail = `this machine's clock is ${Math.abs(s)} s ${
    s >= 0 ? "ahead of" : "behind"
  } the broker (${source})`;
  if (Math.abs(skewMs) > SKEW_LIMIT_MS) {
    return {
      status: "fail",
      check: "clock",
      detail:
        `${detail}: beyond the 300 s window, spores between this machine and others will be refused; fix NTP`,
    };
  }
  if (Math.abs(skewMs) > 30_000) {
    return { status: "warn", check: "clock", detail: `${detail}: close to the 300 s window; check NTP` };
  }
  return { status: "ok", check: "clock", detail };
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function portOpen(hostname: string, port: number): Promise<boolean> {
  try {
    const conn = await withTimeout(Deno.connect({ hostname, port }), 1500, "connect");
    conn.close();
    return true;
  } catch {
    return false;
  }
}

async function redisChecks(t: RedisTransport, checks: Check[], probe: string): Promise<() => Promise<void>> {
  const client = t.client;
  try {
    const server = await client.info("server");
    const version = /redis_version:([\d.]+)/.exec(server)?.[1] ?? "unknown";
    const [major = 0, minor = 0] = version.split(".").map(Number);
    checks.push(
      major > 6 || (major === 6 && minor >= 2)
        ? { status: "ok", check: "version", detail: `Redis ${version}` }
        : {
          status: "fail",
          check: "version",
          detail: `Redis ${version}: the transport needs 6.2 or later (XAUTOCLAIM)`,
        },
    );
    const memory = await client.info("memory");
    const policy = /maxmemory_policy:(\S+)/.exec(memory)?.[1];
    if (policy && policy !== "noeviction") {
      checks.push({
        status: "warn",
        check: "eviction",
        detail:
          `maxmemory-policy is ${policy}: under memory pressure Redis may delete streams and lose spores; set noeviction`,
      });
    } else if (policy) {
      checks.push({
        status: "ok",
        check: "eviction",
        detail: "maxmemory-policy noeviction: streams are never evicted",
      });
    }
    const persistence = await client.info("persistence");
    const aof = /aof_enabled:(\d)/.exec(persistence)?.[1] === "1";
    checks.push({
      status: aof ? "ok" : "info",
      check: "persistence",
      detail: aof
        ? "append-only file on: acknowledged spores survive a restart"
        : "append-only file off: spores queued at a crash may be lost (appendonly yes makes them durable)",
    });
  } catch (e) {
    checks.push({ status: "warn", check: "server info", detail: `cannot read INFO: ${describeError(e)}` });
  }
  try {
    const before = Date.now();
    const [seconds = 0, micros = 0] = (await client.time()) as unknown as (string | number)[];
    const after = Date.now();
    const broker = Number(seconds) * 1000 + Number(micros) / 1000;
    checks.push(clockCheck((before + after) / 2 - broker, `Redis TIME, round trip ${after - before} ms`));
  } catch (e) {
    checks.push({
      status: "warn",
      check: "clock",
      detail: `cannot read the broker's clock: ${describeError(e)}`,
    });
  }
  const prefix = t.prefix;
  return async () => {
    await client.del(`${prefix}:agent:{${probe}}`, `${prefix}:dlq:{${probe}}`);
    await client.hdel(`${prefix}:cards`, probe);
  };
}

async function amqpChecks(
  t: AmqpTransport,
  url: URL,
  checks: Check[],
  probe: string,
): Promise<() => Promise<void>> {
  const host = url.hostname;
  const user = decodeURIComponent(url.username || "guest");
  const pass = decodeURIComponent(url.password || "guest");
  let management = false;
  for (const scheme of ["http", "https"]) {
    const port = scheme === "http" ? 15672 : 15671;
    if (!(await portOpen(host, port))) continue;
    try {
      const before = Date.now();
      const res = await withTimeout(
        fetch(`${scheme}://${host}:${port}/api/overview`, {
          headers: { authorization: `Basic ${btoa(`${user}:${pass}`)}` },
        }),
        3000,
        "management API",
      );
      const after = Date.now();
      const date = res.headers.get("date");
      if (res.ok) {
        const body = await res.json() as { rabbitmq_version?: string; erlang_version?: string };
        checks.push({
          status: "ok",
          check: "version",
          detail: `RabbitMQ ${body.rabbitmq_version ?? "?"} (management API)`,
        });
      } else {
        await res.body?.cancel();
        checks.push({
          status: "info",
          check: "management",
          detail: `management API answers ${res.status} for this user: version and plugins not read`,
        });
      }
      // The HTTP Date header has one-second resolution.
      if (date) {
        checks.push(
          clockCheck((before + after) / 2 - Date.parse(date), "HTTP Date of the management API, ±1 s"),
        );
      }
      management = true;
      break;
    } catch {
      // not the management API
    }
  }
  if (!management) {
    checks.push({
      status: "info",
      check: "clock",
      detail: "not measurable over AMQP (enable rabbitmq_management on port 15672 to check it)",
    });
  }
  const plugins: [string, number][] = [["rabbitmq_management", 15672], ["rabbitmq_stomp", 61613], [
    "rabbitmq_web_stomp",
    15674,
  ]];
  const found: string[] = [];
  for (const [name, port] of plugins) if (await portOpen(host, port)) found.push(`${name} (:${port})`);
  checks.push({
    status: "info",
    check: "plugins",
    detail: found.length > 0
      ? `listening: ${found.join(", ")}`
      : "no management or STOMP listener found on the usual ports",
  });
  const x = t.exchange;
  return async () => {
    const ch = await t.openChannel();
    try {
      for (const q of [`${x}.agent.${probe}`, `${x}.dead.${probe}`, `${x}.card.${probe}`]) {
        await ch.deleteQueue(q);
      }
    } finally {
      await ch.close();
    }
  };
}

async function roundTrip(t: Transport, probe: string): Promise<number> {
  const got = Promise.withResolvers<void>();
  const payload = crypto.getRandomValues(new Uint8Array(32));
  const sub = await t.subscribe({ agent: probe }, async (d) => {
    await d.ack();
    if (d.bytes.length === payload.length && d.bytes.every((b, i) => b === payload[i])) got.resolve();
  });
  try {
    const started = performance.now();
    await t.publish({ agent: probe }, payload, { ttlMs: 60_000, priority: 4, type: "doctor" });
    await withTimeout(got.promise, 10_000, "delivery");
    return performance.now() - started;
  } finally {
    await sub.close();
  }
}

/** Runs every check on `url`. */
export async function diagnose(url: string, options: Record<string, unknown>): Promise<Check[]> {
  const checks: Check[] = [];
  const u = new URL(url);
  const started = performance.now();
  let t: Transport;
  try {
    t = await connect(url, options, 15_000);
  } catch (e) {
    if (e instanceof CliError && e.exitCode === Exit.USAGE) throw e;
    if (e instanceof Error && e.name === "ConfigError") throw e;
    checks.push({
      status: "fail",
      check: "connect",
      detail: `cannot connect to ${redact(url)}: ${describeError(e)}`,
    });
    return checks;
  }
  let cleanup = async () => {};
  try {
    checks.push({
      status: "ok",
      check: "connect",
      detail: `connected to ${redact(url)} (${t.name}) in ${Math.round(performance.now() - started)} ms`,
    });
    if (t.name === "memory") {
      checks.push({
        status: "info",
        check: "broker",
        detail: "in-process broker: reaches only agents in this process",
      });
    } else if (TLS_SCHEMES.has(u.protocol)) {
      checks.push({ status: "ok", check: "tls", detail: "TLS protects the connection to the broker" });
    } else if (isLoopback(u.hostname)) {
      checks.push({
        status: "info",
        check: "tls",
        detail: "no TLS (loopback, so nothing leaves this machine)",
      });
    } else {
      checks.push({
        status: "warn",
        check: "tls",
        detail: `no TLS: spores stay end-to-end encrypted, but ${
          u.password ? "the broker password, " : ""
        }headers and traffic patterns are visible on the network; use ${u.protocol.replace(":", "s:")}//`,
      });
    }
    const c = t.capabilities;
    checks.push({
      status: "info",
      check: "features",
      detail: `durable ${c.durable}, ordered ${c.ordered}, priorities ${c.priority}, TTL ${c.ttl}, ` +
        `broadcast ${c.broadcast}, largest message ${c.maxMessageBytes} bytes`,
    });
    if (!c.priority) {
      checks.push({
        status: "warn",
        check: "priorities",
        detail: "this broker set-up ignores message priorities",
      });
    }
    const probe = `doctor-${hex.encode(crypto.getRandomValues(new Uint8Array(6)))}`;
    if (t.name === "redis") cleanup = await redisChecks(t as RedisTransport, checks, probe);
    else if (t.name === "amqp") cleanup = await amqpChecks(t as AmqpTransport, u, checks, probe);
    try {
      const ms = await roundTrip(t, probe);
      checks.push({
        status: "ok",
        check: "permissions",
        detail: `published, consumed and acknowledged a message in ${Math.round(ms * 10) / 10} ms`,
      });
    } catch (e) {
      checks.push({
        status: "fail",
        check: "permissions",
        detail: `cannot publish and consume (${describeError(e)}): check this user's rights on the broker`,
      });
    }
    if (!t.directory) {
      checks.push({
        status: "warn",
        check: "directory",
        detail: "no card directory: agents need a FileDirectory",
      });
    } else {
      try {
        const identity = await Identity.generate();
        await t.directory.publish(await createCard(probe, identity));
        const card = await t.directory.lookup(probe);
        if (card?.fingerprint !== identity.fingerprint) throw new Error("the card read back differs");
        checks.push({ status: "ok", check: "directory", detail: "published a card and read it back" });
      } catch (e) {
        checks.push({
          status: "fail",
          check: "directory",
          detail: `cannot publish or read agent cards (${describeError(e)}): check this user's rights`,
        });
      }
    }
  } finally {
    try {
      await cleanup();
    } catch {
      // best effort: the probe's queues are tiny and named doctor-*
    }
    await t.close();
  }
  return checks;
}

/** `spores doctor`. */
export function doctorCommand(): Command {
  const cmd = new Command("doctor")
    .description("check a broker URL: connection, TLS, permissions, features, plugins, clock skew")
    .argument(
      "<url>",
      "transport URL: memory://, redis(s)://, amqp(s)://, mqtt(s)://, stomp(+ssl|+ws|+wss)://, sqs://, nats://",
    );
  withTransportOptions(cmd);
  withJson(cmd);
  return cmd.action(async (url: string, o) => {
    const checks = await diagnose(url, transportOptions(o));
    const failed = checks.filter((c) => c.status === "fail").length;
    const warned = checks.filter((c) => c.status === "warn").length;
    if (o.json) out(JSON.stringify({ url: redact(url), ok: failed === 0, checks }));
    else {
      for (const c of checks) out(`${MARK[c.status]}  ${c.check.padEnd(12)} ${c.detail}`);
      out(
        failed === 0
          ? `no problem found${warned ? ` (${warned} warning${warned > 1 ? "s" : ""})` : ""}`
          : `${failed} problem${failed > 1 ? "s" : ""} found`,
      );
    }
    if (failed > 0) Deno.exitCode = Exit.DOCTOR;
  });
}
