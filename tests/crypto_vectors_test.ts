// Known-answer tests from the RFCs and the X-Wing draft, on both backends.
import assert from "node:assert/strict";
import { ml_kem768_x25519 } from "@noble/post-quantum/hybrid.js";
import {
  AeadKey,
  createXWing,
  DecryptError,
  hkdfSync,
  nativeAead,
  nativeEd25519,
  nativeKdf,
  nativeMlKem768,
  nativeX25519,
  nobleAead,
  nobleEd25519,
  nobleKdf,
  nobleMlKem768,
  nobleX25519,
} from "../crypto/mod.ts";
import { concat } from "../crypto/bytes.ts";
import { h, loadVectors } from "./_vectors.ts";

const backends = {
  native: {
    ed25519: nativeEd25519,
    x25519: nativeX25519,
    aead: nativeAead,
    kdf: nativeKdf,
    kem: nativeMlKem768,
  },
  noble: { ed25519: nobleEd25519, x25519: nobleX25519, aead: nobleAead, kdf: nobleKdf, kem: nobleMlKem768 },
};

interface AeadVector {
  name: string;
  key: string;
  nonce: string;
  aad: string;
  plaintext: string;
  ciphertext: string;
  tag: string;
}
interface HkdfVector {
  name: string;
  ikm: string;
  salt: string;
  info: string;
  length: number;
  okm: string;
}
interface EdVector {
  name: string;
  secret: string;
  public: string;
  message: string;
  signature: string;
}
interface XVectors {
  scalarmult: { name: string; scalar: string; u: string; output: string }[];
  dh: Record<"alicePrivate" | "alicePublic" | "bobPrivate" | "bobPublic" | "shared", string>;
}
interface XWingVector {
  seed: string;
  eseed: string;
  pk: string;
  ct: string;
  ss: string;
}

const chacha = loadVectors<{ vectors: AeadVector[] }>("chacha20poly1305").vectors;
const hkdf = loadVectors<{ vectors: HkdfVector[] }>("hkdf_sha256").vectors;
const ed = loadVectors<{ vectors: EdVector[] }>("ed25519").vectors;
const x = loadVectors<XVectors>("x25519");
const xwingVectors = loadVectors<{ vectors: XWingVector[] }>("xwing").vectors;

for (const [name, b] of Object.entries(backends)) {
  Deno.test(`ChaCha20-Poly1305 RFC 8439 vectors (${name})`, async () => {
    for (const v of chacha) {
      const key = AeadKey.from(h(v.key));
      const sealed = await b.aead.seal(key, h(v.nonce), h(v.plaintext), h(v.aad));
      assert.deepEqual(sealed, concat(h(v.ciphertext), h(v.tag)), v.name);
      assert.deepEqual(await b.aead.open(key, h(v.nonce), sealed, h(v.aad)), h(v.plaintext), v.name);
      const bad = sealed.slice();
      bad[bad.length - 1]! ^= 1;
      await assert.rejects(b.aead.open(key, h(v.nonce), bad, h(v.aad)), DecryptError);
      await assert.rejects(b.aead.open(key, h(v.nonce), sealed, new Uint8Array(1)), DecryptError);
    }
  });

  Deno.test(`HKDF-SHA-256 RFC 5869 A.1-A.3 (${name})`, async () => {
    for (const v of hkdf) {
      assert.deepEqual(await b.kdf.hkdf(h(v.ikm), h(v.salt), h(v.info), v.length), h(v.okm), v.name);
    }
  });

  Deno.test(`Ed25519 RFC 8032 §7.1 (${name})`, async () => {
    for (const v of ed) {
      const { publicKey, privateKey } = await b.ed25519.keyPairFromSeed(h(v.secret));
      assert.deepEqual(publicKey, h(v.public), v.name);
      assert.deepEqual(await b.ed25519.sign(privateKey, h(v.message)), h(v.signature), v.name);
      assert.equal(await b.ed25519.verify(h(v.public), h(v.signature), h(v.message)), true);
      const forged = h(v.signature);
      forged[0]! ^= 1;
      assert.equal(await b.ed25519.verify(h(v.public), forged, h(v.message)), false);
      assert.equal(await b.ed25519.verify(h(v.public), h(v.signature), h("00")), false);
    }
  });

  Deno.test(`X25519 RFC 7748 §5.2 and §6.1 (${name})`, async () => {
    for (const v of x.scalarmult) {
      const { privateKey } = await b.x25519.keyPairFromSecret(h(v.scalar));
      assert.deepEqual(await b.x25519.deriveSharedSecret(privateKey, h(v.u)), h(v.output), v.name);
    }
    const alice = await b.x25519.keyPairFromSecret(h(x.dh.alicePrivate));
    const bob = await b.x25519.keyPairFromSecret(h(x.dh.bobPrivate));
    assert.deepEqual(alice.publicKey, h(x.dh.alicePublic));
    assert.deepEqual(bob.publicKey, h(x.dh.bobPublic));
    assert.deepEqual(await b.x25519.deriveSharedSecret(alice.privateKey, bob.publicKey), h(x.dh.shared));
    assert.deepEqual(await b.x25519.deriveSharedSecret(bob.privateKey, alice.publicKey), h(x.dh.shared));
    // A low-order point gives an all-zero secret: refused.
    await assert.rejects(b.x25519.deriveSharedSecret(alice.privateKey, new Uint8Array(32)), DecryptError);
  });

  Deno.test(`X-Wing draft vectors: keygen and decapsulate (${name})`, async () => {
    const xwing = createXWing(b.kem, b.x25519);
    for (const v of xwingVectors) {
      const { publicKey, privateKey } = await xwing.keyPairFromSeed(h(v.seed));
      assert.deepEqual(publicKey, h(v.pk));
      assert.deepEqual(await xwing.decapsulate(privateKey, h(v.ct)), h(v.ss));
    }
  });
}

