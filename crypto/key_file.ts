/**
 * The passphrase-sealed key file: scrypt turns the passphrase into a key,
 * ChaCha20-Poly1305 seals the secret, a SHA-256 checksum tells corruption
 * apart from a wrong passphrase.
 *
 * ```text
 * offset size field
 *      0    4 magic "SPKF"
 *      4    1 version (1)
 *      5    1 kdf (1 = scrypt)
 *      6    1 log2(N)        default 17   accepted 10..20
 *      7    1 r              default 8    accepted 1..16
 *      8    1 p              default 1    accepted 1..4
 *      9   16 salt           random
 *     25   12 nonce          random (the key is fresh for every file)
 *     37    n ciphertext ‖ 16-byte tag; associated data = bytes 0..36
 *   37+n   32 SHA-256 of bytes 0..37+n (corruption check, not authentication)
 * ```
 *
 * @module
 */
import { scryptAsync } from "@noble/hashes/scrypt.js";
import { AeadKey, openSync, sealSync } from "./aead.ts";
import { concat, equalBytes, randomBytes, utf8 } from "./bytes.ts";
import { ConfigError, DecryptError, KeyFileError, PassphraseError } from "./errors.ts";
import { sha256Sync } from "./kdf.ts";

const MAGIC = utf8("SPKF");
const VERSION = 1;
const KDF_SCRYPT = 1;
const HEADER_LENGTH = 37;
const CHECKSUM_LENGTH = 32;
const TAG_LENGTH = 16;
/** Largest secret a key file holds (bounds what a file may claim). */
const MAX_SECRET = 4096;

/** scrypt cost parameters of a key file. */
export interface ScryptCost {
  /** log2 of the CPU/memory cost N; default 17 (N = 131,072, 128 MiB with r = 8). */
  logN: number;
  /** Block size; default 8. */
  r: number;
  /** Parallelism; default 1. */
  p: number;
}

/** The default scrypt cost: N = 2^17, r = 8, p = 1. */
export const DEFAULT_SCRYPT_COST: Readonly<ScryptCost> = Object.freeze({ logN: 17, r: 8, p: 1 });

function checkCost(cost: ScryptCost, fail: (message: string) => Error): void {
  const { logN, r, p } = cost;
  if (!Number.isInteger(logN) || logN < 10 || logN > 20) throw fail(`scrypt log2(N) ${logN} outside 10..20`);
  if (!Number.isInteger(r) || r < 1 || r > 16) throw fail(`scrypt r ${r} outside 1..16`);
  if (!Number.isInteger(p) || p < 1 || p > 4) throw fail(`scrypt p ${p} outside 1..4`);
}

async function deriveKey(passphrase: string, salt: Uint8Array, cost: ScryptCost): Promise<AeadKey> {
  const bytes = await scryptAsync(utf8(passphrase.normalize("NFC")), salt, {
    N: 2 ** cost.logN,
    r: cost.r,
    p: cost.p,
    dkLen: 32,
    maxmem: 2 ** 31,
  });
  const key = AeadKey.from(bytes);
  bytes.fill(0);
  return key;
}

/**
 * Seals `secret` under `passphrase`.
 *
 * @example
 * ```ts
 * import { openKeyFile, sealKeyFile } from "@spores/spores/crypto";
 * const file = await sealKeyFile(new Uint8Array([1, 2, 3]), "correct horse", { logN: 10, r: 8, p: 1 });
 * console.assert((await openKeyFile(file, "correct horse"))[2] === 3);
 * ```
 */
export async function sealKeyFile(
  secret: Uint8Array,
  passphrase: string,
  cost: ScryptCost = DEFAULT_SCRYPT_COST,
): Promise<Uint8Array> {
  if (typeof passphrase !== "string" || passphrase.length === 0) {
    throw new ConfigError("a key file needs a non-empty passphrase");
  }
  if (secret.length > MAX_SECRET) throw new ConfigError(`a key file holds at most ${MAX_SECRET} bytes`);
  checkCost(cost, (m) => new ConfigError(m));
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const header = concat(MAGIC, new Uint8Array([VERSION, KDF_SCRYPT, cost.logN, cost.r, cost.p]), salt, nonce);
  const key = await deriveKey(passphrase, salt, cost);
  const sealed = sealSync(key, nonce, secret, header);
  key.destroy();
  const body = concat(header, sealed);
  return concat(body, sha256Sync(body));
}

/**
 * Opens a key file. A `KeyFileError` when the bytes are not an intact key
 * file of a known version; a `PassphraseError` when they are, but the
 * passphrase does not open them.
 *
 * @example
 * ```ts
 * import { openKeyFile, PassphraseError, sealKeyFile } from "@spores/spores/crypto";
 * const file = await sealKeyFile(new Uint8Array([1]), "right", { logN: 10, r: 8, p: 1 });
 * await openKeyFile(file, "wrong").catch((e) => console.assert(e instanceof PassphraseError));
 * ```
 */
export async function openKeyFile(file: Uint8Array, passphrase: string): Promise<Uint8Array> {
  if (!(file instanceof Uint8Array)) throw new KeyFileError("a key file must be bytes");
  if (file.length < HEADER_LENGTH + TAG_LENGTH + CHECKSUM_LENGTH) {
    throw new KeyFileError("key file truncated");
  }
  if (file.length > HEADER_LENGTH + MAX_SECRET + TAG_LENGTH + CHECKSUM_LENGTH) {
    throw new KeyFileError("key file too large");
  }
  if (!equalBytes(file.subarray(0, 4), MAGIC)) throw new KeyFileError("not a Spores key file (bad magic)");
  const body = file.subarray(0, file.length - CHECKSUM_LENGTH);
  if (!equalBytes(sha256Sync(body), file.subarray(body.length))) {
    throw new KeyFileError("key file corrupted (checksum mismatch)");
  }
  if (file[4] !== VERSION) throw new KeyFileError(`unsupported key file version ${file[4]}`);
  if (file[5] !== KDF_SCRYPT) throw new KeyFileError(`unsupported key file kdf ${file[5]}`);
  const cost: ScryptCost = { logN: file[6]!, r: file[7]!, p: file[8]! };
  checkCost(cost, (m) => new KeyFileError(m));
  const header = body.subarray(0, HEADER_LENGTH);
  const key = await deriveKey(passphrase, header.subarray(9, 25), cost);
  try {
    return openSync(key, header.subarray(25, 37), body.subarray(HEADER_LENGTH), header);
  } catch (cause) {
    if (cause instanceof DecryptError) throw new PassphraseError({ cause });
    throw cause;
  } finally {
    key.destroy();
  }
}
