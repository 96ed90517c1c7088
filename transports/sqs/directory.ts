/**
 * Agent cards in SQS: a card lives in the **tags of its agent's queue**
 * (`{prefix}_a-<id>`), base64 in chunks of 256 characters (`spores:card:0`,
 * `spores:card:1`, ..., with their count in `spores:card:n`), so that a peer
 * discovers an agent and its keys from the queue it sends to, with no other
 * service. SQS allows 50 tags per queue, so a card may be up to 9 KiB (an
 * Ed25519 + X-Wing card is about 1.4 KiB; a hybrid ML-DSA-65 card about 7 KiB).
 * Each publication is also sent to the SNS topic `{prefix}_k-cards`, which
 * `watch` reads through a temporary queue of its own.
 *
 * Cards are verified on every read: the service storing them is not trusted
 * for anything, and a card filed under another agent's queue is refused.
 *
 * @module
 */
import {
  DeleteMessageCommand,
  DeleteQueueCommand,
  GetQueueUrlCommand,
  ListQueueTagsCommand,
  ReceiveMessageCommand,
  TagQueueCommand,
  UntagQueueCommand,
} from "@aws-sdk/client-sqs";
import { PublishCommand, UnsubscribeCommand } from "@aws-sdk/client-sns";
import { base64 } from "../../crypto/bytes.ts";
import { ProtocolError, TransportError } from "../../crypto/errors.ts";
import { type AgentCard, verifyCard } from "../../spore/card.ts";
import type { CardListener, Directory } from "../../spore/directory.ts";
import { checkId } from "../../spore/limits.ts";
import type { SqsTransport } from "./transport.ts";

const TAG = "spores:card:";
const CHUNK = 256;
/** Tags a card may use (SQS allows 50 per queue; two are left for the operator). */
const MAX_CHUNKS = 47;

/** Largest card the directory stores, in bytes. */
export const MAX_SQS_CARD_BYTES: number = Math.floor((MAX_CHUNKS * CHUNK) / 4) * 3;

/**
 * A card directory kept in SQS queue tags.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/sqs";
 * const transport = await createTransport("sqs://eu-west-1");
 * const card = await transport.directory?.lookup("bob");
 * ```
 */
export class SqsDirectory implements Directory {
  readonly #t: SqsTransport;
  readonly #listeners = new Set<CardListener>();
  readonly #lookups = new Map<string, Promise<AgentCard | undefined>>();
  #watcher: Promise<{ close(): Promise<void> }> | undefined;

  /**
   * Cards of the agents of `transport`.
   *
   * @param transport The SQS transport.
   */
  constructor(transport: SqsTransport) {
    this.#t = transport;
  }

