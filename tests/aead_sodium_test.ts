// ChaCha20-Poly1305 through libsodium (WebAssembly): identical to the other backends, strict on tampering,
// and chosen by "auto" for messages below the threshold.
import assert from "node:assert/strict";
import {
  AEAD_SODIUM_THRESHOLD,
  AeadKey,
  DecryptError,
  loadSodium,
  nativeAead,
  nobleAead,
  provider,
  randomBytes,
  sodiumAead,
  useBackend,
} from "../crypto/mod.ts";

Deno.test("libsodium ChaCha20-Poly1305 matches noble and Web Crypto byte for byte, and refuses tampering", async () => {
  const sodium = sodiumAead((await loadSodium())!);
  const key = AeadKey.from(randomBytes(32));
  for (const size of [0, 1, 63, 1024, 8191, 70_000]) {
    const nonce = randomBytes(12);
    const aad = randomBytes(size % 50);
    const pt = randomBytes(size);
    const ct = await sodium.seal(key, nonce, pt, aad);
    assert.deepEqual(ct, await nobleAead.seal(key, nonce, pt, aad));
    assert.deepEqual(ct, await nativeAead.seal(key, nonce, pt, aad));
    assert.deepEqual(await sodium.open(key, nonce, await nobleAead.seal(key, nonce, pt, aad), aad), pt);
    for (const i of [0, ct.length >> 1, ct.length - 1]) {
      const bad = ct.slice();
      bad[i]! ^= 1;
      await assert.rejects(sodium.open(key, nonce, bad, aad), DecryptError);
    }
    if (aad.length > 0) {
      const badAad = aad.slice();
      badAad[0]! ^= 1;
      await assert.rejects(sodium.open(key, nonce, ct, badAad), DecryptError);
    }
  }
  await assert.rejects(
    sodium.open(key, new Uint8Array(12), new Uint8Array(15), new Uint8Array(0)),
    DecryptError,
  );
  assert.throws(() => sodium.sealSync(key, new Uint8Array(8), new Uint8Array(1), new Uint8Array(0)));
});

Deno.test("auto: libsodium below the threshold, Web Crypto above; an explicit sodium choice works", async () => {
  try {
    useBackend("auto");
    const p = await provider();
    assert.equal(p.backends["ChaCha20-Poly1305"], "auto");
    const key = AeadKey.from(randomBytes(32));
    const nonce = randomBytes(12);
    for (const size of [100, AEAD_SODIUM_THRESHOLD - 1, AEAD_SODIUM_THRESHOLD]) {
      const pt = randomBytes(size);
      assert.deepEqual(
        await p.aead.seal(key, nonce, pt, new Uint8Array(0)),
        await nobleAead.seal(key, nonce, pt, new Uint8Array(0)),
      );
    }
    useBackend({ "ChaCha20-Poly1305": "sodium" });
    assert.equal((await provider()).backends["ChaCha20-Poly1305"], "sodium");
    useBackend({ "Ed25519": "sodium" });
    await assert.rejects(provider());
  } finally {
    useBackend("auto");
  }
});

Deno.test("libsodium AEAD leaves neither key nor plaintext in the WebAssembly heap", async () => {
  const sodium = (await loadSodium())!;
  const aead = sodiumAead(sodium);
  const keyBytes = randomBytes(32);
  const key = AeadKey.from(keyBytes);
  const secret = randomBytes(64);
  const nonce = randomBytes(12);
  const sealed = aead.sealSync(key, nonce, secret, new Uint8Array(0));
  assert.deepEqual(aead.openSync(key, nonce, sealed, new Uint8Array(0)), secret);
  const heap = sodium.libsodium!.HEAPU8;
  const contains = (needle: Uint8Array) => {
    for (let i = heap.indexOf(needle[0]!); i >= 0; i = heap.indexOf(needle[0]!, i + 1)) {
      let j = 1;
      while (j < needle.length && heap[i + j] === needle[j]) j++;
      if (j === needle.length) return true;
    }
    return false;
  };
  assert.ok(!contains(keyBytes), "key bytes left in the heap");
  assert.ok(!contains(secret), "plaintext left in the heap");
});
