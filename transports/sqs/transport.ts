/**
 * The Amazon SQS transport (`@aws-sdk/client-sqs`, with `@aws-sdk/client-sns`
 * for channels): one queue per agent with a redrive policy to the agent's
 * dead-letter queue, long-polling receive loops up to the prefetch, the
 * visibility timeout extended while a handler runs, deletion only after the
 * handler, batched sends, and an SNS topic per channel fanned out to one
 * queue per member with raw message delivery.
 *
 * ```text
 * queue  {prefix}_a-<id>                  an agent's spores; RedrivePolicy → {prefix}_d-<id>
 * queue  {prefix}_d-<id>                  dead letters of the agent (and of its channel queues)
 * topic  {prefix}_t-<channel>             SNS topic of a channel
 * queue  {prefix}_c-<channel>_x<member>   a member's copy of a channel (raw-delivery subscription)
 * topic  {prefix}_k-cards                 SNS topic of card publications (see SqsDirectory)
 * ```
 * Names are escaped and hashed as `names.ts` documents; FIFO names end in `.fifo`.
 *
 * A spore travels as the binary message attribute `s` (the body is the
 * constant `spore`): no text encoding in this code, the SDK's own base64 on
 * the wire (measured against a base64 body in `bench/README.md`). `p`
 * carries the priority, `e` the expiry (Unix ms), `i` the dedup id. Sizes
 * are counted as the JSON protocol carries them (binary at its base64
 * length), so a spore may be up to 3/4 of the queue's `MaximumMessageSize`
 * minus 256 bytes: 196,416 bytes on a 256 KiB queue, 786,240 on a 1 MiB one.
 *
 * @module
 */
import {
  ChangeMessageVisibilityBatchCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import {
  CreateTopicCommand,
  ListSubscriptionsByTopicCommand,
  PublishBatchCommand,
  SNSClient,
  SubscribeCommand,
  UnsubscribeCommand,
} from "@aws-sdk/client-sns";
import { ConfigError, TransportError } from "../../crypto/errors.ts";
import { inspect } from "../../spore/envelope.ts";
import { checkId } from "../../spore/limits.ts";
import type {
  Address,
  Delivery,
  DeliveryHandler,
  PublishOptions,
  PurgeOptions,
  PurgeReport,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportCapabilities,
} from "../transport.ts";
import { Batcher } from "./batching.ts";
import { describeUrl, hostPort } from "../connect_error.ts";
import { TransportEvents } from "../events.ts";
import { SqsDirectory } from "./directory.ts";
import { checkPrefix, type NameKind, sqsName } from "./names.ts";
import type { SqsTransportOptions } from "./options.ts";
export type { SqsCredentials, SqsTransportOptions } from "./options.ts";

/** SNS's limit on a published message (body and attributes). */
export const SNS_MAX_MESSAGE_BYTES = 262_144;
const MAX_SQS_BYTES = 1 << 20;
const BODY = "spore";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const errorName = (e: unknown): string => (e as { name?: string })?.name ?? "";
const missingQueue = (e: unknown) => /QueueDoesNotExist|NonExistentQueue/.test(errorName(e));

/** An SQS queue as the transport uses it. */
export interface QueueInfo {
  /** Queue URL. */
  url: string;
  /** Queue ARN. */
  arn: string;
  /** Its `MaximumMessageSize`. */
  maxBytes: number;
  /** The SNS subscription that feeds it, for a subscribed queue. */
  subscription?: string;
}

interface Outgoing {
  id: string;
  attributes: Record<string, MessageAttributeValue>;
  groupId?: string;
  dedupId?: string;
}

/** The SNS topic a subscribed queue's policy lets send to it (see `subscribedQueue`). */
function topicOfPolicy(policy: string | undefined): string | undefined {
  try {
    const arn = JSON.parse(policy ?? "null")?.Statement?.[0]?.Condition?.ArnEquals?.["aws:SourceArn"];
    return typeof arn === "string" && arn.startsWith("arn:") ? arn : undefined;
  } catch {
    return undefined;
  }
}

/** Base64 length of `n` bytes. */
const base64Length = (n: number) => 4 * Math.ceil(n / 3);

/**
 * The size SQS and SNS count for a message: body, and each attribute's name, type and value (ASCII here).
 * A binary value is counted at its base64 length, as it travels in the JSON protocol: some SQS-compatible
 * servers count it so, and on AWS this leaves a margin.
 */
function messageBytes(a: Record<string, MessageAttributeValue>): number {
  let n = BODY.length;
  for (const [name, v] of Object.entries(a)) {
    n += name.length + (v.DataType?.length ?? 0);
    n += v.BinaryValue ? base64Length(v.BinaryValue.length) : (v.StringValue?.length ?? 0);
  }
  return n;
}

/** A priority attribute as received: 0..9, else the default 4 (the broker is not trusted for it). */
function priorityOf(value: string | undefined): number {
  const p = Number(value);
  return Number.isInteger(p) && p >= 0 && p <= 9 ? p : 4;
}

/** Room kept for the attributes that travel with a spore (p, e, i; see messageBytes). */
const ATTRIBUTE_ROOM = 256;

/** Largest spore a queue of `maxBytes` takes. */
const sporeLimit = (maxBytes: number) => Math.floor((maxBytes - ATTRIBUTE_ROOM) / 4) * 3;

function entryError(entry: { Code?: string; Message?: string } | undefined): Error {
  return new TransportError(
    `SQS refused a message: ${entry?.Code ?? "error"} ${entry?.Message ?? ""}`.trim(),
  );
}

function parseUrl(url: string): { region?: string; params: URLSearchParams } {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ConfigError("not a valid sqs:// URL", { cause });
  }
  if (u.protocol !== "sqs:") throw new ConfigError("not an sqs:// URL");
  return { region: u.hostname || undefined, params: u.searchParams };
}

