// A RabbitMQ cluster owned by one test: three nodes with their own names, AMQP and distribution ports on free
// loopback ports, data and log directories and Erlang cookie under a temp dir, joined with
// `rabbitmqctl join_cluster`, and stopped (every node, every directory) by `stop()`. No plugin is enabled, so
// nothing collides with the machine's own broker.

/** The directory holding `rabbitmq-server` and `rabbitmqctl` as shipped (without Debian's `su` wrapper). */
async function sbin(): Promise<string> {
  const out = await new Deno.Command("readlink", {
    args: ["-f", "/usr/lib/rabbitmq/bin/rabbitmq-server"],
    stdout: "piped",
  }).output();
  const path = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || !path.endsWith("/rabbitmq-server")) {
    throw new Error("RabbitMQ server scripts not found");
  }
  return path.slice(0, -"/rabbitmq-server".length);
}

function portsFree(...ports: number[]): boolean {
  for (const p of ports) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port: p }).close();
    } catch {
      return false;
    }
  }
  return true;
}

/** One node of the cluster. */
export interface RabbitNode {
  /** Erlang node name, `name@localhost`. */
  readonly name: string;
  /** AMQP port on 127.0.0.1. */
  readonly port: number;
}

/** A running test cluster. */
export interface RabbitClusterHandle {
  /** The three nodes. */
  readonly nodes: readonly RabbitNode[];
  /** An `amqp://` URL naming every node (the first as host, the others as `nodes=` failover). */
  readonly url: string;
  /** Runs `rabbitmqctl -n <node> ...args` and returns its output. */
  ctl(node: RabbitNode, ...args: string[]): Promise<string>;
  /** Kills a node's Erlang VM with SIGKILL. */
  kill(node: RabbitNode): Promise<void>;
  /** Kills every node and removes the directories. */
  stop(): Promise<void>;
}

/** Starts a three-node cluster. */
export async function startRabbitCluster(): Promise<RabbitClusterHandle> {
  const bin = await sbin();
  const dir = await Deno.makeTempDir({ prefix: "spores-rabbit-cluster-" });
  const tag = crypto.randomUUID().slice(0, 6);
  await Deno.mkdir(`${dir}/home`);
  await Deno.writeTextFile(
    `${dir}/home/.erlang.cookie`,
    `SPORESTEST${crypto.randomUUID().replaceAll("-", "")}`,
  );
  await Deno.chmod(`${dir}/home/.erlang.cookie`, 0o400);
  await Deno.writeTextFile(`${dir}/env.conf`, "");
  await Deno.writeTextFile(`${dir}/plugins`, "[].\n");
  await Deno.writeTextFile(`${dir}/rabbitmq.conf`, "loopback_users = none\n");
  const base = {
    HOME: `${dir}/home`,
    RABBITMQ_CONF_ENV_FILE: `${dir}/env.conf`,
    ERL_EPMD_ADDRESS: "127.0.0.1",
  };
  const nodes: RabbitNode[] = [];
  for (let p = 30_000 + Math.floor(Math.random() * 20_000); nodes.length < 3 && p < 60_000; p += 2) {
    if (portsFree(p, p + 1)) nodes.push({ name: `spt-${tag}-${"abc"[nodes.length]}@localhost`, port: p });
  }
  const children: Deno.ChildProcess[] = [];
  const pids = new Map<string, number>();
  const ctl = async (node: RabbitNode, ...args: string[]) => {
    const out = await new Deno.Command(`${bin}/rabbitmqctl`, {
      args: ["-n", node.name, ...args],
      env: base,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (!out.success) throw new Error(`rabbitmqctl -n ${node.name} ${args.join(" ")}: ${text}`);
    return text;
  };
  const stop = async () => {
    for (const pid of pids.values()) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
      await c.status;
    }
    if (!Deno.env.get("SPORES_KEEP_CLUSTER")) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (const node of nodes) {
      const short = node.name.split("@")[0]!;
      children.push(
        new Deno.Command(`${bin}/rabbitmq-server`, {
          env: {
            ...base,
            RABBITMQ_NODENAME: node.name,
            RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
            RABBITMQ_NODE_PORT: String(node.port),
            RABBITMQ_DIST_PORT: String(node.port + 1),
            RABBITMQ_MNESIA_BASE: `${dir}/${short}/mnesia`,
            RABBITMQ_LOG_BASE: `${dir}/${short}/log`,
            RABBITMQ_ENABLED_PLUGINS_FILE: `${dir}/plugins`,
            RABBITMQ_CONFIG_FILE: `${dir}/rabbitmq.conf`,
            ERL_FLAGS: "-kernel inet_dist_use_interface {127,0,0,1}",
          },
          cwd: dir,
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    for (const node of nodes) {
      // await_startup fails at once until the node has registered with epmd: retry until it answers.
      for (const end = Date.now() + 120_000;;) {
        try {
          await ctl(node, "await_startup", "--timeout", "120");
          break;
        } catch (e) {
          if (Date.now() > end) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      pids.set(node.name, Number((await ctl(node, "eval", "list_to_integer(os:getpid()).")).trim()));
    }
    for (const node of nodes.slice(1)) {
      await ctl(node, "stop_app");
      await ctl(node, "join_cluster", nodes[0]!.name);
      await ctl(node, "start_app");
    }
    await ctl(nodes[0]!, "await_online_nodes", "3");
    const [first, ...rest] = nodes;
    return {
      nodes,
      url: `amqp://guest:guest@127.0.0.1:${first!.port}?nodes=${
        rest.map((n) => `127.0.0.1:${n.port}`).join(",")
      }`,
      ctl,
      async kill(node) {
        const pid = pids.get(node.name);
        if (pid === undefined) return;
        Deno.kill(pid, "SIGKILL");
        pids.delete(node.name);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
