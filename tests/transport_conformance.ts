// The transport conformance suite. A transport runs it with one line:
//   transportConformance({ name: "memory", open: () => createTransport("memory://conformance") });
import assert from "node:assert/strict";
import type { Address, Delivery, Transport } from "../mod.ts";

/** What the suite needs to know about a transport. */
export interface ConformanceTarget {
  /** Name in test titles. */
  name: string;
  /** Opens a new connection to the same broker. */
  open(): Promise<Transport>;
  /** Extra ms to allow for broker round trips. Default 0. */
  slackMs?: number;
  /** Test options (e.g. sanitizers off for clients that keep timers). */
  testOptions?: Partial<Deno.TestDefinition>;
  /** Whether the broker is reachable (throws under CI when it is not); default always. */
  available?: () => Promise<boolean>;
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const unique = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects deliveries until `count` arrived or `timeoutMs` passed. */
async function collect(
  t: Transport,
  from: Address,
  count: number,
  timeoutMs: number,
  options: { member?: string; prefetch?: number; ack?: (d: Delivery, i: number) => Promise<void> | void } =
    {},
): Promise<Delivery[]> {
  const got: Delivery[] = [];
  const done = Promise.withResolvers<void>();
  const sub = await t.subscribe(from, async (d) => {
    const i = got.length;
    got.push(d);
    if (options.ack) await options.ack(d, i);
    else await d.ack();
    if (got.length >= count) done.resolve();
  }, { member: options.member, prefetch: options.prefetch });
  const timer = setTimeout(() => done.resolve(), timeoutMs);
  await done.promise;
  clearTimeout(timer);
  await sub.close();
  return got;
}

/** Registers the conformance tests of a transport. */
export function transportConformance(target: ConformanceTarget): void {
  const slack = target.slackMs ?? 0;
  const test = (name: string, fn: () => Promise<void>) =>
    Deno.test({
      name: `${target.name} conformance: ${name}`,
      fn: async () => {
        if (target.available && !(await target.available())) return;
        await fn();
      },
      ...target.testOptions,
    });

  test("delivers published bytes to the agent's subscriber", async () => {
    const t = await target.open();
    try {
      const agent = unique("a");
      await collect(t, { agent }, 0, 50); // the agent exists (has subscribed once)
      const sent = ["one", "two", "three"];
      for (const s of sent) await t.publish({ agent }, enc(s));
      const got = await collect(t, { agent }, 3, 2000 + slack);
      assert.deepEqual(got.map((d) => dec(d.bytes)).sort(), [...sent].sort());
      assert.ok(got.every((d) => d.redeliveries === 0));
      // Binary with zero bytes and every byte value survives.
      const binary = new Uint8Array(256).map((_, i) => i);
      await t.publish({ agent }, binary);
      const [b] = await collect(t, { agent }, 1, 2000 + slack);
      assert.deepEqual(b?.bytes, binary);
    } finally {
      await t.close();
    }
  });

  test("nack leads to redelivery with a count; ack ends it", async () => {
    const t = await target.open();
    try {
      const agent = unique("a");
      await collect(t, { agent }, 0, 50);
      await t.publish({ agent }, enc("retry me"));
      const got = await collect(t, { agent }, 3, 5000 + slack, {
        ack: (d, i) => (i < 2 ? d.nack() : d.ack()),
      });
      assert.equal(got.length, 3);
      assert.ok(got.every((d) => dec(d.bytes) === "retry me"));
      assert.equal(got[0]!.redeliveries, 0);
      assert.ok(got[2]!.redeliveries >= 2, `redeliveries ${got[2]!.redeliveries}`);
      const after = await collect(t, { agent }, 1, 500 + slack);
      assert.equal(after.length, 0, "an acknowledged message came back");
    } finally {
      await t.close();
    }
  });

  test("drops a message whose TTL passed before delivery", async () => {
    const t = await target.open();
    try {
      if (!t.capabilities.ttl) return;
      const agent = unique("a");
      await collect(t, { agent }, 0, 50);
      await t.publish({ agent }, enc("short"), { ttlMs: 50 });
      await t.publish({ agent }, enc("long"), { ttlMs: 60_000 });
      await sleep(300 + slack);
      const got = await collect(t, { agent }, 2, 1500 + slack);
      assert.deepEqual(got.map((d) => dec(d.bytes)), ["long"]);
    } finally {
      await t.close();
    }
  });

  test("delivers higher priority first from a backlog", async () => {
    const t = await target.open();
    try {
      if (!t.capabilities.priority) return;
      const agent = unique("a");
      // Create the queue, then leave a backlog.
      await collect(t, { agent }, 0, 50);
      for (const p of [1, 5, 9, 3]) await t.publish({ agent }, enc(`p${p}`), { priority: p });
      await sleep(100 + slack);
      const got = await collect(t, { agent }, 4, 3000 + slack, { prefetch: 1 });
      assert.deepEqual(got.map((d) => dec(d.bytes)), ["p9", "p5", "p3", "p1"]);
    } finally {
      await t.close();
    }
  });

  test("fans a channel out to every member, including one that was away", async () => {
    const t = await target.open();
    try {
      if (!t.capabilities.broadcast) return;
      const channel = unique("c");
      // Both members join, then m1 goes away.
      await collect(t, { channel }, 0, 50, { member: "m1" });
      await collect(t, { channel }, 0, 50, { member: "m2" });
      await t.publish({ channel }, enc("first"));
      await t.publish({ channel }, enc("second"));
      const m2 = await collect(t, { channel }, 2, 3000 + slack, { member: "m2" });
      assert.deepEqual(m2.map((d) => dec(d.bytes)).sort(), ["first", "second"]);
      const m1 = await collect(t, { channel }, 2, 3000 + slack, { member: "m1" });
      assert.deepEqual(m1.map((d) => dec(d.bytes)).sort(), ["first", "second"]);
    } finally {
      await t.close();
    }
  });

  test("close with messages in flight loses nothing", async () => {
    const a = await target.open();
    const agent = unique("a");
    let b: Transport | undefined;
    try {
      await collect(a, { agent }, 0, 50);
      await a.publish({ agent }, enc("in flight"));
      const received = Promise.withResolvers<void>();
      await a.subscribe({ agent }, () => {
        received.resolve(); // never acknowledged
        return Promise.resolve();
      });
      await received.promise;
      await a.close();
      b = await target.open();
      const got = await collect(b, { agent }, 1, 10_000 + slack);
      assert.deepEqual(got.map((d) => dec(d.bytes)), ["in flight"]);
    } finally {
      await a.close();
      await b?.close();
    }
  });

  test("a new connection receives what was published while none was subscribed", async () => {
    const a = await target.open();
    const agent = unique("a");
    await collect(a, { agent }, 0, 50);
    await a.close();
    const b = await target.open();
    let c: Transport | undefined;
    try {
      await b.publish({ agent }, enc("while away"));
      c = await target.open();
      const got = await collect(c, { agent }, 1, 3000 + slack);
      assert.deepEqual(got.map((d) => dec(d.bytes)), ["while away"]);
    } finally {
      await b.close();
      await c?.close();
    }
  });
}
