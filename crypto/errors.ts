/**
 * The error hierarchy of Spores. Every failure the library reports is a
 * {@linkcode SporeError} with a stable {@linkcode SporeError.code}; callers
 * branch on the class (`instanceof`) or on the code, never on the message.
 *
 * ```text
 * SporeError
 * ├── SecurityError          something an attacker could cause was refused
 * │   ├── DecryptError       AEAD or KEM failure (one fixed message: no oracle)
 * │   ├── SignatureError     a signature did not verify
 * │   └── PassphraseError    a key file did not open with that passphrase
 * ├── ProtocolError          bytes that are not a valid structure
 * │   └── KeyFileError       a key file that is truncated, corrupted or unknown
 * ├── ConfigError            a caller or deployment mistake
 * └── TransportError         a broker or network failure
 * ```
 *
 * @module
 */

/** Every error code Spores reports. */
export type SporeErrorCode =
  | "ERR_SPORE"
  | "ERR_SECURITY"
  | "ERR_DECRYPT"
  | "ERR_SIGNATURE"
  | "ERR_PASSPHRASE"
  | "ERR_PROTOCOL"
  | "ERR_KEY_FILE"
  | "ERR_CONFIG"
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
  /** @param options Standard `ErrorOptions`. */
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
   * @param message Which signature failed.
   * @param options Standard `ErrorOptions`.
   */
  constructor(message = "signature verification failed", options?: ErrorOptions) {
    super(message, options);
  }
}

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
  /** @param options Standard `ErrorOptions`. */
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