/**
 * An Amazon SQS (and SNS) connection for agents.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/sqs";
 * const transport = await createTransport("sqs://eu-west-1?prefix=prod");
 * await transport.close();
 * ```
 */
export class SqsTransport implements Transport {
  /** `"sqs"`. */
  readonly name = "sqs";
  /** What it promises. */
  readonly capabilities: TransportCapabilities;
  /** Agent cards as tags of agent queues. */
  readonly directory: SqsDirectory;
  /**
   * Link lost (SQS requests fail without an answer from the service, or with a 5xx, after the SDK's own
   * retries) and back (a request answered), and messages moved to the dead-letter queue at the receive limit.
   */
  readonly events: TransportEvents;
  /** The SQS client. */
  readonly sqs: SQSClient;
  /** The SNS client. */
  readonly sns: SNSClient;
  /** Messages deleted at read time because their TTL had passed. */
  expired = 0;
  readonly #prefix: string;
  readonly #fifo: boolean;
  readonly #maxReceiveCount: number;
  readonly #visibility: number;
  readonly #wait: number;
  readonly #createBytes: number;
  readonly #loops: number | undefined;
  readonly #grace: number;
  readonly #groupId = `c-${crypto.randomUUID()}`;
  readonly #queues = new Map<string, Promise<QueueInfo>>();
  readonly #topics = new Map<string, Promise<string>>();
  readonly #senders = new Map<string, Batcher<Outgoing>>();
  readonly #subs = new Set<SqsSubscription>();
  #closed = false;

