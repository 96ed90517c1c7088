// The NATS target of bench/e2e.ts: JetStream through the NATS transport; its raw ceiling, nats.js used
// directly (PubAck per publish, a pull consumer with consume() and acknowledgements batched by AckPolicy.All);
// and removal of a round's stream and card bucket.
import type { Transport } from "../transports/transport.ts";

const URL = "nats://127.0.0.1:4222";
const SERVER = "127.0.0.1:4222";

async function rawStream(prefix: string) {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstream, jetstreamManager, StorageType } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: SERVER });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: prefix, subjects: [`${prefix}.>`], storage: StorageType.File }).catch(
    () => {},
  );
  return { nc, jsm, js: jetstream(nc) };
}

/** The `nats` entry of the targets of bench/e2e.ts. */
export const natsTarget = {
  name: "NATS JetStream (nats.js, PubAck per publish)",
  url: URL,
  open: async (prefix: string): Promise<Transport> =>
    (await import("../transports/nats.ts")).createTransport(URL, { prefix }),
  options: (prefix: string): Record<string, unknown> => ({ prefix }),
  raw: {
    receive: async (prefix: string, arrived: () => void): Promise<{ close(): Promise<void> }> => {
      const { AckPolicy } = await import("@nats-io/jetstream");
      const { nc, jsm, js } = await rawStream(prefix);
      await jsm.consumers.add(prefix, {
        durable_name: "raw_bob",
        filter_subject: `${prefix}.agent.bob.>`,
        ack_policy: AckPolicy.All,
      });
      const consumer = await js.consumers.get(prefix, "raw_bob");
      let unacked = 0;
      let last: { ack(): void } | undefined;
      const timer = setInterval(() => {
        if (last && unacked > 0) (last.ack(), unacked = 0);
      }, 5);
      const messages = await consumer.consume({
        max_messages: 256,
        callback: (m) => {
          last = m;
          if (++unacked >= 32) (m.ack(), unacked = 0);
          arrived();
        },
      });
      return {
        close: async () => {
          clearInterval(timer);
          last?.ack();
          await messages.close();
          await nc.drain();
        },
      };
    },
    sender: async (prefix: string, payload: Uint8Array) => {
      const { headers } = await import("@nats-io/transport-node");
      const { nc, js } = await rawStream(prefix);
      let seq = 0;
      return {
        send: () => {
          const h = headers(); // the same message properties as the transport's
          h.set("Spores-Priority", "4");
          h.set("Spores-Expires", String(Date.now() + 300_000));
          return js.publish(`${prefix}.agent.bob.blob`, payload, { msgID: `raw-${++seq}`, headers: h });
        },
        close: () => nc.drain(),
      };
    },
  },
  cleanup: async (prefix: string): Promise<void> => {
    const { NatsTransport } = await import("../transports/nats.ts");
    const t = await NatsTransport.connect(URL, { prefix });
    for (const name of [t.names.stream, `KV_${t.names.bucket}`]) {
      await t.jsm.streams.delete(name).catch(() => {});
    }
    await t.close();
  },
};
