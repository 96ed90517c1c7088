/**
 * Durable trust on first use in a JetStream key-value bucket
 * (`<card bucket>_pins`): one key per (agent, owner identity, pinned id),
 * each pin signed by the agent's identity (`SignedPins`), so the server
 * cannot change one undetected. `create` makes the first writer win.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { type KV, Kvm } from "@nats-io/kv";
import { TransportError } from "../../crypto/errors.ts";
import type { Identity } from "../../crypto/identity.ts";
import { checkId } from "../../spore/limits.ts";
import { type PinStore, SignedPins } from "../../spore/signed_pins.ts";
import { TofuTrust } from "../../spore/trust.ts";
import { token } from "./subjects.ts";
import type { NatsTransport } from "./transport.ts";

/**
 * The pins of one agent (one identity) in a JetStream KV bucket.
 *
 * @example
 * ```ts ignore
 * import { Identity, SignedPins, TofuTrust } from "@spores/spores";
 * import { NatsPinStore, NatsTransport } from "@spores/spores/nats";
 * const transport = await NatsTransport.connect("nats://127.0.0.1:4222");
 * const identity = await Identity.generate();
 * const pins = new NatsPinStore(transport.connection, "spores_pins", "alice", identity.fingerprint);
 * const trust = new TofuTrust(new SignedPins(pins, identity));
 * ```
 */
export class NatsPinStore implements PinStore {
  readonly #nc: NatsConnection;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #replicas: number;
  #kv: Promise<KV> | undefined;

  /**
   * The pins `agent`, under the identity whose fingerprint is `owner`, keeps in `bucket` (made on first use).
   *
   * @param options `replicas` of the bucket (default 1).
   */
  constructor(
    nc: NatsConnection,
    bucket: string,
    agent: string,
    owner: string,
    options: { replicas?: number } = {},
  ) {
    this.#nc = nc;
    this.#bucket = bucket;
    this.#prefix = `${token(checkId(agent, "agent id"))}.${owner}`;
    this.#replicas = options.replicas ?? 1;
  }

  #open(): Promise<KV> {
    this.#kv ??= new Kvm(this.#nc).create(this.#bucket, { history: 1, replicas: this.#replicas })
      .catch((cause) => {
        this.#kv = undefined;
        throw new TransportError(`cannot open the JetStream trust bucket ${this.#bucket}`, { cause });
      });
    return this.#kv;
  }

  /** The record kept for `id`. */
  async get(id: string): Promise<Uint8Array | undefined> {
    const kv = await this.#open();
    try {
      const entry = await kv.get(`${this.#prefix}.${token(id)}`);
      return entry && entry.operation === "PUT" && entry.value.length > 0
        ? new Uint8Array(entry.value)
        : undefined;
    } catch (cause) {
      throw new TransportError("JetStream trust store: read failed", { cause });
    }
  }

  /** Keeps `record` for `id` unless one is kept (`create`); returns the one kept. */
  async setIfAbsent(id: string, record: Uint8Array): Promise<Uint8Array> {
    const kv = await this.#open();
    try {
      await kv.create(`${this.#prefix}.${token(id)}`, record);
      return record;
    } catch (cause) {
      const kept = await this.get(id);
      if (kept) return kept;
      throw new TransportError("JetStream trust store: write failed", { cause });
    }
  }
}

/**
 * Trust on first use whose pins survive restarts, kept in the JetStream of
 * `transport` (bucket `<card bucket>_pins`) and signed by `identity` (see
 * `SignedPins` for what that does and does not protect).
 *
 * @example
 * ```ts ignore
 * import { Agent, Identity } from "@spores/spores";
 * import { NatsTransport, natsTrust } from "@spores/spores/nats";
 * const identity = await Identity.open(await Deno.readFile("alice.key"), passphrase);
 * const transport = await NatsTransport.connect("nats://127.0.0.1:4222");
 * const alice = await Agent.start({ id: "alice", transport, identity, trust: natsTrust(transport, "alice", identity) });
 * ```
 */
export function natsTrust(transport: NatsTransport, agent: string, identity: Identity): TofuTrust {
  const pins = new NatsPinStore(
    transport.connection,
    `${transport.names.bucket}_pins`,
    agent,
    identity.fingerprint,
  );
  return new TofuTrust(new SignedPins(pins, identity));
}