  private constructor(url: string, options: SqsTransportOptions) {
    const { region, params } = parseUrl(url);
    this.#prefix = checkPrefix(options.prefix ?? params.get("prefix") ?? "spores");
    const fifo = params.get("fifo");
    this.#fifo = options.fifo ?? (fifo === "1" || fifo === "true");
    const maxRedeliveries = options.maxRedeliveries ?? 5;
    if (!Number.isInteger(maxRedeliveries) || maxRedeliveries < 0 || maxRedeliveries > 999) {
      throw new ConfigError("maxRedeliveries must be an integer in 0..999");
    }
    this.#maxReceiveCount = maxRedeliveries + 1;
    this.#visibility = options.visibilityTimeoutSeconds ?? 30;
    if (!Number.isInteger(this.#visibility) || this.#visibility < 1 || this.#visibility > 43_200) {
      throw new ConfigError("visibilityTimeoutSeconds must be an integer in 1..43200");
    }
    this.#wait = options.waitTimeSeconds ?? 20;
    if (!Number.isInteger(this.#wait) || this.#wait < 0 || this.#wait > 20) {
      throw new ConfigError("waitTimeSeconds must be an integer in 0..20");
    }
    this.#createBytes = options.maxMessageBytes ?? SNS_MAX_MESSAGE_BYTES;
    if (
      !Number.isInteger(this.#createBytes) || this.#createBytes < 1024 || this.#createBytes > MAX_SQS_BYTES
    ) {
      throw new ConfigError("maxMessageBytes must be an integer in 1024..1048576");
    }
    this.#loops = options.receiveLoops;
    this.#grace = options.closeGraceMs ?? this.#wait * 1000 + 2000;
    const resolvedRegion = options.region ?? region;
    if (!resolvedRegion) throw new ConfigError("the SQS region is missing (sqs://<region>)");
    const endpoint = options.endpoint ?? params.get("endpoint") ?? undefined;
    const snsEndpoint = options.snsEndpoint ?? params.get("snsEndpoint") ?? endpoint;
    const common = {
      region: resolvedRegion,
      credentials: options.credentials,
      maxAttempts: 3,
      // The SDK's default user agent reads the OS release (a --allow-sys permission): name the library instead.
      defaultUserAgentProvider: () => Promise.resolve([["spores-sqs"], ["lang/js"]] as [string, string?][]),
    };
    this.sqs = new SQSClient({ ...common, endpoint });
    this.events = new TransportEvents(
      "sqs",
      endpoint ? `sqs://${resolvedRegion} at ${describeUrl(endpoint)}` : `sqs://${resolvedRegion}`,
      endpoint
        ? hostPort(endpoint, endpoint.startsWith("https:") ? 443 : 80)
        : `sqs.${resolvedRegion}.amazonaws.com:443`,
    );
    watchLink(this.sqs, this.events);
    this.sns = new SNSClient({ ...common, endpoint: snsEndpoint });
    this.directory = new SqsDirectory(this);
    this.capabilities = Object.freeze({
      durable: true,
      ordered: this.#fifo,
      priority: false,
      ttl: true,
      maxMessageBytes: sporeLimit(this.#createBytes),
      broadcast: true,
    });
  }

  /**
   * Opens the transport and checks that SQS answers (a `TransportError` if
   * it cannot be reached or refuses the credentials).
   */
  static async connect(url: string, options: SqsTransportOptions = {}): Promise<SqsTransport> {
    const t = new SqsTransport(url, options);
    try {
      await t.sqs.send(new GetQueueUrlCommand({ QueueName: t.queueName("a", "spores-probe") }));
    } catch (cause) {
      if (!missingQueue(cause)) {
        t.sqs.destroy();
        t.sns.destroy();
        throw new TransportError("cannot reach SQS", { cause });
      }
    }
    return t;
  }

  /** Name prefix. */
  get prefix(): string {
    return this.#prefix;
  }

  /** Whether queues and topics are FIFO. */
  get fifo(): boolean {
    return this.#fifo;
  }

  /** @internal The queue or topic name of `kind` for `id` (and `member`). */
  queueName(kind: NameKind, id: string, member?: string): string {
    return sqsName(this.#prefix, kind, id, member, this.#fifo);
  }

  #check(): void {
    if (this.#closed) throw new TransportError("sqs transport is closed");
  }

  async #describe(url: string): Promise<QueueInfo> {
    const res = await this.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn", "MaximumMessageSize"] }),
    );
    const arn = res.Attributes?.QueueArn;
    const maxBytes = Number(res.Attributes?.MaximumMessageSize ?? SNS_MAX_MESSAGE_BYTES);
    if (!arn || !Number.isFinite(maxBytes)) throw new TransportError("SQS returned no queue ARN or size");
    return { url, arn, maxBytes };
  }

  /** Creates a queue if missing; an existing queue keeps the attributes its owner gave it. */
  async #create(name: string, attributes: Record<string, string>): Promise<QueueInfo> {
    if (this.#fifo) {
      attributes = { ...attributes, FifoQueue: "true", ContentBasedDeduplication: "true" };
    }
    let url: string | undefined;
    try {
      url =
        (await this.sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl;
    } catch (e) {
      if (!/QueueNameExists|QueueAlreadyExists/.test(errorName(e))) throw e;
      url = (await this.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    }
    if (!url) throw new TransportError(`SQS returned no URL for ${name}`);
    return await this.#describe(url);
  }

  #cached(name: string, make: () => Promise<QueueInfo>): Promise<QueueInfo> {
    let p = this.#queues.get(name);
    if (!p) {
      p = make();
      this.#queues.set(name, p);
      p.catch(() => this.#queues.delete(name));
    }
    return p;
  }

  /** @internal Forgets a cached queue (it was deleted). */
  forget(name: string): void {
    this.#queues.delete(name);
  }

  /** @internal The dead-letter queue of an agent, created if missing. */
  deadLetterQueue(agent: string): Promise<QueueInfo> {
    const name = this.queueName("d", agent);
    return this.#cached(name, () =>
      this.#create(name, {
        MessageRetentionPeriod: "1209600",
        MaximumMessageSize: String(MAX_SQS_BYTES),
      }));
  }

  /** @internal An agent's queue, created if missing, with its redrive policy. */
  agentQueue(agent: string): Promise<QueueInfo> {
    const name = this.queueName("a", agent);
    return this.#cached(name, async () => {
      const dlq = await this.deadLetterQueue(agent);
      return await this.#create(name, {
        MaximumMessageSize: String(this.#createBytes),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: dlq.arn,
          maxReceiveCount: this.#maxReceiveCount,
        }),
      });
    });
  }

  /** An existing agent's queue (a `TransportError` if the agent never subscribed). */
  #existingAgentQueue(agent: string): Promise<QueueInfo> {
    const name = this.queueName("a", agent);
    return this.#cached(name, async () => {
      let url: string | undefined;
      try {
        url = (await this.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
      } catch (e) {
        if (missingQueue(e)) throw new TransportError(`no queue for agent ${agent}`, { cause: e });
        throw e;
      }
      return await this.#describe(url!);
    });
  }

  /** @internal The ARN of an SNS topic (created if missing). */
  topic(kind: "t" | "k", id: string): Promise<string> {
    const name = this.queueName(kind, id);
    let p = this.#topics.get(name);
    if (!p) {
      p = this.sns.send(
        new CreateTopicCommand({
          Name: name,
          Attributes: this.#fifo ? { FifoTopic: "true", ContentBasedDeduplication: "true" } : undefined,
        }),
      ).then((r) => {
        if (!r.TopicArn) throw new TransportError(`SNS returned no ARN for ${name}`);
        return r.TopicArn;
      });
      this.#topics.set(name, p);
      p.catch(() => this.#topics.delete(name));
    }
    return p;
  }

  /**
   * @internal A queue subscribed to an SNS topic with raw message delivery,
   * whose policy lets that topic (and only it) send to it.
   */
  async subscribedQueue(
    name: string,
    topicArn: string,
    deadLetterArn: string,
  ): Promise<QueueInfo> {
    return await this.#cached(name, async () => {
      // The policy names the queue's ARN before the queue exists: same account and region as its DLQ.
      const arn = deadLetterArn.slice(0, deadLetterArn.lastIndexOf(":") + 1) + name;
      const policy = {
        Version: "2012-10-17",
        Statement: [{
          Effect: "Allow",
          Principal: { Service: "sns.amazonaws.com" },
          Action: "sqs:SendMessage",
          Resource: arn,
          Condition: { ArnEquals: { "aws:SourceArn": topicArn } },
        }],
      };
      const attributes: Record<string, string> = {
        MaximumMessageSize: String(Math.max(this.#createBytes, SNS_MAX_MESSAGE_BYTES)),
        Policy: JSON.stringify(policy),
      };
      attributes.RedrivePolicy = JSON.stringify({
        deadLetterTargetArn: deadLetterArn,
        maxReceiveCount: this.#maxReceiveCount,
      });
      const q = await this.#create(name, attributes);
      const sub = await this.sns.send(
        new SubscribeCommand({
          TopicArn: topicArn,
          Protocol: "sqs",
          Endpoint: q.arn,
          Attributes: { RawMessageDelivery: "true" },
          ReturnSubscriptionArn: true,
        }),
      );
      return { ...q, subscription: sub.SubscriptionArn };
    });
  }

  /** The sender (batcher) of one queue. */
  #sender(q: QueueInfo): Batcher<Outgoing> {
    let b = this.#senders.get(q.url);
    if (!b) {
      b = new Batcher<Outgoing>(async (items) => {
        const res = await this.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: q.url,
            Entries: items.map((m, i) => ({
              Id: String(i),
              MessageBody: BODY,
              MessageAttributes: m.attributes,
              MessageGroupId: m.groupId,
              MessageDeduplicationId: m.dedupId,
            })),
          }),
        );
        const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
        return items.map((_, i) => failed.has(String(i)) ? entryError(failed.get(String(i))) : undefined);
      }, { maxBytes: q.maxBytes, maxInFlight: this.#fifo ? 1 : 8 });
      this.#senders.set(q.url, b);
    }
    return b;
  }

  #attributes(bytes: Uint8Array, options: PublishOptions): Record<string, MessageAttributeValue> {
    const a: Record<string, MessageAttributeValue> = {
      s: { DataType: "Binary", BinaryValue: bytes },
      p: { DataType: "Number", StringValue: String(options.priority ?? 4) },
    };
    if (options.ttlMs !== undefined) {
      a.e = { DataType: "Number", StringValue: String(Date.now() + Math.max(1, Math.floor(options.ttlMs))) };
    }
    if (options.dedupId) a.i = { DataType: "String", StringValue: checkId(options.dedupId, "dedup id") };
    return a;
  }

  #groupOf(bytes: Uint8Array): string {
    try {
      return inspect(bytes).from;
    } catch {
      return this.#groupId; // not a spore: this connection's own group
    }
  }

  /**
   * Sends to an agent's queue (batched with other sends in flight), or
   * publishes to a channel's SNS topic. A message larger than the queue's
   * `MaximumMessageSize` (or SNS's 256 KiB) is refused before anything is sent.
   */
  async publish(to: Address, bytes: Uint8Array, options: PublishOptions = {}): Promise<void> {
    this.#check();
    if (options.priority !== undefined && !(options.priority >= 0 && options.priority <= 9)) {
      throw new ConfigError("priority must be 0..9");
    }
    const attributes = this.#attributes(bytes, options);
    const size = messageBytes(attributes);
    const message: Outgoing = { id: "", attributes };
    if (this.#fifo) {
      message.groupId = this.#groupOf(bytes);
      message.dedupId = options.dedupId;
    }
    if ("agent" in to) {
      const agent = checkId(to.agent, "agent");
      let q: QueueInfo;
      try {
        q = await this.#existingAgentQueue(agent);
      } catch (cause) {
        if (cause instanceof TransportError) throw cause;
        throw new TransportError(`cannot find the SQS queue of ${agent}`, { cause });
      }
      if (size > q.maxBytes) {
        throw new TransportError(
          `spore of ${bytes.length} bytes (${size} bytes as an SQS message) over the MaximumMessageSize of ` +
            `${q.maxBytes} bytes of the queue of ${agent}`,
        );
      }
      try {
        await this.#sender(q).add(message, size);
      } catch (cause) {
        if (missingQueue(cause)) this.forget(this.queueName("a", agent));
        if (cause instanceof TransportError) throw cause;
        throw new TransportError(`SQS refused a message to ${agent}`, { cause });
      }
      return;
    }
    const channel = checkId(to.channel, "channel");
    const limit = Math.min(SNS_MAX_MESSAGE_BYTES, this.#createBytes);
    if (size > limit) {
      throw new TransportError(
        `spore of ${bytes.length} bytes (${size} bytes as an SNS message) over the limit of ${limit} bytes ` +
          `of channel ${channel}`,
      );
    }
    try {
      const arn = await this.topic("t", channel);
      await this.#publisher(arn).add(message, size);
    } catch (cause) {
      if (cause instanceof TransportError) throw cause;
      throw new TransportError(`SNS refused a message to channel ${channel}`, { cause });
    }
  }

  readonly #publishers = new Map<string, Batcher<Outgoing>>();

  #publisher(arn: string): Batcher<Outgoing> {
    let b = this.#publishers.get(arn);
    if (!b) {
      b = new Batcher<Outgoing>(async (items) => {
        const res = await this.sns.send(
          new PublishBatchCommand({
            TopicArn: arn,
            PublishBatchRequestEntries: items.map((m, i) => ({
              Id: String(i),
              Message: BODY,
              MessageAttributes: m.attributes,
              MessageGroupId: m.groupId,
              MessageDeduplicationId: m.dedupId,
            })),
          }),
        );
        const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
        return items.map((_, i) => failed.has(String(i)) ? entryError(failed.get(String(i))) : undefined);
      }, { maxBytes: SNS_MAX_MESSAGE_BYTES, maxInFlight: this.#fifo ? 1 : 8 });
      this.#publishers.set(arn, b);
    }
    return b;
  }

  /**
   * Receives an agent's queue (created if missing), or a member's queue of a
   * channel (created and subscribed to the channel's topic if missing).
   */
  async subscribe(
    from: Address,
    handler: DeliveryHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    this.#check();
    const prefetch = options.prefetch ?? 64;
    if (!Number.isInteger(prefetch) || prefetch < 1) {
      throw new ConfigError("prefetch must be a positive integer");
    }
    let queue: () => Promise<QueueInfo>;
    let dead: () => Promise<QueueInfo>;
    let names: string[];
    if ("agent" in from) {
      const agent = checkId(from.agent, "agent");
      queue = () => this.agentQueue(agent);
      dead = () => this.deadLetterQueue(agent);
      names = [this.queueName("a", agent), this.queueName("d", agent)];
    } else {
      const channel = checkId(from.channel, "channel");
      const member = checkId(options.member, "channel member");
      dead = () => this.deadLetterQueue(member);
      const name = this.queueName("c", channel, member);
      queue = async () =>
        await this.subscribedQueue(name, await this.topic("t", channel), (await dead()).arn);
      names = [name, this.queueName("d", member)];
    }
    const forget = () => {
      for (const n of names) this.forget(n);
    };
    const sub = new SqsSubscription(this, queue, dead, forget, handler, {
      address: from,
      member: options.member,
      maxReceiveCount: this.#maxReceiveCount,
      prefetch,
      loops: Math.max(1, Math.min(this.#loops ?? Math.ceil(prefetch / 10), 8, prefetch)),
      visibility: this.#visibility,
      wait: this.#wait,
      grace: this.#grace,
    });
    try {
      await sub.start();
    } catch (cause) {
      throw new TransportError("cannot set up the SQS queue", { cause });
    }
    this.#subs.add(sub);
    sub.onClose = () => this.#subs.delete(sub);
    return sub;
  }

  /**
   * Deletes the queues `agent` created (see {@linkcode Transport.purge}):
   * `{prefix}_a-<id>` with the spores waiting there and its card (the
   * queue's tags), `{prefix}_d-<id>` with its dead letters, and on each of
   * `options.channels` its member queue `{prefix}_c-<channel>_x<id>` and the
   * SNS subscription that feeds it (the topic named by the queue's own
   * policy). Channel topics are shared and stay. SQS may take up to 60
   * seconds to forget a deleted queue's name: a queue of the same name
   * cannot be created again before then.
   */
  async purge(agent: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    this.#check();
    const id = checkId(agent, "agent");
    const report: PurgeReport = { removed: [], kept: [] };
    const members = (options.channels ?? []).map((c) => this.queueName("c", checkId(c, "channel"), id));
    try {
      for (const name of members) {
        const url = await this.#existing(name);
        if (!url) continue;
        const attrs = (await this.sqs.send(
          new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn", "Policy"] }),
        )).Attributes ?? {};
        const topic = topicOfPolicy(attrs.Policy);
        if (topic && attrs.QueueArn) {
          let next: string | undefined;
          do {
            const page = await this.sns.send(
              new ListSubscriptionsByTopicCommand({ TopicArn: topic, NextToken: next }),
            );
            for (const sub of page.Subscriptions ?? []) {
              if (sub.Endpoint === attrs.QueueArn && sub.SubscriptionArn?.startsWith("arn:")) {
                await this.sns.send(new UnsubscribeCommand({ SubscriptionArn: sub.SubscriptionArn }));
                report.removed.push(`subscription ${sub.SubscriptionArn}`);
              }
            }
            next = page.NextToken;
          } while (next);
        }
        await this.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
        this.forget(name);
        report.removed.push(name);
      }
      for (const name of [this.queueName("a", id), this.queueName("d", id)]) {
        const url = await this.#existing(name);
        if (!url) continue;
        await this.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
        this.forget(name);
        report.removed.push(name);
      }
    } catch (cause) {
      throw new TransportError(`cannot purge agent ${id} from SQS`, { cause });
    }
    return report;
  }

  /** The URL of the queue `name`, or undefined if there is none. */
  async #existing(name: string): Promise<string | undefined> {
    try {
      return (await this.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    } catch (e) {
      if (missingQueue(e)) return undefined;
      throw e;
    }
  }

  /** Closes subscriptions (their unfinished messages become visible again at once) and the clients. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.events.close();
    await Promise.all([...this.#subs].map((s) => s.close()));
    await this.directory.close();
    await Promise.all([...this.#senders.values(), ...this.#publishers.values()].map((b) => b.drained()));
    this.sqs.destroy();
    this.sns.destroy();
  }
}

/**
 * Reports every request's outcome to `events`: answered (any HTTP status below 500) is the link up; no answer
 * (a refused or reset connection, a time-out) or a 5xx, after the SDK's retries, is the link down. A request
 * this transport aborted itself (a long poll at close) says nothing.
 */
function watchLink(client: SQSClient, events: TransportEvents): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        const out = await next(args);
        events.linkUp();
        return out;
      } catch (e) {
        const status = (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
        const aborted = (e as Error)?.name === "AbortError";
        if (!aborted) {
          if (status === undefined || status >= 500) events.linkDown(e);
          else events.linkUp();
        }
        throw e;
      }
    },
    { step: "initialize", name: "sporesLinkWatch" },
  );
}

interface SubscriptionSettings {
  address: Address;
  member: string | undefined;
  maxReceiveCount: number;
  prefetch: number;
  loops: number;
  visibility: number;
  wait: number;
  grace: number;
}

interface Held {
  handle: string;
  visibleUntil: number;
  settled: boolean;
}

/** One receiver of one queue: several long polls in flight, up to the prefetch. */
class SqsSubscription implements Subscription {
  onClose: (() => void) | undefined;
  readonly #t: SqsTransport;
  readonly #queue: () => Promise<QueueInfo>;
  readonly #dead: () => Promise<QueueInfo>;
  readonly #forget: () => void;
  readonly #handler: DeliveryHandler;
  readonly #s: SubscriptionSettings;
  /** One controller per receive in flight (a signal shared by many requests slows each one down). */
  readonly #polls = new Set<AbortController>();
  readonly #held = new Set<Held>();
  #q: QueueInfo | undefined;
  #reserved = 0;
  #closed = false;
  #loops: Promise<void>[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #space: (() => void)[] = [];
  #deleter: Batcher<string> | undefined;
  #visibility: Batcher<{ handle: string; seconds: number }> | undefined;

  constructor(
    t: SqsTransport,
    queue: () => Promise<QueueInfo>,
    dead: () => Promise<QueueInfo>,
    forget: () => void,
    handler: DeliveryHandler,
    s: SubscriptionSettings,
  ) {
    this.#t = t;
    this.#queue = queue;
    this.#dead = dead;
    this.#forget = forget;
    this.#handler = handler;
    this.#s = s;
  }

  async start(): Promise<void> {
    this.#use(await this.#queue());
    for (let i = 0; i < this.#s.loops; i++) this.#loops.push(this.#run());
    const every = Math.max(200, (this.#s.visibility * 1000) / 3);
    this.#timer = setInterval(() => void this.#extend().catch(() => {}), every);
  }

  #use(q: QueueInfo): void {
    this.#q = q;
    const sqs = this.#t.sqs;
    this.#deleter = new Batcher<string>(async (handles) => {
      const res = await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: q.url,
          Entries: handles.map((h, i) => ({ Id: String(i), ReceiptHandle: h })),
        }),
      );
      const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
      return handles.map((_, i) => failed.has(String(i)) ? entryError(failed.get(String(i))) : undefined);
    });
    this.#visibility = new Batcher(async (items) => {
      const res = await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: q.url,
          Entries: items.map((m, i) => ({
            Id: String(i),
            ReceiptHandle: m.handle,
            VisibilityTimeout: m.seconds,
          })),
        }),
      );
      const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f]));
      return items.map((_, i) => failed.has(String(i)) ? entryError(failed.get(String(i))) : undefined);
    });
  }

  async #run(): Promise<void> {
    let backoff = 100;
    while (!this.#closed) {
      const room = this.#s.prefetch - this.#held.size - this.#reserved;
      if (room <= 0) {
        await new Promise<void>((r) => this.#space.push(r));
        continue;
      }
      const count = Math.min(10, room);
      this.#reserved += count;
      let messages: Message[] = [];
      const poll = new AbortController();
      this.#polls.add(poll);
      try {
        const res = await this.#t.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.#q!.url,
            MaxNumberOfMessages: count,
            WaitTimeSeconds: this.#s.wait,
            VisibilityTimeout: this.#s.visibility,
            MessageSystemAttributeNames: ["ApproximateReceiveCount"],
            MessageAttributeNames: ["All"], // all: a foreign message goes to the dead letters whole
          }),
          { abortSignal: poll.signal },
        );
        messages = res.Messages ?? [];
        backoff = 100;
      } catch (e) {
        this.#polls.delete(poll);
        this.#reserved -= count;
        if (this.#closed) break;
        if (missingQueue(e)) {
          // Deleted under us (by an operator): create it again, as subscribing would.
          await this.#recreate().catch(() => {});
        }
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      this.#polls.delete(poll);
      this.#reserved -= count;
      for (const m of messages) this.#dispatch(m);
      if (this.#closed) await this.#visibility!.drained();
    }
  }

  async #recreate(): Promise<void> {
    this.#forget();
    this.#use(await this.#queue());
  }

  #wake(): void {
    const waiting = this.#space;
    this.#space = [];
    for (const r of waiting) r();
  }

  #dispatch(m: Message): void {
    const handle = m.ReceiptHandle;
    if (!handle) return;
    const held: Held = { handle, visibleUntil: Date.now() + this.#s.visibility * 1000, settled: false };
    if (this.#closed) {
      void this.#visibility!.add({ handle, seconds: 0 }).catch(() => {});
      return;
    }
    const a = m.MessageAttributes ?? {};
    const data = a.s?.BinaryValue;
    const deleter = this.#deleter!;
    const visibility = this.#visibility!;
    const settle = () => {
      if (held.settled) return false;
      held.settled = true;
      this.#held.delete(held);
      this.#wake();
      return true;
    };
    this.#held.add(held);
    if (!data) {
      // Not a spore of this transport: keep it, in the dead-letter queue.
      settle();
      void this.#toDeadLetter(m, handle, deleter).catch(() => {});
      return;
    }
    const expiresAt = Number(a.e?.StringValue ?? 0);
    if (expiresAt > 0 && Date.now() > expiresAt) {
      settle();
      this.#t.expired++;
      void deleter.add(handle).catch(() => {});
      return;
    }
    const received = Number(m.Attributes?.ApproximateReceiveCount ?? 1);
    const current = () => !this.#closed && this.#deleter === deleter;
    // Received at or past the redrive limit: the next receive would be SQS's to dead-letter, unseen. The
    // transport moves it itself, and says so, when this delivery is not acknowledged.
    const last = received >= this.#s.maxReceiveCount;
    const byTransport = async () => {
      await this.#toDeadLetter(m, handle, deleter);
      this.#t.events.deadLettered({
        address: this.#s.address,
        member: this.#s.member,
        size: data.length,
        attempts: received,
        reason: `received ${received} times (limit ${this.#s.maxReceiveCount}) without an acknowledgement`,
        store: this.#t.queueName(
          "d",
          this.#s.member ?? ("agent" in this.#s.address ? this.#s.address.agent : ""),
        ),
      });
    };
    if (received > this.#s.maxReceiveCount) {
      // Past the limit (a queue without the redrive policy): not handed to the handler again.
      settle();
      void byTransport().catch(() => {});
      return;
    }
    const delivery: Delivery = {
      bytes: new Uint8Array(data),
      redeliveries: Math.max(0, (Number.isFinite(received) ? received : 1) - 1),
      dedupId: a.i?.StringValue || undefined,
      priority: priorityOf(a.p?.StringValue),
      ack: async () => {
        if (!settle() || !current()) return;
        try {
          await deleter.add(handle);
        } catch (cause) {
          throw new TransportError("SQS did not delete a handled message (it will come back)", { cause });
        }
      },
      nack: async () => {
        if (!settle() || !current()) return;
        if (last) {
          try {
            return await byTransport();
          } catch {
            // SQS's redrive policy moves it at its next receive
          }
        }
        await visibility.add({ handle, seconds: 0 }).catch(() => {});
      },
      deadLetter: async () => {
        if (!settle() || !current()) return;
        await this.#toDeadLetter(m, handle, deleter);
      },
    };
    queueMicrotask(async () => {
      try {
        await this.#handler(delivery);
      } catch {
        await delivery.nack().catch(() => {});
      }
    });
  }

  async #toDeadLetter(m: Message, handle: string, deleter: Batcher<string>): Promise<void> {
    const dlq = await this.#dead();
    try {
      await this.#t.sqs.send(
        new SendMessageCommand({
          QueueUrl: dlq.url,
          MessageBody: m.Body || BODY,
          MessageAttributes: Object.fromEntries(
            Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [
              k,
              { DataType: v.DataType, StringValue: v.StringValue, BinaryValue: v.BinaryValue },
            ]),
          ),
          MessageGroupId: this.#t.fifo ? "dead" : undefined,
          MessageDeduplicationId: this.#t.fifo ? m.MessageId : undefined,
        }),
      );
    } catch (cause) {
      throw new TransportError("SQS refused a dead letter (the message stays in its queue)", { cause });
    }
    await deleter.add(handle);
  }

  /** Extends the visibility of messages whose handlers still run. */
  async #extend(): Promise<void> {
    const now = Date.now();
    const soon = now + (this.#s.visibility * 1000 * 2) / 3;
    const due = [...this.#held].filter((h) => !h.settled && h.visibleUntil <= soon);
    const visibility = this.#visibility!;
    await Promise.all(due.map(async (h) => {
      h.visibleUntil = now + this.#s.visibility * 1000;
      await visibility.add({ handle: h.handle, seconds: this.#s.visibility }).catch(() => {});
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#wake();
    // Let long polls in flight return (what they bring is handed back at once), then abort the rest.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(this.#loops), new Promise((r) => timer = setTimeout(r, this.#s.grace))]);
    clearTimeout(timer);
    for (const poll of this.#polls) poll.abort();
    await Promise.all(this.#loops);
    // Hand back what the handlers have not finished: visible again at once.
    const held = [...this.#held];
    this.#held.clear();
    for (const h of held) h.settled = true;
    await Promise.all(
      held.map((h) => this.#visibility!.add({ handle: h.handle, seconds: 0 }).catch(() => {})),
    );
    await this.#deleter?.drained();
    this.onClose?.();
  }
}
