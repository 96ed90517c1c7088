/**
 * Where spores go on RabbitMQ's STOMP adapter, under a configurable prefix
 * (default `spores`). Two topologies:
 *
 * **`"stomp"`** (default): everything the transport needs is declared over
 * STOMP itself, on the broker's built-in exchanges.
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
 * queue           {prefix}.card.<id>                     last-value queue of an agent's card (x-max-length 1;
 *                                                        RabbitMQ's default overflow drops the older card)
 * SEND/SUBSCRIBE  /topic/{prefix}.cards                  announcements of new cards (non-durable)
 * ```
 *
 * **`"amqp"`**: the topology of the AMQP transport (`transports/amqp/`) on
 * the exchange `{prefix}`, so STOMP and AMQP agents of one deployment talk to
 * each other. The exchanges `{prefix}`, `{prefix}.dlx` and `{prefix}.cards`
 * must exist (the AMQP transport declares them; STOMP cannot).
 *
 * ```text
 * SEND       /exchange/{prefix}/agent.<id>.<type>              routed to {prefix}.agent.<id>
 * SUBSCRIBE  /exchange/{prefix}/agent.<id>.#                   durable, x-queue-name {prefix}.agent.<id>,
 *                                                              x-max-priority 9, x-dead-letter-exchange {prefix}.dlx
 * SEND       /exchange/{prefix}/broadcast.<channel>.<type>
 * SUBSCRIBE  /exchange/{prefix}/broadcast.<channel>.#          durable, x-queue-name {prefix}.channel.<channel>.<member>
 * SUBSCRIBE  /exchange/{prefix}.dlx/agent.<id>.#               durable, x-queue-name {prefix}.dead.<id>
 * SEND/SUBSCRIBE  /queue/{prefix}.stomp-card.<id>                 cards of agents that use STOMP
 * SEND/SUBSCRIBE  /exchange/{prefix}.cards                         announcements, as the AMQP directory makes them
 * ```
 *
 * The AMQP directory's card queues carry `x-overflow: drop-head`, an argument
 * RabbitMQ's STOMP adapter (3.10) cannot declare, so a queue declared by one
 * side would be refused to the other: STOMP and AMQP agents that must find
 * each other's cards share a directory given to both (`Agent.start({ directory })`,
 * e.g. a `FileDirectory`).
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

/** A destination with the headers that declare what it needs. */
export interface Destination {
  /** The STOMP destination. */
  destination: string;
  /** Declaration headers (durability, queue name, queue arguments). */
  headers: Headers;
}

/** Which queues and exchanges spores use. */
export type StompTopology = "stomp" | "amqp";

/** Queue type of agent, dead-letter and member queues: `"classic"` (with priorities) or `"quorum"` (replicated). */
export type StompQueueType = "classic" | "quorum";

const MAX_QUEUE_NAME = 255;

function name(value: string): string {
  if (new TextEncoder().encode(value).length > MAX_QUEUE_NAME) {
    throw new ConfigError(
      `queue name of ${value.length} bytes is over RabbitMQ's limit of ${MAX_QUEUE_NAME}`,
    );
  }
  return value;
}

const DURABLE = { durable: "true", "auto-delete": "false" } as const;

/**
 * The destinations and queue arguments of one prefix.
 *
 * @example
 * ```ts
 * import { StompDestinations } from "@spores/spores/stomp";
 * const d = new StompDestinations("spores");
 * console.assert(d.agentSubscription("bob").destination === "/queue/spores.agent.bob");
 * ```
 */
export class StompDestinations {
  /** The prefix of every queue and routing key (the exchange, in the `"amqp"` topology). */
  readonly prefix: string;
  /** The topology. */
  readonly topology: StompTopology;
  /** The queue type of agent, dead-letter and member queues. */
  readonly queueType: StompQueueType;

