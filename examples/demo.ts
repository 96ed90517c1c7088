/**
 * The Spores demo: two agents exchange a post-quantum sealed message.
 *
 * Run: `deno task demo` (no permission needed).
 *
 * Bob publishes his X-Wing key; Alice encapsulates to it, encrypts with
 * ChaCha20-Poly1305 under a key derived by HKDF, and signs with Ed25519. Bob
 * verifies, decapsulates and decrypts; a tampered copy is refused.
 *
 * @module
 */
import { AeadKey, concat, DecryptError, Identity, provider, SporeError, utf8 } from "../mod.ts";

const ms = (start: number) => `${(performance.now() - start).toFixed(2)} ms`;
const crypto = await provider();
console.log("backends:", JSON.stringify(crypto.backends));

let t = performance.now();
const [alice, bob] = await Promise.all([Identity.generate(), Identity.generate()]);
console.log(`identities   alice ${alice.fingerprint}\n             bob   ${bob.fingerprint}  (${ms(t)})`);

async function seal(from: Identity, toKemKey: Uint8Array, text: string) {
  const { ciphertext: enc, sharedSecret } = await crypto.xwing.encapsulate(toKemKey);
  const key = AeadKey.from(await crypto.kdf.hkdf(sharedSecret, new Uint8Array(0), utf8("demo v1"), 32));
  const nonce = new Uint8Array(12);
  const body = await crypto.aead.seal(key, nonce, utf8(text), enc);
  const signature = await from.sign(concat(enc, body));
  return { enc, body, signature };
}

async function open(to: Identity, fromSigningKey: Uint8Array, spore: Awaited<ReturnType<typeof seal>>) {
  if (!(await crypto.ed25519.verify(fromSigningKey, spore.signature, concat(spore.enc, spore.body)))) {
    throw new DecryptError();
  }
  const shared = await to.decapsulate(spore.enc);
  const key = AeadKey.from(await crypto.kdf.hkdf(shared, new Uint8Array(0), utf8("demo v1"), 32));
  return new TextDecoder().decode(await crypto.aead.open(key, new Uint8Array(12), spore.body, spore.enc));
}

t = performance.now();
const spore = await seal(alice, bob.publicKeys().xwing, "hello bob, from alice");
const size = spore.enc.length + spore.body.length + spore.signature.length;
console.log(`alice → bob  sealed X-Wing + ChaCha20-Poly1305 + Ed25519, ${size} bytes (${ms(t)})`);

t = performance.now();
console.log(`bob opened   "${await open(bob, alice.publicKeys().ed25519, spore)}" (${ms(t)})`);

const tampered = { ...spore, body: spore.body.slice() };
tampered.body[0]! ^= 1;
try {
  await open(bob, alice.publicKeys().ed25519, tampered);
  console.log("tampered spore accepted: this must not happen");
  Deno.exitCode = 1;
} catch (e) {
  if (!(e instanceof SporeError)) throw e;
  console.log(`tampered     refused with ${e.name} (${e.code})`);
}
