// Every primitive, native Web Crypto against the @noble/* fallback; the AEAD
// at three sizes, one call at a time and 32 in flight.
// Run: deno task bench  (or deno bench bench/crypto.bench.ts)
import {
  AeadKey,
  createXWing,
  nativeAead,
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
  randomBytes,
} from "../crypto/mod.ts";

const backends = {
  native: {
    ed25519: nativeEd25519,
    mlDsa65: nativeMlDsa65,
    x25519: nativeX25519,
    mlKem768: nativeMlKem768,
    aead: nativeAead,
    kdf: nativeKdf,
  },
  noble: {
    ed25519: nobleEd25519,
    mlDsa65: nobleMlDsa65,
    x25519: nobleX25519,
    mlKem768: nobleMlKem768,
    aead: nobleAead,
    kdf: nobleKdf,
  },
};

const msg = randomBytes(1024);
for (const [name, b] of Object.entries(backends)) {
  const baseline = name === "native";
  const ed = await b.ed25519.generateKeyPair();
  const edSig = await b.ed25519.sign(ed.privateKey, msg);
  Deno.bench({ name: `${name}`, group: "Ed25519 sign 1 KiB", baseline }, async () => {
    await b.ed25519.sign(ed.privateKey, msg);
  });
  Deno.bench({ name: `${name}`, group: "Ed25519 verify 1 KiB", baseline }, async () => {
    await b.ed25519.verify(ed.publicKey, edSig, msg);
  });

  const dsa = await b.mlDsa65.generateKeyPair();
  const dsaSig = await b.mlDsa65.sign(dsa.privateKey, msg);
  Deno.bench({ name: `${name}`, group: "ML-DSA-65 sign 1 KiB", baseline }, async () => {
    await b.mlDsa65.sign(dsa.privateKey, msg);
  });
  Deno.bench({ name: `${name}`, group: "ML-DSA-65 verify 1 KiB", baseline }, async () => {
    await b.mlDsa65.verify(dsa.publicKey, dsaSig, msg);
  });

  const x1 = await b.x25519.generateKeyPair();
  const x2 = await b.x25519.generateKeyPair();
  Deno.bench({ name: `${name}`, group: "X25519 shared secret", baseline }, async () => {
    await b.x25519.deriveSharedSecret(x1.privateKey, x2.publicKey);
  });

  const kem = await b.mlKem768.generateKeyPair();
  const enc = await b.mlKem768.encapsulate(kem.publicKey);
  Deno.bench({ name: `${name}`, group: "ML-KEM-768 keygen", baseline }, async () => {
    await b.mlKem768.generateKeyPair();
  });
  Deno.bench({ name: `${name}`, group: "ML-KEM-768 encapsulate", baseline }, async () => {
    await b.mlKem768.encapsulate(kem.publicKey);
  });
  Deno.bench({ name: `${name}`, group: "ML-KEM-768 decapsulate", baseline }, async () => {
    await b.mlKem768.decapsulate(kem.privateKey, enc.ciphertext);
  });

  const xwing = createXWing(b.mlKem768, b.x25519);
  const xw = await xwing.generateKeyPair();
  const xwEnc = await xwing.encapsulate(xw.publicKey);
  Deno.bench({ name: `${name}`, group: "X-Wing encapsulate", baseline }, async () => {
    await xwing.encapsulate(xw.publicKey);
  });
  Deno.bench({ name: `${name}`, group: "X-Wing decapsulate", baseline }, async () => {
    await xwing.decapsulate(xw.privateKey, xwEnc.ciphertext);
  });

  const ikm = randomBytes(32);
  const info = randomBytes(64);
  Deno.bench({ name: `${name}`, group: "HKDF-SHA-256 32 B → 64 B", baseline }, async () => {
    await b.kdf.hkdf(ikm, new Uint8Array(0), info, 64);
  });

  const key = AeadKey.from(randomBytes(32));
  const nonce = randomBytes(12);
  const aad = randomBytes(64);
  for (
    const [label, size] of [["64 B", 64], ["1 KiB", 1024], ["4 KiB", 4096], ["16 KiB", 16384], [
      "64 KiB",
      65536,
    ]] as const
  ) {
    const plaintext = randomBytes(size);
    const sealed = await b.aead.seal(key, nonce, plaintext, aad);
    Deno.bench({ name: `${name}`, group: `AEAD seal ${label}, 1 in flight`, baseline }, async () => {
      await b.aead.seal(key, nonce, plaintext, aad);
    });
    Deno.bench({ name: `${name}`, group: `AEAD open ${label}, 1 in flight`, baseline }, async () => {
      await b.aead.open(key, nonce, sealed, aad);
    });
    Deno.bench({ name: `${name}`, group: `AEAD seal ${label} ×32, 32 in flight`, baseline }, async () => {
      const all = [];
      for (let i = 0; i < 32; i++) all.push(b.aead.seal(key, nonce, plaintext, aad));
      await Promise.all(all);
    });
    Deno.bench({ name: `${name}`, group: `AEAD open ${label} ×32, 32 in flight`, baseline }, async () => {
      const all = [];
      for (let i = 0; i < 32; i++) all.push(b.aead.open(key, nonce, sealed, aad));
      await Promise.all(all);
    });
  }
}
