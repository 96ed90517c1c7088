/**
 * The error hierarchy of Spores. Every failure the library reports is a
 * {@linkcode SporeError} with a stable {@linkcode SporeError.code}; callers
 * branch on the class (`instanceof`) or on the code, never on the message.
 *
 * ```text
 * SporeError
 * ├── SecurityError          something an attacker could cause was refused
 * │   ├── RecipientError     the spore is addressed to someone else
 * │   ├── ExpiredError       past its expiry, or created too long ago
 * │   ├── ClockSkewError     created further in the future than the skew allows
 * │   ├── TrustError         the sender's card is not trusted by the policy
 * │   │   ├── UnknownSenderError  no card for the sender
 * │   │   └── KeyChangedError     a known agent's keys changed (TOFU)
 * │   ├── StaleKeyError      sealed to a KEM key that is rotated out or unknown
 * │   ├── SignatureError     a signature did not verify
 * │   ├── DecryptError       AEAD or KEM failure (one fixed message: no oracle)
 * │   ├── ReplayError        a replay: outside the window, or from a dead epoch
 * │   ├── SessionError       no such session here, or it is closed
 * │   └── PassphraseError    a key file did not open with that passphrase
 * ├── ProtocolError          bytes that are not a valid structure
 * │   ├── UnsupportedError   unknown version, suite or kind
 * │   ├── TooLargeError      a field or the whole input is over its limit
 * │   └── KeyFileError       a key file that is truncated, corrupted or unknown
 * ├── ConfigError            a caller or deployment mistake
 * │   └── ContentError       content that would not arrive as it was given (spore/content.ts)
 * └── TransportError         a broker or network failure
 * ```
 *
 * @module
 */

/** Every error code Spores reports. */
export type SporeErrorCode =
  | "ERR_SPORE"
  | "ERR_SECURITY"
  | "ERR_RECIPIENT"
  | "ERR_EXPIRED"
  | "ERR_CLOCK_SKEW"
  | "ERR_TRUST"
  | "ERR_UNKNOWN_SENDER"
  | "ERR_KEY_CHANGED"
  | "ERR_ROLLBACK"
  | "ERR_STALE_KEY"
  | "ERR_SIGNATURE"
  | "ERR_DECRYPT"
  | "ERR_REPLAY"
  | "ERR_SESSION"
  | "ERR_PASSPHRASE"
  | "ERR_PROTOCOL"
  | "ERR_UNSUPPORTED"
  | "ERR_TOO_LARGE"
  | "ERR_KEY_FILE"
  | "ERR_CONFIG"
  | "ERR_CONTENT"
  | "ERR_TRANSPORT";

/**
 * Root of every error Spores throws.
 *
 * @example Branch on the class or on the code
 * ```ts
 * import { SporeError } from "@spores/spores";
 * try {
 *   throw new SporeError("something failed");
 * } catch (e) {
 *   if (e instanceof SporeError) console.assert(e.code === "ERR_SPORE");
 * }
 * ```
 */
export class SporeError extends Error {
  /** The code of this class. */
  static readonly code: SporeErrorCode = "ERR_SPORE";
  /** A stable, machine-readable code; see {@linkcode SporeErrorCode}. */
  readonly code: SporeErrorCode;

  /**
   * Makes an error of this class, with its code.
   *
   * @param message What failed, for humans. Never carries key material or plaintext.
   * @param options Standard `ErrorOptions` (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = (new.target as typeof SporeError).code;
  }
}

/**
 * A check that protects confidentiality, authenticity or freshness refused its
 * input. Never retry such an input: it was rejected on purpose.
 *
 * @example
 * ```ts
 * import { SecurityError, SignatureError } from "@spores/spores";
 * const e = new SignatureError();
 * console.assert(e instanceof SecurityError && e.code === "ERR_SIGNATURE");
 * ```
 */
export class SecurityError extends SporeError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_SECURITY";
}

/**
 * The spore is addressed to another agent (or channel).
 *
 * @example
 * ```ts
 * import { RecipientError } from "@spores/spores";
 * console.assert(new RecipientError("not for me").code === "ERR_RECIPIENT");
 * ```
 */
