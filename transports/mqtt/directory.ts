/**
 * Agent cards as retained MQTT messages on `{prefix}/cards/{agent}`. A lookup
 * subscribes to the agent's card topic and unsubscribes again: the broker
 * sends a retained message before it answers the unsubscribe, so what arrived
 * by then is the current card. `watch` subscribes to `{prefix}/cards/+`.
 * Cards are verified on every read, and a card filed under another agent's
 * topic is refused: the broker is never trusted for them.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { MqttClient } from "mqtt";
import { ProtocolError, TransportError } from "../../crypto/errors.ts";
import { type AgentCard, verifyCard } from "../../spore/card.ts";
import type { CardListener, Directory } from "../../spore/directory.ts";
import { cardTopic } from "./topics.ts";

/**
 * A card directory kept in an MQTT broker's retained messages.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/mqtt";
 * const transport = await createTransport("mqtt://127.0.0.1:1883");
 * const card = await transport.directory?.lookup("bob");
 * await transport.close();
 * ```
 */
export class MqttDirectory implements Directory {
  readonly #client: MqttClient;
  readonly #prefix: string;
  readonly #listeners = new Set<CardListener>();
  readonly #lookups = new Map<string, Promise<AgentCard | undefined>>();
  readonly #arrived = new Map<string, Uint8Array[]>();
  #watching = false;
  /** Cards refused when read: bad signature, or filed under another agent's topic. */
  refused = 0;

  /**
   * Cards under `prefix`, through a connected client.
   *
   * @param client A connected client of the transport.
   * @param prefix Topic prefix.
   */
  constructor(client: MqttClient, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
    client.on("message", (topic, payload, packet) => {
      if (!topic.startsWith(`${prefix}/cards/`)) return;
      const bytes = new Uint8Array(payload);
      this.#arrived.get(topic)?.push(bytes);
      if (this.#watching && !packet.retain && this.#listeners.size > 0) {
        const id = topic.slice(prefix.length + 7);
        this.#verify(id, bytes).then((card) => {
          for (const l of this.#listeners) l(card);
        }).catch(() => this.refused++);
      }
    });
    // Subscriptions of a clean session end with its connection: watch again after a reconnection.
    client.on("connect", () => {
      if (this.#watching) void client.subscribeAsync(`${prefix}/cards/+`, { qos: 0 }).catch(() => {});
    });
  }

  async #verify(id: string, bytes: Uint8Array): Promise<AgentCard> {
    const card = await verifyCard(bytes);
    if (card.id !== id) throw new ProtocolError(`card filed under ${id} is for ${card.id}`);
    return card;
  }

  /** Verifies `card` and publishes it as the retained message of its agent's card topic. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    try {
      await this.#client.publishAsync(
        cardTopic(this.#prefix, verified.id),
        Buffer.from(card.buffer, card.byteOffset, card.byteLength),
        { qos: 1, retain: true },
      );
    } catch (cause) {
      throw new TransportError("the MQTT broker refused the card", { cause });
    }
  }

  /** The verified card of `id` (a `ProtocolError` or `SecurityError` if the retained card is not valid). */
  lookup(id: string): Promise<AgentCard | undefined> {
    const topic = cardTopic(this.#prefix, id);
    let pending = this.#lookups.get(topic);
    if (!pending) {
      pending = this.#lookup(id, topic).finally(() => this.#lookups.delete(topic));
      this.#lookups.set(topic, pending);
    }
    return pending;
  }

  async #lookup(id: string, topic: string): Promise<AgentCard | undefined> {
    const got: Uint8Array[] = [];
    this.#arrived.set(topic, got);
    try {
      await this.#client.subscribeAsync(topic, { qos: 0 });
      await this.#client.unsubscribeAsync(topic);
    } catch (cause) {
      throw new TransportError("cannot read cards from the MQTT broker", { cause });
    } finally {
      this.#arrived.delete(topic);
    }
    const bytes = got.at(-1);
    if (!bytes || bytes.length === 0) return undefined;
    try {
      return await this.#verify(id, bytes);
    } catch (e) {
      this.refused++;
      throw e;
    }
  }

  /** Calls `listener` with each card published from now on (verified; bad ones are skipped and counted). */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    if (!this.#watching) {
      this.#watching = true;
      void this.#client.subscribeAsync(`${this.#prefix}/cards/+`, { qos: 0 }).catch(() => {});
    }
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Removes the retained card of `id` (an agent retired for good). */
  async remove(id: string): Promise<void> {
    try {
      await this.#client.publishAsync(cardTopic(this.#prefix, id), Buffer.alloc(0), { qos: 1, retain: true });
    } catch (cause) {
      throw new TransportError("the MQTT broker refused to remove the card", { cause });
    }
  }
}
