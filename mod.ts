/**
 * Spores: end-to-end encrypted, signed, post-quantum messaging for software
 * agents over the message brokers they already run.
 *
 * This entry point is pure: it needs no Deno permission and loads no broker
 * client. Transports are separate entry points (`@spores/spores/redis`, ...).
 *
 * @example
 * ```ts
 * import { Identity, provider } from "@spores/spores";
 * const bob = await Identity.generate();
 * const { xwing } = await provider();
 * const { ciphertext, sharedSecret } = await xwing.encapsulate(bob.kemKey.publicKey);
 * const opened = await bob.decapsulate(ciphertext);
 * console.assert(opened.every((b, i) => b === sharedSecret[i]));
 * ```
 *
 * @module
 */
export * from "./crypto/mod.ts";
export * from "./spore/mod.ts";
export * from "./transports/transport.ts";
export * from "./transports/events.ts";
export type {
  AmqpTransportOptions,
  AnyTransportOptions,
  MemoryBrokerOptions,
  MqttTransportOptions,
  NatsTransportOptions,
  RedisTransportOptions,
  SqsTransportOptions,
  StompTransportOptions,
  TransportOptionsByScheme,
  TransportOptionsFor,
} from "./transports/options.ts";
export * from "./transports/connect_error.ts";