export class RecipientError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_RECIPIENT";
}

/**
 * The spore is past its expiry, or was created longer ago than the clock
 * skew window allows.
 *
 * @example
 * ```ts
 * import { ExpiredError } from "@spores/spores";
 * console.assert(new ExpiredError("expired").code === "ERR_EXPIRED");
 * ```
 */
export class ExpiredError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_EXPIRED";
}

/**
 * The spore claims a creation time further in the future than the clock skew
 * window allows.
 *
 * @example
 * ```ts
 * import { ClockSkewError } from "@spores/spores";
 * console.assert(new ClockSkewError("future").code === "ERR_CLOCK_SKEW");
 * ```
 */
export class ClockSkewError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_CLOCK_SKEW";
}

/**
 * The trust policy does not accept the sender's agent card.
 *
 * @example
 * ```ts
 * import { TrustError } from "@spores/spores";
 * console.assert(new TrustError("not pinned").code === "ERR_TRUST");
 * ```
 */
export class TrustError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_TRUST";
}

/**
 * No verified agent card is known for the sender.
 *
 * @example
 * ```ts
 * import { TrustError, UnknownSenderError } from "@spores/spores";
 * console.assert(new UnknownSenderError("mallory") instanceof TrustError);
 * ```
 */
export class UnknownSenderError extends TrustError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_UNKNOWN_SENDER";
}

/**
 * A known agent presented different identity keys (trust on first use).
 *
 * @example
 * ```ts
 * import { KeyChangedError } from "@spores/spores";
 * console.assert(new KeyChangedError("bob").code === "ERR_KEY_CHANGED");
 * ```
 */
export class KeyChangedError extends TrustError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_KEY_CHANGED";
}

/**
 * An agent card older than (or as old as, but different from) one already
 * accepted for the same agent: a rollback to a card whose keys were retired.
 *
 * @example
 * ```ts
 * import { RollbackError, TrustError } from "@spores/spores";
 * console.assert(new RollbackError("old card") instanceof TrustError);
 * ```
 */
export class RollbackError extends TrustError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_ROLLBACK";
}

/**
 * The spore was sealed to a KEM key this agent no longer accepts (rotated out
 * past its overlap window) or never had.
 *
 * @example
 * ```ts
 * import { StaleKeyError } from "@spores/spores";
 * console.assert(new StaleKeyError("rotated out").code === "ERR_STALE_KEY");
 * ```
 */
export class StaleKeyError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_STALE_KEY";
}

/**
 * Decryption or decapsulation failed. The message is always the same, whatever
 * the reason, so that the error text cannot serve as an oracle.
 *
 * @example
 * ```ts
 * import { DecryptError } from "@spores/spores";
 * console.assert(new DecryptError().message === "decryption failed");
 * ```
 */
export class DecryptError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_DECRYPT";
  /**
   * Makes the error (its message is fixed).
   *
   * @param options Standard `ErrorOptions`.
   */
  constructor(options?: ErrorOptions) {
    super("decryption failed", options);
  }
}

/**
 * A signature did not verify against the expected public key.
 *
 * @example
 * ```ts
 * import { SignatureError } from "@spores/spores";
 * console.assert(new SignatureError().code === "ERR_SIGNATURE");
 * ```
 */
export class SignatureError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_SIGNATURE";
  /**
   * Makes the error.
   *
   * @param message Which signature failed.
   * @param options Standard `ErrorOptions`.
   */
  constructor(message = "signature verification failed", options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * A replayed spore: its counter is older than the replay window, or it
 * belongs to an epoch whose keys are erased. (A redelivery inside the window
 * is not an error: it is reported as a duplicate.)
 *
 * @example
 * ```ts
 * import { ReplayError } from "@spores/spores";
 * console.assert(new ReplayError("outside window").code === "ERR_REPLAY");
 * ```
 */
export class ReplayError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_REPLAY";
}

