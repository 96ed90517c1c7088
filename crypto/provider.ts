/**
 * Backend selection. Each primitive is probed once per process with a real
 * round trip through Web Crypto; if the probe passes the native
 * implementation is used, otherwise the `@noble/*` fallback. Tests and
 * benchmarks can force either with {@linkcode useBackend}.
 *
 * @module
 */
import { type Aead, AeadKey, nativeAead, nobleAead, sizedAead, sodiumAead } from "./aead.ts";
import { equalBytes } from "./bytes.ts";
import { nativeEd25519, nobleEd25519 } from "./ed25519.ts";
import { ConfigError } from "./errors.ts";
import { type Kdf, nativeKdf, nobleKdf } from "./kdf.ts";
import type { Backend } from "./keys.ts";
import { nativeMlDsa65, nobleMlDsa65 } from "./ml_dsa.ts";
import { type Kem, nativeMlKem768, nobleMlKem768 } from "./ml_kem.ts";
import type { SignatureScheme } from "./signature.ts";
import { type KeyAgreement, nativeX25519, nobleX25519 } from "./x25519.ts";
import { loadSodium } from "./sodium.ts";
import { createXWing, type XWing } from "./xwing.ts";

/** The primitives that have a native and a fallback implementation. */
export type Primitive =
  | "Ed25519"
  | "X25519"
  | "ML-KEM-768"
  | "ML-DSA-65"
  | "ChaCha20-Poly1305"
  | "HKDF-SHA-256";

/** The primitives, in a fixed order. */
export const PRIMITIVES: readonly Primitive[] = [
  "Ed25519",
  "X25519",
  "ML-KEM-768",
  "ML-DSA-65",
  "ChaCha20-Poly1305",
  "HKDF-SHA-256",
];

/**
 * `"auto"` probes Web Crypto and falls back to `@noble/*` when it fails (for
 * ChaCha20-Poly1305 it picks per message size, using libsodium's WebAssembly
 * build where it loads). `"sodium"` is for ChaCha20-Poly1305 only.
 */
export type BackendChoice = Backend | "auto" | "sodium";

/** One choice for every primitive, or a choice per primitive (others stay `"auto"`). */
export type BackendOptions = BackendChoice | { readonly [P in Primitive]?: BackendChoice };

/**
 * Messages shorter than this many bytes are sealed by the synchronous
 * fallback AEAD under `"auto"`; longer ones by Web Crypto. From
 * `bench/crypto.bench.ts` (see `bench/README.md`).
 */
export const AEAD_NATIVE_THRESHOLD = 4096;

/**
 * Where libsodium (WebAssembly) loads, messages shorter than this many bytes
 * are sealed by it under `"auto"`, longer ones by Web Crypto. From
 * `bench/aead.bench.ts` (see `bench/README.md`).
 */
export const AEAD_SODIUM_THRESHOLD = 8192;

/**
 * The implementations in use.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const p = await provider();
 * console.assert(p.xwing.algorithm === "X-Wing");
 * ```
 */
export interface CryptoProvider {
  /** Ed25519 signatures. */
  readonly ed25519: SignatureScheme;
  /** ML-DSA-65 signatures. */
  readonly mlDsa65: SignatureScheme;
  /** X25519 key agreement. */
  readonly x25519: KeyAgreement;
  /** ML-KEM-768. */
  readonly mlKem768: Kem;
  /** X-Wing, built on `mlKem768` and `x25519`. */
  readonly xwing: XWing;
  /** ChaCha20-Poly1305. */
  readonly aead: Aead;
  /** SHA-256 and HKDF-SHA-256. */
  readonly kdf: Kdf;
  /** Which backend each primitive uses (`"auto"` for the size-switching AEAD). */
  readonly backends: { readonly [P in Primitive]: Backend | "auto" | "sodium" };
}

const probes: { [P in Primitive]: () => Promise<boolean> } = {
  async "Ed25519"() {
    const { publicKey, privateKey } = await nativeEd25519.keyPairFromSeed(new Uint8Array(32).fill(7));
    const msg = new Uint8Array([1, 2, 3]);
    const sig = await nativeEd25519.sign(privateKey, msg);
    return await nativeEd25519.verify(publicKey, sig, msg) &&
      !(await nativeEd25519.verify(publicKey, sig, new Uint8Array([1, 2, 4])));
  },
  async "X25519"() {
    const a = await nativeX25519.keyPairFromSecret(new Uint8Array(32).fill(1));
    const b = await nativeX25519.generateKeyPair();
    return equalBytes(
      await nativeX25519.deriveSharedSecret(a.privateKey, b.publicKey),
      await nativeX25519.deriveSharedSecret(b.privateKey, a.publicKey),
    );
  },
  async "ML-KEM-768"() {
    const { publicKey, privateKey } = await nativeMlKem768.keyPairFromSeed(new Uint8Array(64).fill(3));
    const { ciphertext, sharedSecret } = await nativeMlKem768.encapsulate(publicKey);
    return equalBytes(await nativeMlKem768.decapsulate(privateKey, ciphertext), sharedSecret);
  },
  async "ML-DSA-65"() {
    const { publicKey, privateKey } = await nativeMlDsa65.keyPairFromSeed(new Uint8Array(32).fill(5));
    const msg = new Uint8Array([9]);
    return await nativeMlDsa65.verify(publicKey, await nativeMlDsa65.sign(privateKey, msg), msg);
  },
  async "ChaCha20-Poly1305"() {
    const key = AeadKey.from(new Uint8Array(32).fill(9));
    const nonce = new Uint8Array(12);
    const aad = new Uint8Array([1]);
    const msg = new Uint8Array([1, 2, 3, 4]);
    const sealed = await nativeAead.seal(key, nonce, msg, aad);
    const ok = equalBytes(sealed, await nobleAead.seal(key, nonce, msg, aad)) &&
      equalBytes(await nativeAead.open(key, nonce, sealed, aad), msg);
    key.destroy();
    return ok;
  },
  async "HKDF-SHA-256"() {
    const ikm = new Uint8Array(22).fill(0x0b);
    const info = new Uint8Array([1]);
    return equalBytes(
      await nativeKdf.hkdf(ikm, new Uint8Array(0), info, 42),
      await nobleKdf.hkdf(ikm, new Uint8Array(0), info, 42),
    );
  },
};

