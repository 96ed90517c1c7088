// Native and fallback give identical bytes where the algorithm is
// deterministic and interoperate where it is not; selection and key handling.
import assert from "node:assert/strict";
import {
  AeadKey,
  ConfigError,
  nativeAead,
  nativeAvailable,
  nativeEd25519,
  nativeKdf,
  nativeMlDsa65,
  nativeMlKem768,
  nativeX25519,
  nobleAead,
  nobleEd25519,
  nobleKdf,
  nobleMlDsa65,
  nobleMlKem768,
  nobleX25519,
  PRIMITIVES,
  provider,
  randomBytes,
  sizedAead,
  useBackend,
} from "../crypto/mod.ts";

const sizes = [0, 1, 15, 16, 17, 63, 64, 65, 1000, 4095, 4096, 70_000];

Deno.test("Web Crypto passes every round-trip probe on this runtime", async () => {
  for (const p of PRIMITIVES) assert.equal(await nativeAvailable(p), true, p);
});

Deno.test("Ed25519: identical keys and signatures on both backends", async () => {
  for (const size of sizes) {
    const seed = randomBytes(32);
    const msg = randomBytes(size);
    const a = await nativeEd25519.keyPairFromSeed(seed);
    const b = await nobleEd25519.keyPairFromSeed(seed);
    assert.deepEqual(a.publicKey, b.publicKey);
    const sig = await nativeEd25519.sign(a.privateKey, msg);
    assert.deepEqual(sig, await nobleEd25519.sign(b.privateKey, msg));
    assert.equal(await nobleEd25519.verify(a.publicKey, sig, msg), true);
  }
});

Deno.test("ML-DSA-65: identical keys from a seed, signatures verify across backends", async () => {
  const seed = randomBytes(32);
  const msg = randomBytes(100);
  const a = await nativeMlDsa65.keyPairFromSeed(seed);
  const b = await nobleMlDsa65.keyPairFromSeed(seed);
  assert.deepEqual(a.publicKey, b.publicKey);
  const sigA = await nativeMlDsa65.sign(a.privateKey, msg);
  const sigB = await nobleMlDsa65.sign(b.privateKey, msg);
  assert.equal(sigA.length, 3309);
  assert.equal(await nobleMlDsa65.verify(a.publicKey, sigA, msg), true);
  assert.equal(await nativeMlDsa65.verify(b.publicKey, sigB, msg), true);
  const forged = sigA.slice();
  forged[100]! ^= 4;
  assert.equal(await nativeMlDsa65.verify(a.publicKey, forged, msg), false);
  assert.equal(await nobleMlDsa65.verify(a.publicKey, forged, msg), false);
  assert.equal(await nativeMlDsa65.verify(a.publicKey.subarray(1), sigA, msg), false);
});

Deno.test("ML-KEM-768: identical keys from a seed, encapsulations cross-decapsulate", async () => {
  const seed = randomBytes(64);
  const a = await nativeMlKem768.keyPairFromSeed(seed);
  const b = await nobleMlKem768.keyPairFromSeed(seed);
  assert.deepEqual(a.publicKey, b.publicKey);
  const e1 = await nativeMlKem768.encapsulate(a.publicKey);
  assert.deepEqual(await nobleMlKem768.decapsulate(b.privateKey, e1.ciphertext), e1.sharedSecret);
  const e2 = await nobleMlKem768.encapsulate(b.publicKey);
  assert.deepEqual(await nativeMlKem768.decapsulate(a.privateKey, e2.ciphertext), e2.sharedSecret);
});

Deno.test("X25519: identical public keys and shared secrets", async () => {
  const s1 = randomBytes(32);
  const s2 = randomBytes(32);
  const [n1, n2, j1, j2] = await Promise.all([
    nativeX25519.keyPairFromSecret(s1),
    nativeX25519.keyPairFromSecret(s2),
    nobleX25519.keyPairFromSecret(s1),
    nobleX25519.keyPairFromSecret(s2),
  ]);
  assert.deepEqual(n1.publicKey, j1.publicKey);
  assert.deepEqual(
    await nativeX25519.deriveSharedSecret(n1.privateKey, n2.publicKey),
    await nobleX25519.deriveSharedSecret(j2.privateKey, j1.publicKey),
  );
});

