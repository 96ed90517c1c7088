/**
 * The options of each transport, by URL scheme: what `Agent.start` and
 * `openTransport` accept as `transportOptions` for a given `transport` URL.
 * With a URL written out (`"redis://127.0.0.1:6379"`), a misspelt option is
 * a type error; at run time every transport refuses an unknown option with a
 * `ConfigError` that names it. This module loads no broker client.
 *
 * @module
 */
import type { MemoryBrokerOptions } from "./memory.ts";
import type { AmqpTransportOptions } from "./amqp/options.ts";
import type { MqttTransportOptions } from "./mqtt/options.ts";
import type { NatsTransportOptions } from "./nats/options.ts";
import type { RedisTransportOptions } from "./redis/options.ts";
import type { SqsTransportOptions } from "./sqs/options.ts";
import type { StompTransportOptions } from "./stomp/options.ts";

export type {
  AmqpTransportOptions,
  MemoryBrokerOptions,
  MqttTransportOptions,
  NatsTransportOptions,
  RedisTransportOptions,
  SqsTransportOptions,
  StompTransportOptions,
};

/**
 * The options of each URL scheme's transport.
 *
 * @example
 * ```ts
 * import type { TransportOptionsByScheme } from "@spores/spores";
 * const options: TransportOptionsByScheme["redis"] = { prefix: "acme", blockMs: 500 };
 * console.assert(options.prefix === "acme");
 * ```
 */
export interface TransportOptionsByScheme {
  /** `memory://` */
  memory: MemoryBrokerOptions;
  /** `redis://` */
  redis: RedisTransportOptions;
  /** `rediss://` */
  rediss: RedisTransportOptions;
  /** `amqp://` */
  amqp: AmqpTransportOptions;
  /** `amqps://` */
  amqps: AmqpTransportOptions;
  /** `mqtt://` */
  mqtt: MqttTransportOptions;
  /** `mqtts://` */
  mqtts: MqttTransportOptions;
  /** `mqtt+ws://` */
  "mqtt+ws": MqttTransportOptions;
  /** `mqtt+wss://` */
  "mqtt+wss": MqttTransportOptions;
  /** `stomp://` */
  stomp: StompTransportOptions;
  /** `stomp+ssl://` */
  "stomp+ssl": StompTransportOptions;
  /** `stomp+ws://` */
  "stomp+ws": StompTransportOptions;
  /** `stomp+wss://` */
  "stomp+wss": StompTransportOptions;
  /** `sqs://` */
  sqs: SqsTransportOptions;
  /** `nats://` */
  nats: NatsTransportOptions;
  /** `tls://` (NATS over TLS) */
  tls: NatsTransportOptions;
}

/**
 * The options of any transport: what `transportOptions` may be when the URL
 * is not known before run time (a key unknown to every transport is still a
 * type error, and the transport refuses a key it does not know).
 *
 * @example
 * ```ts
 * import type { AnyTransportOptions } from "@spores/spores";
 * const options: AnyTransportOptions = { prefix: "acme" };
 * console.assert(options !== undefined);
 * ```
 */
export type AnyTransportOptions = TransportOptionsByScheme[keyof TransportOptionsByScheme];

/**
 * The options of the transport that `Url` names: `TransportOptionsFor<"redis://h:6379">` is
 * `RedisTransportOptions`. A URL known only at run time (`string`) gets {@linkcode AnyTransportOptions}.
 *
 * @example
 * ```ts
 * import type { TransportOptionsFor } from "@spores/spores";
 * const options: TransportOptionsFor<"nats://127.0.0.1:4222"> = { prefix: "acme", ackWaitMs: 5000 };
 * console.assert(options.prefix === "acme"); // `{ exchange: "acme" }` would be a type error here
 * ```
 */
export type TransportOptionsFor<Url extends string> = Url extends `${infer Scheme}://${string}`
  ? Lowercase<Scheme> extends keyof TransportOptionsByScheme ? TransportOptionsByScheme[Lowercase<Scheme>]
  : AnyTransportOptions
  : AnyTransportOptions;