  /** Verifies `card`, stores it in the tags of its agent's queue (created if missing) and announces it. */
  async publish(card: Uint8Array): Promise<void> {
    const verified = await verifyCard(card);
    const encoded = base64.encode(card);
    const chunks = Math.ceil(encoded.length / CHUNK);
    if (chunks > MAX_CHUNKS) {
      throw new TransportError(
        `card of ${card.length} bytes over the ${MAX_SQS_CARD_BYTES} bytes SQS queue tags can hold`,
      );
    }
    const tags: Record<string, string> = { [`${TAG}n`]: String(chunks) };
    for (let i = 0; i < chunks; i++) tags[`${TAG}${i}`] = encoded.slice(i * CHUNK, (i + 1) * CHUNK);
    try {
      const q = await this.#t.agentQueue(verified.id);
      await this.#t.sqs.send(new TagQueueCommand({ QueueUrl: q.url, Tags: tags }));
      const old = await this.#t.sqs.send(new ListQueueTagsCommand({ QueueUrl: q.url }));
      const stale = Object.keys(old.Tags ?? {}).filter((k) => k.startsWith(TAG) && !(k in tags));
      if (stale.length > 0) {
        await this.#t.sqs.send(new UntagQueueCommand({ QueueUrl: q.url, TagKeys: stale }));
      }
      await this.#t.sns.send(
        new PublishCommand({
          TopicArn: await this.#t.topic("k", "cards"),
          Message: "card",
          MessageAttributes: { s: { DataType: "Binary", BinaryValue: card } },
          MessageGroupId: this.#t.fifo ? verified.id : undefined,
        }),
      );
    } catch (cause) {
      throw new TransportError("SQS refused the card", { cause });
    }
  }

  /** The verified card of `id`, read from its queue's tags. */
  lookup(id: string): Promise<AgentCard | undefined> {
    checkId(id, "agent id");
    let pending = this.#lookups.get(id);
    if (!pending) {
      pending = this.#lookup(id).finally(() => this.#lookups.delete(id));
      this.#lookups.set(id, pending);
    }
    return pending;
  }

  async #lookup(id: string): Promise<AgentCard | undefined> {
    // A read that overlaps a publication can see chunks of two cards: it fails verification and is read again.
    for (let attempt = 0;; attempt++) {
      const bytes = await this.#read(id);
      if (!bytes) return undefined;
      try {
        const card = await verifyCard(bytes);
        if (card.id !== id) throw new ProtocolError(`card filed under ${id} is for ${card.id}`);
        return card;
      } catch (e) {
        if (attempt >= 2) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async #read(id: string): Promise<Uint8Array | undefined> {
    let tags: Record<string, string>;
    try {
      let url: string | undefined;
      try {
        url = (await this.#t.sqs.send(new GetQueueUrlCommand({ QueueName: this.#t.queueName("a", id) })))
          .QueueUrl;
      } catch (e) {
        if (/QueueDoesNotExist|NonExistentQueue/.test((e as Error)?.name ?? "")) return undefined;
        throw e;
      }
      tags = (await this.#t.sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags ?? {};
    } catch (cause) {
      throw new TransportError("cannot read cards from SQS", { cause });
    }
    const count = tags[`${TAG}n`];
    if (count === undefined) return undefined;
    if (!/^[1-9][0-9]?$/.test(count) || Number(count) > MAX_CHUNKS) {
      throw new ProtocolError(`card tags of ${id} are malformed`);
    }
    let encoded = "";
    for (let i = 0; i < Number(count); i++) {
      const chunk = tags[`${TAG}${i}`];
      if (chunk === undefined || chunk.length > CHUNK) {
        throw new ProtocolError(`card tags of ${id} are malformed`);
      }
      encoded += chunk;
    }
    try {
      return base64.decode(encoded);
    } catch (cause) {
      throw new ProtocolError(`card tags of ${id} are not base64`, { cause });
    }
  }

  /** Calls `listener` with each card published from now on (verified; bad ones are skipped). */
  watch(listener: CardListener): () => void {
    this.#listeners.add(listener);
    this.#watcher ??= this.#startWatching();
    this.#watcher.catch(() => {});
    return () => this.#listeners.delete(listener);
  }

  async #startWatching(): Promise<{ close(): Promise<void> }> {
    const t = this.#t;
    const topic = await t.topic("k", "cards");
    const owner = `w${crypto.randomUUID()}`;
    const dead = await t.deadLetterQueue(owner);
    const q = await t.subscribedQueue(t.queueName("w", owner), topic, dead.arn);
    const abort = new AbortController();
    const loop = (async () => {
      while (!abort.signal.aborted) {
        try {
          const res = await t.sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: q.url,
              MaxNumberOfMessages: 10,
              WaitTimeSeconds: 20,
              MessageAttributeNames: ["s"],
            }),
            { abortSignal: abort.signal },
          );
          for (const m of res.Messages ?? []) {
            const bytes = m.MessageAttributes?.s?.BinaryValue;
            if (bytes) {
              verifyCard(new Uint8Array(bytes)).then((card) => {
                for (const l of this.#listeners) l(card);
              }).catch(() => {});
            }
            if (m.ReceiptHandle) {
              await t.sqs.send(
                new DeleteMessageCommand({ QueueUrl: q.url, ReceiptHandle: m.ReceiptHandle }),
              ).catch(() => {});
            }
          }
        } catch {
          if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 500));
        }
      }
    })();
    return {
      close: async () => {
        abort.abort();
        await loop;
        if (q.subscription) {
          await t.sns.send(new UnsubscribeCommand({ SubscriptionArn: q.subscription })).catch(() => {});
        }
        for (const url of [q.url, dead.url]) {
          await t.sqs.send(new DeleteQueueCommand({ QueueUrl: url })).catch(() => {});
        }
        t.forget(t.queueName("w", owner));
        t.forget(t.queueName("d", owner));
      },
    };
  }

  /** Stops watching (and removes the watcher's queue). */
  async close(): Promise<void> {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w) await (await w.catch(() => ({ close: async () => {} }))).close();
  }
}
