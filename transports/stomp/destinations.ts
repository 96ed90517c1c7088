/**
 * Where spores go on RabbitMQ's STOMP adapter, under a configurable prefix
 * (default `spores`):
 *
 * ```text
 * SEND/SUBSCRIBE  /queue/{prefix}.agent.<id>             a durable queue per agent, declared by SEND and SUBSCRIBE
 *                                                        with x-max-priority 9 and dead letters to
 *                                                        {prefix}.dead.<id> (default exchange)
 * SEND            /topic/{prefix}.broadcast.<channel>    amq.topic, routing key {prefix}.broadcast.<channel>
 * SUBSCRIBE       /topic/{prefix}.broadcast.<channel>    durable:true, auto-delete:false, id and x-queue-name
 *                                                        {prefix}.channel.<channel>.<member>: one durable queue per
 *                                                        member, kept while the member is away
 * queue           {prefix}.dead.<id>                     an agent's dead letters (expired, or given up on)
 * queue           {prefix}.card.<id>                     last-value queue of an agent's card (x-max-length 1)
 * SEND/SUBSCRIBE  /topic/{prefix}.cards                  announcements of new cards (non-durable)
 * ```
 *
 * Every id is checked (`[A-Za-z0-9._:-]{1,128}`): it has no `/`, so no id can
 * leave its destination, and a name over RabbitMQ's 255-byte limit is a
 * `ConfigError`.
 *
 * @module
 */
import { ConfigError } from "../../crypto/errors.ts";
import { checkId } from "../../spore/limits.ts";

/** STOMP headers. */
export type Headers = Record<string, string>;

const MAX_QUEUE_NAME = 255;

function name(value: string): string {
  if (new TextEncoder().encode(value).length > MAX_QUEUE_NAME) {
    throw new ConfigError(
      `queue name of ${value.length} bytes is over RabbitMQ's limit of ${MAX_QUEUE_NAME}`,
    );
  }
  return value;
}

/** The destinations and queue arguments of one prefix. */
export class StompDestinations {
  /** The prefix of every queue and routing key. */
  readonly prefix: string;

  /**
   * Names under `prefix`.
   *
   * @param prefix 1..64 characters of `[A-Za-z0-9._:-]`.
   */
  constructor(prefix: string) {
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) {
      throw new ConfigError("prefix must be 1..64 of [A-Za-z0-9._:-]");
    }
    this.prefix = prefix;
  }

  /** The queue of agent `id`. */
  agentQueue(id: string): string {
    return name(`${this.prefix}.agent.${checkId(id, "agent")}`);
  }

  /** The dead-letter queue of agent `id`. */
  deadQueue(id: string): string {
    return name(`${this.prefix}.dead.${checkId(id, "agent")}`);
  }

  /** The card queue of agent `id`. */
  cardQueue(id: string): string {
    return name(`${this.prefix}.card.${checkId(id, "agent id")}`);
  }

  /** The durable queue of `member` of `channel`. */
  memberQueue(channel: string, member: string): string {
    return name(`${this.prefix}.channel.${checkId(channel, "channel")}.${checkId(member, "channel member")}`);
  }

  /** Destination and declaration headers of agent `id`'s queue (the same for SEND and SUBSCRIBE). */
  agent(id: string): { destination: string; headers: Headers } {
    const queue = this.agentQueue(id);
    return {
      destination: `/queue/${queue}`,
      headers: {
        durable: "true",
        "auto-delete": "false",
        "x-max-priority": "9",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": this.deadQueue(id),
      },
    };
  }

  /** The dead-letter queue of `id`, as a durable queue to declare. */
  dead(id: string): { destination: string; headers: Headers } {
    return {
      destination: `/queue/${this.deadQueue(id)}`,
      headers: { durable: "true", "auto-delete": "false" },
    };
  }

  /** Where a broadcast on `channel` is sent. */
  channel(channel: string): string {
    return `/topic/${this.prefix}.broadcast.${checkId(channel, "channel")}`;
  }

  /** The durable subscription of `member` to `channel`. */
  member(channel: string, member: string): { destination: string; headers: Headers } {
    const queue = this.memberQueue(channel, member);
    return {
      destination: this.channel(channel),
      headers: {
        id: queue,
        durable: "true",
        "auto-delete": "false",
        "x-queue-name": queue,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": this.deadQueue(member),
      },
    };
  }

  /** The last-value queue of `id`'s card. */
  card(id: string): { destination: string; headers: Headers } {
    return {
      destination: `/queue/${this.cardQueue(id)}`,
      headers: { durable: "true", "auto-delete": "false", "x-max-length": "1", "x-overflow": "drop-head" },
    };
  }

  /** Where new cards are announced. */
  get cards(): string {
    return `/topic/${this.prefix}.cards`;
  }
}
