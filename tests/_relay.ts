// A loopback TCP relay in front of a broker, for tests of broken links: `cut()` closes every relayed
// connection (as a network failure would), `freeze()` keeps them open but forwards nothing (a silent link).

/** A running relay. */
export interface Relay {
  /** The port clients connect to. */
  readonly port: number;
  /** Closes every relayed connection; returns how many there were. */
  cut(): number;
  /** Stops forwarding (connections stay open) until `thaw()`. */
  freeze(): void;
  /** Forwards again what was held. */
  thaw(): void;
  /** Stops listening and closes every connection. */
  close(): void;
}

/** Starts a relay to 127.0.0.1:`target` on a free loopback port. */
export function startRelay(target: number): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pairs = new Set<[Deno.Conn, Deno.Conn]>();
  let frozen: PromiseWithResolvers<void> | undefined;
  const close = (pair: [Deno.Conn, Deno.Conn]) => {
    if (!pairs.delete(pair)) return;
    for (const c of pair) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  };
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const writer = to.writable.getWriter();
    for await (const chunk of from.readable) {
      if (frozen) await frozen.promise;
      await writer.write(chunk);
    }
  };
  (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port: target }).catch(() => undefined);
      if (!upstream) {
        client.close();
        continue;
      }
      const pair: [Deno.Conn, Deno.Conn] = [client, upstream];
      pairs.add(pair);
      pump(client, upstream).catch(() => {}).finally(() => close(pair));
      pump(upstream, client).catch(() => {}).finally(() => close(pair));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    cut() {
      const n = pairs.size;
      for (const pair of [...pairs]) close(pair);
      return n;
    },
    freeze() {
      frozen ??= Promise.withResolvers<void>();
    },
    thaw() {
      frozen?.resolve();
      frozen = undefined;
    },
    close() {
      this.thaw();
      try {
        listener.close();
      } catch { /* closed */ }
      for (const pair of [...pairs]) close(pair);
    },
  };
}
