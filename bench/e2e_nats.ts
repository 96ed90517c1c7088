// The NATS target of bench/e2e.ts: JetStream through the NATS transport, and removal of a round's stream
// and card bucket.
import type { Transport } from "../transports/transport.ts";

const URL = "nats://127.0.0.1:4222";

/** The `nats` entry of the targets of bench/e2e.ts. */
export const natsTarget = {
  name: "NATS JetStream (nats.js, PubAck per publish)",
  url: URL,
  open: async (prefix: string): Promise<Transport> =>
    (await import("../transports/nats.ts")).createTransport(URL, { prefix }),
  options: (prefix: string): Record<string, unknown> => ({ prefix }),
  cleanup: async (prefix: string): Promise<void> => {
    const { NatsTransport } = await import("../transports/nats.ts");
    const t = await NatsTransport.connect(URL, { prefix });
    for (const name of [t.names.stream, `KV_${t.names.bucket}`]) {
      await t.jsm.streams.delete(name).catch(() => {});
    }
    await t.close();
  },
};