  /**
   * Names under `prefix`.
   *
   * @param prefix 1..64 characters of `[A-Za-z0-9._:-]`.
   * @param topology `"stomp"` (default) or `"amqp"`.
   * @param queueType `"classic"` (default) or `"quorum"`.
   */
  constructor(prefix: string, topology: StompTopology = "stomp", queueType: StompQueueType = "classic") {
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) {
      throw new ConfigError("prefix must be 1..64 of [A-Za-z0-9._:-]");
    }
    if (topology !== "stomp" && topology !== "amqp") {
      throw new ConfigError('topology must be "stomp" or "amqp"');
    }
    if (queueType !== "classic" && queueType !== "quorum") {
      throw new ConfigError('queueType must be "classic" or "quorum"');
    }
    this.prefix = prefix;
    this.topology = topology;
    this.queueType = queueType;
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
    const kind = this.topology === "amqp" ? "stomp-card" : "card";
    return name(`${this.prefix}.${kind}.${checkId(id, "agent id")}`);
  }

  /** The durable queue of `member` of `channel`. */
  memberQueue(channel: string, member: string): string {
    return name(`${this.prefix}.channel.${checkId(channel, "channel")}.${checkId(member, "channel member")}`);
  }

  /** Queue arguments: quorum when asked, else priorities where `priority`. */
  #args(args: Headers, priority: boolean): Headers {
    if (this.queueType === "quorum") return { ...args, "x-queue-type": "quorum" };
    return priority ? { ...args, "x-max-priority": "9" } : args;
  }

  #type(type: string | undefined): string {
    return type === undefined ? "spore" : checkId(type, "type").replaceAll(".", "_");
  }

  /** Where a spore for agent `id` is sent (with the headers that declare its queue, if SEND declares it). */
  agentSend(id: string, type?: string): Destination {
    if (this.topology === "amqp") {
      return {
        destination: `/exchange/${this.prefix}/agent.${checkId(id, "agent")}.${this.#type(type)}`,
        headers: {},
      };
    }
    return this.agentSubscription(id);
  }

  /** Agent `id`'s queue, as its subscriber declares it. */
  agentSubscription(id: string): Destination {
    const queue = this.agentQueue(id);
    if (this.topology === "amqp") {
      return {
        destination: `/exchange/${this.prefix}/agent.${id}.#`,
        headers: this.#args(
          { ...DURABLE, id: queue, "x-queue-name": queue, "x-dead-letter-exchange": `${this.prefix}.dlx` },
          true,
        ),
      };
    }
    return {
      destination: `/queue/${queue}`,
      headers: this.#args(
        { ...DURABLE, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": this.deadQueue(id) },
        true,
      ),
    };
  }

  /** The dead-letter queue of `id`, as a durable queue to declare (and read). */
  dead(id: string): Destination {
    const queue = this.deadQueue(id);
    if (this.topology === "amqp") {
      return {
        destination: `/exchange/${this.prefix}.dlx/agent.${id}.#`,
        headers: this.#args({ ...DURABLE, id: queue, "x-queue-name": queue }, false),
      };
    }
    return { destination: `/queue/${queue}`, headers: this.#args({ ...DURABLE }, false) };
  }

  /** What must exist before spores for `id` are sent: declared once, by a SUBSCRIBE on a short-lived connection. */
  declarations(id: string): Destination[] {
    return this.topology === "amqp" ? [this.agentSubscription(id), this.dead(id)] : [this.dead(id)];
  }

  /** Where a broadcast on `channel` is sent. */
  channelSend(channel: string, type?: string): string {
    checkId(channel, "channel");
    return this.topology === "amqp"
      ? `/exchange/${this.prefix}/broadcast.${channel}.${this.#type(type)}`
      : `/topic/${this.prefix}.broadcast.${channel}`;
  }

  /** The durable subscription of `member` to `channel`. */
  memberSubscription(channel: string, member: string): Destination {
    const queue = this.memberQueue(channel, member);
    if (this.topology === "amqp") {
      return {
        destination: `/exchange/${this.prefix}/broadcast.${channel}.#`,
        headers: {
          ...DURABLE,
          id: queue,
          "x-queue-name": queue,
          "x-dead-letter-exchange": `${this.prefix}.dlx`,
        },
      };
    }
    return {
      destination: `/topic/${this.prefix}.broadcast.${channel}`,
      headers: this.#args({
        ...DURABLE,
        id: queue,
        "x-queue-name": queue,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": this.deadQueue(member),
      }, false),
    };
  }

  /** The last-value queue of `id`'s card. */
  card(id: string): Destination {
    return {
      destination: `/queue/${this.cardQueue(id)}`,
      // RabbitMQ's default overflow behaviour is drop-head: the new card replaces the old.
      headers: { ...DURABLE, "x-max-length": "1" },
    };
  }

  /**
   * Where a lookup reads `id`'s card: the same queue, named so that RabbitMQ
   * never creates it (a lookup of an id with no card is answered NOT_FOUND at
   * once and leaves no queue behind).
   */
  cardLookup(id: string): string {
    return `/amq/queue/${this.cardQueue(id)}`;
  }

  /** Where new cards are announced. */
  get cards(): string {
    return this.topology === "amqp" ? `/exchange/${this.prefix}.cards` : `/topic/${this.prefix}.cards`;
  }
}
