/**
 * Options of the SQS transport (`sqs://`), in a module of their own that loads no AWS SDK, so that
 * `Agent.start` can check them against the URL's scheme.
 *
 * @module
 */
import { optionKeys } from "../option_keys.ts";

/** AWS credentials. */
export interface SqsCredentials {
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token of temporary credentials. */
  sessionToken?: string;
}

/** Options of the SQS transport (URL query parameters override none of these). */
export interface SqsTransportOptions {
  /** Name prefix of every queue and topic, 1..32 of `[A-Za-z0-9-]`. Default `"spores"` (or `?prefix=`). */
  prefix?: string;
  /** AWS region. Default: the URL's host. */
  region?: string;
  /** SQS endpoint (emulator, VPC endpoint). Default: the URL's `?endpoint=`, else AWS's. */
  endpoint?: string;
  /** SNS endpoint. Default: the URL's `?snsEndpoint=`, else `endpoint` when one is set, else AWS's. */
  snsEndpoint?: string;
  /** Credentials. Default: the SDK's chain (environment variables, instance role, ...). */
  credentials?: SqsCredentials;
  /** FIFO queues and topics (ordered per sender, deduplicated for 5 minutes). Default false (or `?fifo=1`). */
  fifo?: boolean;
  /** Redeliveries before SQS itself moves a message to the dead-letter queue (`maxReceiveCount` − 1). Default 5. */
  maxRedeliveries?: number;
  /** Visibility timeout of a received message, s; extended while its handler runs. Default 30. */
  visibilityTimeoutSeconds?: number;
  /** Long-poll wait of one receive, s (0..20). Default 20. */
  waitTimeSeconds?: number;
  /** `MaximumMessageSize` of the queues this transport creates, bytes (1024..1 MiB). Default 256 KiB. */
  maxMessageBytes?: number;
  /** Most receive requests in flight per subscription. Default: prefetch / 10, 1..8. */
  receiveLoops?: number;
  /**
   * How long closing waits for the long polls in flight to return, ms, before it aborts them. Default: the
   * long-poll wait plus 2 s, so that no message is taken by an abandoned poll (SQS may hand a message to a
   * poll whose client has gone: it then stays invisible until its visibility timeout). Lower it, or the
   * wait, for a faster close.
   */
  closeGraceMs?: number;
}

/** Every option of the SQS transport (checked against {@linkcode SqsTransportOptions} when type-checked). */
export const SQS_OPTION_KEYS = optionKeys<SqsTransportOptions>()([
  "prefix",
  "region",
  "endpoint",
  "snsEndpoint",
  "credentials",
  "fifo",
  "maxRedeliveries",
  "visibilityTimeoutSeconds",
  "waitTimeSeconds",
  "maxMessageBytes",
  "receiveLoops",
  "closeGraceMs",
]);