Deno.test("ChaCha20-Poly1305: identical output on native, fallback and size-switching", async () => {
  const sized = sizedAead(4096);
  for (const size of sizes) {
    const key = AeadKey.from(randomBytes(32));
    const nonce = randomBytes(12);
    const aad = randomBytes(size % 50);
    const msg = randomBytes(size);
    const a = await nativeAead.seal(key, nonce, msg, aad);
    assert.deepEqual(a, await nobleAead.seal(key, nonce, msg, aad), `size ${size}`);
    assert.deepEqual(a, await sized.seal(key, nonce, msg, aad));
    assert.deepEqual(await nobleAead.open(key, nonce, a, aad), msg);
    assert.deepEqual(await sized.open(key, nonce, a, aad), msg);
  }
});

Deno.test("HKDF and SHA-256: identical output on both backends", async () => {
  for (const size of [0, 32, 100, 1000]) {
    const ikm = randomBytes(size);
    const salt = randomBytes(size % 33);
    const info = randomBytes(size % 17);
    assert.deepEqual(await nativeKdf.sha256(ikm), await nobleKdf.sha256(ikm));
    assert.deepEqual(await nativeKdf.hkdf(ikm, salt, info, 77), await nobleKdf.hkdf(ikm, salt, info, 77));
  }
  await assert.rejects(
    nobleKdf.hkdf(new Uint8Array(1), new Uint8Array(0), new Uint8Array(0), 9000),
    ConfigError,
  );
});

Deno.test("useBackend forces a backend; keys cannot cross backends", async () => {
  try {
    useBackend("noble");
    const noble = await provider();
    assert.ok(Object.values(noble.backends).every((b) => b === "noble"));
    const key = await noble.ed25519.generateKeyPair();
    useBackend("native");
    const native = await provider();
    assert.equal(native.backends["ML-KEM-768"], "native");
    assert.equal(native.backends["ChaCha20-Poly1305"], "native");
    await assert.rejects(() => native.ed25519.sign(key.privateKey, new Uint8Array(1)), ConfigError);
    useBackend({ "ML-DSA-65": "noble" });
    const mixed = await provider();
    assert.equal(mixed.backends["ML-DSA-65"], "noble");
    assert.equal(mixed.backends["Ed25519"], "native");
    assert.equal(mixed.backends["ChaCha20-Poly1305"], "auto");
    assert.throws(() => useBackend("fast" as "auto"), ConfigError);
  } finally {
    useBackend("auto");
  }
});

Deno.test("private keys never show their secret when logged or serialised", async () => {
  const seed = new Uint8Array(32).fill(0xab);
  for (const scheme of [nativeEd25519, nobleEd25519]) {
    const { privateKey } = await scheme.keyPairFromSeed(seed, { extractable: true });
    const shown = [JSON.stringify(privateKey), String(privateKey), Deno.inspect(privateKey, { depth: 10 })];
    for (const text of shown) {
      assert.ok(!text.includes("171") && !text.toLowerCase().includes("abab"), text);
    }
    assert.deepEqual(await scheme.exportSeed(privateKey), seed);
    const locked = await scheme.keyPairFromSeed(seed);
    await assert.rejects(() => scheme.exportSeed(locked.privateKey), ConfigError);
  }
  const key = AeadKey.from(seed);
  assert.ok(!Deno.inspect(key, { depth: 10 }).includes("171"));
  key.destroy();
  await assert.rejects(
    nobleAead.seal(key, new Uint8Array(12), new Uint8Array(1), new Uint8Array(0)),
    ConfigError,
  );
});
