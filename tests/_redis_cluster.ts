// A Redis Cluster owned by one test: six redis-server processes (three primaries, three replicas) on free
// loopback ports, each with its own data directory under a temp dir, made into a cluster with
// `redis-cli --cluster create`, and stopped (every process, every directory) by `stop()`.

/** Whether `port` (and its cluster bus port) can be bound on 127.0.0.1. */
function free(port: number): boolean {
  for (const p of [port, port + 10_000]) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port: p }).close();
    } catch {
      return false;
    }
  }
  return true;
}

/** `count` free ports whose bus ports (+10,000) are free too. */
export function freePorts(count: number, from = 20_000 + Math.floor(Math.random() * 30_000)): number[] {
  const ports: number[] = [];
  for (let p = from; ports.length < count && p < 55_000; p++) if (free(p)) ports.push(p);
  if (ports.length < count) throw new Error("no free loopback ports for a Redis Cluster");
  return ports;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${text}`);
  return text;
}

/** A running test cluster. */
export interface RedisClusterHandle {
  /** Ports of all six nodes. */
  readonly ports: number[];
  /** A `redis://` URL for the transport (seed node plus the others as `cluster=` seeds). */
  readonly url: string;
  /** Port of the primary that owns `key`'s slot right now. */
  primaryOf(key: string): Promise<number>;
  /** Kills the node on `port` with SIGKILL. */
  kill(port: number): void;
  /** Starts the node on `port` again (it rejoins the cluster, as a replica if it was failed over). */
  restart(port: number): void;
  /** Waits until the cluster reports `cluster_state:ok` with a primary for every slot, as seen from `port`. */
  waitOk(port?: number, timeoutMs?: number): Promise<void>;
  /** Kills every node and removes the data directories. */
  stop(): Promise<void>;
}

/** Starts a 3-primary, 3-replica cluster. */
export async function startRedisCluster(
  options: { appendonly?: boolean; nodeTimeoutMs?: number } = {},
): Promise<RedisClusterHandle> {
  const dir = await Deno.makeTempDir({ prefix: "spores-redis-cluster-" });
  const ports = freePorts(6);
  const children = new Map<number, Deno.ChildProcess>();
  const alive = new Set<number>();
  const spawn = (port: number) => {
    const data = `${dir}/${port}`;
    const child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        `${data}/nodes.conf`,
        "--cluster-node-timeout",
        String(options.nodeTimeoutMs ?? 1500),
        "--dir",
        data,
        "--save",
        "",
        "--appendonly",
        options.appendonly ? "yes" : "no",
        "--logfile",
        `${data}/redis.log`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.set(port, child);
    alive.add(port);
    exited.push(child.status);
  };
  const exited: Promise<Deno.CommandStatus>[] = [];
  const stop = async () => {
    for (const [port, child] of children) {
      if (alive.has(port)) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
    }
    await Promise.all(exited);
    alive.clear();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (const port of ports) await Deno.mkdir(`${dir}/${port}`);
    for (const port of ports) spawn(port);
    for (const port of ports) {
      const end = Date.now() + 10_000;
      while (true) {
        try {
          if ((await run("redis-cli", ["-p", String(port), "PING"])).includes("PONG")) break;
        } catch { /* not up yet */ }
        if (Date.now() > end) throw new Error(`redis-server on ${port} did not start`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    ]);
    const handle: RedisClusterHandle = {
      ports,
      url: `redis://127.0.0.1:${ports[0]}?cluster=${ports.slice(1).map((p) => `127.0.0.1:${p}`).join(",")}`,
      async primaryOf(key) {
        const seed = ports.find((p) => alive.has(p))!;
        const slot = Number((await run("redis-cli", ["-p", String(seed), "CLUSTER", "KEYSLOT", key])).trim());
        const nodes = await run("redis-cli", ["-p", String(seed), "CLUSTER", "NODES"]);
        for (const line of nodes.split("\n")) {
          const f = line.split(" ");
          if (!f[2]?.includes("master") || f[2].includes("fail")) continue;
          for (const range of f.slice(8)) {
            const [a, b] = range.split("-").map(Number);
            if (slot >= a! && slot <= (b ?? a!)) return Number(f[1]!.split(":")[1]!.split("@")[0]);
          }
        }
        throw new Error(`no primary for slot ${slot}`);
      },
      kill(port) {
        children.get(port)?.kill("SIGKILL");
        alive.delete(port);
      },
      restart(port) {
        spawn(port);
      },
      async waitOk(port, timeoutMs = 30_000) {
        const end = Date.now() + timeoutMs;
        const at = port ?? ports.find((p) => alive.has(p))!;
        while (Date.now() < end) {
          try {
            const info = await run("redis-cli", ["-p", String(at), "CLUSTER", "INFO"]);
            if (info.includes("cluster_state:ok") && info.includes("cluster_slots_ok:16384")) return;
          } catch { /* node busy */ }
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error("the Redis Cluster did not reach cluster_state:ok");
      },
      stop,
    };
    await handle.waitOk();
    // Every replica has synced with its primary before the test starts.
    for (const port of ports) {
      const end = Date.now() + 20_000;
      while (Date.now() < end) {
        const info = await run("redis-cli", ["-p", String(port), "INFO", "replication"]);
        if (info.includes("role:master") || info.includes("master_link_status:up")) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return handle;
  } catch (e) {
    await stop();
    throw e;
  }
}