Deno.test("X-Wing draft vectors: deterministic encapsulation (noble)", async () => {
  const xwing = createXWing(nobleMlKem768, nobleX25519);
  for (const v of xwingVectors) {
    const { ciphertext, sharedSecret } = await xwing.encapsulate(h(v.pk), h(v.eseed));
    assert.deepEqual(ciphertext, h(v.ct));
    assert.deepEqual(sharedSecret, h(v.ss));
  }
});

Deno.test("X-Wing native encapsulation decapsulates here and in @noble/post-quantum", async () => {
  const xwing = createXWing(nativeMlKem768, nativeX25519);
  await assert.rejects(xwing.encapsulate(h(xwingVectors[0]!.pk), h(xwingVectors[0]!.eseed)));
  for (const v of xwingVectors) {
    const { privateKey } = await xwing.keyPairFromSeed(h(v.seed));
    const { ciphertext, sharedSecret } = await xwing.encapsulate(h(v.pk));
    assert.equal(ciphertext.length, 1120);
    assert.deepEqual(await xwing.decapsulate(privateKey, ciphertext), sharedSecret);
    // An independent implementation agrees.
    assert.deepEqual(ml_kem768_x25519.decapsulate(ciphertext, h(v.seed)), sharedSecret);
    // ...and the other way round.
    const theirs = ml_kem768_x25519.encapsulate(h(v.pk));
    assert.deepEqual(await xwing.decapsulate(privateKey, theirs.cipherText), theirs.sharedSecret);
  }
});

Deno.test("X-Wing rejects malformed public keys and ciphertexts with DecryptError", async () => {
  for (const xwing of [createXWing(nativeMlKem768, nativeX25519), createXWing(nobleMlKem768, nobleX25519)]) {
    const { publicKey, privateKey } = await xwing.generateKeyPair();
    await assert.rejects(xwing.encapsulate(publicKey.subarray(1)), DecryptError);
    // ML-KEM public key with a coefficient out of range (all 0xff bytes).
    const bad = publicKey.slice();
    bad.fill(0xff, 0, 384);
    await assert.rejects(xwing.encapsulate(bad), DecryptError);
    await assert.rejects(xwing.decapsulate(privateKey, new Uint8Array(1119)), DecryptError);
  }
});

Deno.test("hkdfSync matches RFC 5869 A.1", () => {
  const v = hkdf[0]!;
  assert.deepEqual(hkdfSync(h(v.ikm), h(v.salt), h(v.info), v.length), h(v.okm));
});