let options: BackendOptions = "auto";
let current: Promise<CryptoProvider> | undefined;
const probeResults = new Map<Primitive, Promise<boolean>>();

function choiceFor(primitive: Primitive): BackendChoice {
  return typeof options === "string" ? options : options[primitive] ?? "auto";
}

/** Whether Web Crypto passes the round-trip probe for `primitive` (memoised). */
export function nativeAvailable(primitive: Primitive): Promise<boolean> {
  let result = probeResults.get(primitive);
  if (result === undefined) {
    result = probes[primitive]().catch(() => false);
    probeResults.set(primitive, result);
  }
  return result;
}

async function resolve(primitive: Primitive): Promise<Backend> {
  const choice = choiceFor(primitive);
  if (choice === "sodium" && primitive !== "ChaCha20-Poly1305") {
    throw new ConfigError(`the "sodium" backend is for ChaCha20-Poly1305 only, not ${primitive}`);
  }
  if (choice === "noble") return "noble";
  const available = await nativeAvailable(primitive);
  if (choice === "native" && !available) {
    throw new ConfigError(`${primitive} is not available natively in this runtime`);
  }
  return available ? "native" : "noble";
}

async function build(): Promise<CryptoProvider> {
  const [ed, x, kem, dsa, aeadBackend, kdfBackend] = await Promise.all([
    resolve("Ed25519"),
    resolve("X25519"),
    resolve("ML-KEM-768"),
    resolve("ML-DSA-65"),
    resolve("ChaCha20-Poly1305"),
    resolve("HKDF-SHA-256"),
  ]);
  const ed25519 = ed === "native" ? nativeEd25519 : nobleEd25519;
  const x25519 = x === "native" ? nativeX25519 : nobleX25519;
  const mlKem768 = kem === "native" ? nativeMlKem768 : nobleMlKem768;
  const mlDsa65 = dsa === "native" ? nativeMlDsa65 : nobleMlDsa65;
  // "auto" picks per message size (libsodium below the threshold where it loads, else @noble/ciphers); an
  // explicit "native", "noble" or "sodium" means that one always.
  const aeadChoice = choiceFor("ChaCha20-Poly1305");
  const sodium = aeadChoice === "auto" || aeadChoice === "sodium" ? await loadSodium() : undefined;
  if (aeadChoice === "sodium" && !sodium) throw new ConfigError("libsodium did not load in this runtime");
  const small = sodium ? sodiumAead(sodium) : nobleAead;
  const aead = aeadChoice === "sodium"
    ? small
    : aeadChoice === "auto"
    ? (aeadBackend === "native"
      ? sizedAead(sodium ? AEAD_SODIUM_THRESHOLD : AEAD_NATIVE_THRESHOLD, small)
      : small)
    : aeadBackend === "native"
    ? nativeAead
    : nobleAead;
  // HKDF's inputs are tiny: a synchronous hash beats an awaited Web Crypto call
  // (bench/README.md), so "auto" keeps the fallback once native has passed its probe.
  const kdf = kdfBackend === "native" && choiceFor("HKDF-SHA-256") === "native" ? nativeKdf : nobleKdf;
  return {
    ed25519,
    mlDsa65,
    x25519,
    mlKem768,
    xwing: createXWing(mlKem768, x25519),
    aead,
    kdf,
    backends: {
      "Ed25519": ed,
      "X25519": x,
      "ML-KEM-768": kem,
      "ML-DSA-65": dsa,
      "ChaCha20-Poly1305": aead.backend,
      "HKDF-SHA-256": kdf.backend,
    },
  };
}

/**
 * The implementations this process uses, chosen on first call.
 *
 * @example
 * ```ts
 * import { provider } from "@spores/spores/crypto";
 * const { backends } = await provider();
 * console.log(backends["ML-KEM-768"]); // "native" on Deno 2.9
 * ```
 */
export function provider(): Promise<CryptoProvider> {
  current ??= build();
  return current;
}

/**
 * Forces the backend for every primitive or for some. Keys made under one
 * backend cannot be used by the other, so call this before making keys
 * (tests and benchmarks use it; applications rarely need it).
 *
 * @example Force the fallback everywhere
 * ```ts
 * import { provider, useBackend } from "@spores/spores/crypto";
 * useBackend("noble");
 * console.assert((await provider()).backends["Ed25519"] === "noble");
 * useBackend("auto");
 * ```
 */
export function useBackend(choice: BackendOptions): void {
  if (typeof choice === "string" && !["auto", "native", "noble"].includes(choice)) {
    throw new ConfigError(`unknown backend ${JSON.stringify(choice)}: use "auto", "native" or "noble"`);
  }
  options = choice;
  current = undefined;
}
