// Identities, fingerprints and passphrase-sealed key files.
import assert from "node:assert/strict";
import {
  ConfigError,
  fingerprint,
  Identity,
  KeyFileError,
  openKeyFile,
  PassphraseError,
  provider,
  sealKeyFile,
  sha256Sync,
} from "../crypto/mod.ts";

// Low cost for tests only; the default is N = 2^17, r = 8, p = 1.
const FAST = { logN: 10, r: 8, p: 1 };

Deno.test("a generated identity is non-extractable by default and signs verifiably", async () => {
  const id = await Identity.generate();
  assert.equal(id.extractable, false);
  assert.match(id.fingerprint, /^([a-z2-7]{4}-){7}[a-z2-7]{4}$/);
  const msg = new Uint8Array([1, 2, 3]);
  const { ed25519 } = await provider();
  assert.equal(await ed25519.verify(id.publicKeys().ed25519, await id.sign(msg), msg), true);
  await assert.rejects(id.seal("pass", FAST), ConfigError);
  await assert.rejects(id.signPostQuantum(msg), ConfigError);
  assert.deepEqual(JSON.parse(JSON.stringify(id)), { fingerprint: id.fingerprint });
});

Deno.test("fingerprints depend on every signing key byte and on the ML-DSA key", () => {
  const a = new Uint8Array(32);
  const b = a.slice();
  b[31] = 1;
  assert.notEqual(fingerprint(a), fingerprint(b));
  assert.notEqual(fingerprint(a), fingerprint(a, new Uint8Array(1952)));
  assert.equal(fingerprint(a), fingerprint(a.slice()));
});

Deno.test("key file round trip keeps every key, with and without ML-DSA-65", async () => {
  for (const postQuantumSignatures of [false, true]) {
    const id = await Identity.generate({ extractable: true, postQuantumSignatures });
    const file = await id.seal("correct horse battery staple", FAST);
    const back = await Identity.open(file, "correct horse battery staple");
    assert.equal(back.fingerprint, id.fingerprint);
    assert.deepEqual(back.publicKeys(), id.publicKeys());
    const { xwing } = await provider();
    const { ciphertext, sharedSecret } = await xwing.encapsulate(id.kemKey.publicKey);
    assert.deepEqual(await back.decapsulate(ciphertext), sharedSecret);
  }
});

Deno.test("wrong passphrase is a PassphraseError; corruption is a KeyFileError", async () => {
  const id = await Identity.generate({ extractable: true });
  const file = await id.seal("right", FAST);
  await assert.rejects(Identity.open(file, "wrong"), PassphraseError);
  // Every single-byte corruption is caught by the checksum before any KDF work.
  for (let i = 0; i < file.length; i += 7) {
    const bad = file.slice();
    bad[i]! ^= 0x40;
    await assert.rejects(Identity.open(bad, "right"), KeyFileError, `byte ${i}`);
  }
  await assert.rejects(Identity.open(file.subarray(0, 40), "right"), KeyFileError);
  await assert.rejects(Identity.open(new Uint8Array(0), "right"), KeyFileError);
  await assert.rejects(Identity.open(new Uint8Array(100_000), "right"), KeyFileError);
});

Deno.test("tampering with the ciphertext and fixing the checksum is still refused", async () => {
  const file = await sealKeyFile(new Uint8Array(65), "pw", FAST);
  const bad = file.slice();
  bad[40]! ^= 1;
  bad.set(sha256Sync(bad.subarray(0, bad.length - 32)), bad.length - 32);
  await assert.rejects(openKeyFile(bad, "pw"), PassphraseError);
});

Deno.test("a key file claiming a hostile scrypt cost is refused before deriving", async () => {
  const file = await sealKeyFile(new Uint8Array(65), "pw", FAST);
  for (const [offset, value] of [[6, 40], [7, 200], [8, 99], [4, 9], [5, 2]] as const) {
    const bad = file.slice();
    bad[offset] = value;
    bad.set(sha256Sync(bad.subarray(0, bad.length - 32)), bad.length - 32);
    await assert.rejects(openKeyFile(bad, "pw"), KeyFileError);
  }
});

Deno.test("key file options are validated", async () => {
  await assert.rejects(sealKeyFile(new Uint8Array(1), ""), ConfigError);
  await assert.rejects(sealKeyFile(new Uint8Array(1), "pw", { logN: 30, r: 8, p: 1 }), ConfigError);
  await assert.rejects(sealKeyFile(new Uint8Array(5000), "pw", FAST), ConfigError);
});

Deno.test("passphrases are compared after Unicode normalisation", async () => {
  const file = await sealKeyFile(new Uint8Array([7]), "caf\u00e9", FAST);
  assert.deepEqual(await openKeyFile(file, "cafe\u0301"), new Uint8Array([7]));
});