/**
 * The spore names a session this agent does not have (foreign, expired or
 * closed), or a handshake that does not match the one in progress.
 *
 * @example
 * ```ts
 * import { SessionError } from "@spores/spores";
 * console.assert(new SessionError("unknown session").code === "ERR_SESSION");
 * ```
 */
export class SessionError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_SESSION";
}

/**
 * A session spore for a session this agent does not hold: it lost it (a
 * restart with a volatile store) or never had it. The spore cannot be opened
 * here; an agent asks its sender to send the message again (on a new
 * session), see `docs/PROTOCOL.md`, "Recovery".
 *
 * @example
 * ```ts
 * import { SessionError, UnknownSessionError } from "@spores/spores";
 * const e = new UnknownSessionError("no such session");
 * console.assert(e instanceof SessionError && e.code === "ERR_SESSION");
 * ```
 */
export class UnknownSessionError extends SessionError {}

/**
 * A one-shot spore or hello created before this agent's replay memory begins
 * (it restarted with a volatile store, so it cannot tell the spore from a
 * replay). An agent asks its sender to send the message again.
 *
 * @example
 * ```ts
 * import { BeforeMemoryError, ReplayError } from "@spores/spores";
 * console.assert(new BeforeMemoryError("too old") instanceof ReplayError);
 * ```
 */
export class BeforeMemoryError extends ReplayError {}

/**
 * A well-formed key file did not open with the given passphrase.
 *
 * @example
 * ```ts
 * import { PassphraseError } from "@spores/spores";
 * console.assert(new PassphraseError().code === "ERR_PASSPHRASE");
 * ```
 */
export class PassphraseError extends SecurityError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_PASSPHRASE";
  /**
   * Makes the error (its message is fixed).
   *
   * @param options Standard `ErrorOptions`.
   */
  constructor(options?: ErrorOptions) {
    super("wrong passphrase for this key file", options);
  }
}

/**
 * Bytes that do not form a valid structure: wrong magic or version, truncated,
 * trailing bytes, a field out of bounds.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "@spores/spores";
 * console.assert(new ProtocolError("truncated header").code === "ERR_PROTOCOL");
 * ```
 */
export class ProtocolError extends SporeError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_PROTOCOL";
}

/**
 * An unknown protocol version, suite or spore kind.
 *
 * @example
 * ```ts
 * import { ProtocolError, UnsupportedError } from "@spores/spores";
 * console.assert(new UnsupportedError("version 9") instanceof ProtocolError);
 * ```
 */
export class UnsupportedError extends ProtocolError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_UNSUPPORTED";
}

/**
 * A field, the payload or the whole input is over its limit.
 *
 * @example
 * ```ts
 * import { TooLargeError } from "@spores/spores";
 * console.assert(new TooLargeError("payload over 1 MiB").code === "ERR_TOO_LARGE");
 * ```
 */
export class TooLargeError extends ProtocolError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_TOO_LARGE";
}

/**
 * A key file that is truncated, corrupted (its checksum does not match) or of
 * an unknown format or version.
 *
 * @example
 * ```ts
 * import { KeyFileError, ProtocolError } from "@spores/spores";
 * console.assert(new KeyFileError("bad magic") instanceof ProtocolError);
 * ```
 */
export class KeyFileError extends ProtocolError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_KEY_FILE";
}

/**
 * A caller or deployment mistake: an invalid option, a key used with the wrong
 * backend, an algorithm this runtime cannot provide.
 *
 * @example
 * ```ts
 * import { ConfigError } from "@spores/spores";
 * console.assert(new ConfigError("unknown scheme").code === "ERR_CONFIG");
 * ```
 */
export class ConfigError extends SporeError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_CONFIG";
}

/**
 * A broker or network failure: unreachable, refused, closed, not confirmed.
 *
 * @example
 * ```ts
 * import { TransportError } from "@spores/spores";
 * console.assert(new TransportError("connection closed").code === "ERR_TRANSPORT");
 * ```
 */
export class TransportError extends SporeError {
  /** The code of this class. */
  static override readonly code: SporeErrorCode = "ERR_TRANSPORT";
}
