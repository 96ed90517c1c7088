/**
 * The Amazon SQS transport (`sqs://`), on `@aws-sdk/client-sqs`, with SNS
 * (`@aws-sdk/client-sns`) fanning channels out to one queue per member.
 *
 * URL: `sqs://<region>[?endpoint=<url>&snsEndpoint=<url>&prefix=<prefix>&fifo=1]`: the region is the
 * host; `endpoint` points at an emulator or a VPC endpoint (SNS uses it too unless `snsEndpoint` is
 * given); `prefix` starts every queue and topic name (default `spores`); `fifo=1` uses FIFO queues
 * and topics. Credentials come from the options or the AWS SDK's chain (environment variables,
 * instance or task role). Queue names are documented in `transports/sqs/names.ts`.
 *
 * Deno permissions: `--allow-net=sqs.<region>.amazonaws.com,sns.<region>.amazonaws.com` (or the
 * endpoint's host and port), `--allow-env` (the SDK reads `AWS_*` variables), `--allow-read` for
 * `~/.aws` when credentials come from a profile (and for this module itself when it is loaded from
 * local files by URL scheme), `--allow-sys` (the SDK reads the OS name for its user agent).
 *
 * @example
 * ```ts ignore
 * import { Agent } from "@spores/spores";
 * const alice = await Agent.start({ id: "alice", transport: "sqs://eu-west-1?prefix=prod" });
 * ```
 *
 * @module
 */
import type { Transport } from "./transport.ts";
import { SqsTransport, type SqsTransportOptions } from "./sqs/transport.ts";
import { checkOptions } from "./option_keys.ts";
import { SQS_OPTION_KEYS } from "./sqs/options.ts";

export * from "./sqs/batching.ts";
export * from "./sqs/directory.ts";
export * from "./sqs/names.ts";
export {
  type QueueInfo,
  SNS_MAX_MESSAGE_BYTES,
  type SqsCredentials,
  SqsTransport,
  type SqsTransportOptions,
} from "./sqs/transport.ts";

/**
 * Connects to SQS and SNS in the region of `url` (`sqs://<region>?endpoint=...&prefix=...&fifo=1`).
 * Options are {@linkcode SqsTransportOptions}; a key it does not know is a `ConfigError`.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "@spores/spores/sqs";
 * const transport = await createTransport("sqs://us-east-1?endpoint=http://127.0.0.1:4566", {
 *   credentials: { accessKeyId: "test", secretAccessKey: "test" },
 * });
 * await transport.close();
 * ```
 */
export async function createTransport(url: string, options: SqsTransportOptions = {}): Promise<Transport> {
  checkOptions("sqs", options, SQS_OPTION_KEYS);
  return await SqsTransport.connect(url, options);
}
