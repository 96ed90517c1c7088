// The STOMP target of bench/e2e.ts: RabbitMQ's STOMP adapter through the STOMP transport, over TCP by
// default (`--stomp-url=stomp+ws://guest:guest@127.0.0.1:15674/ws` for Web-STOMP). Plaintext and secure rounds
// make the same stompjs calls: a SEND with a RECEIPT per message, client-individual ACKs.
import type { Transport } from "../transports/transport.ts";

/** A bench target (the shape bench/e2e.ts expects). */
export interface StompBenchTarget {
  name: string;
  url: string;
  open(prefix: string): Promise<Transport>;
  options(prefix: string): Record<string, unknown>;
  cleanup(prefix: string): Promise<void>;
}

/** The STOMP target at `url` (default plain STOMP on 127.0.0.1:61613). */
export function stompTarget(url = "stomp://guest:guest@127.0.0.1:61613"): StompBenchTarget {
  return {
    name: `RabbitMQ STOMP (@stomp/stompjs, ${url.startsWith("stomp+ws") ? "Web-STOMP" : "TCP"}, receipts)`,
    url,
    open: async (prefix) => (await import("../transports/stomp.ts")).createTransport(url, { prefix }),
    options: (prefix) => ({ prefix }),
    cleanup: async (p) => {
      const { connect } = await import("amqplib");
      const conn = await connect("amqp://guest:guest@127.0.0.1:5672");
      const ch = await conn.createChannel();
      for (const id of ["alice", "bob"]) {
        for (const q of [`${p}.agent.${id}`, `${p}.dead.${id}`, `${p}.card.${id}`]) await ch.deleteQueue(q);
      }
      await conn.close();
    },
  };
}
