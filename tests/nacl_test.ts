// The classic NaCl suite, and byte compatibility with PyNaCl (libsodium).
import assert from "node:assert/strict";
import { DecryptError, hex, naclBox, provider } from "../crypto/mod.ts";
import { requireTool } from "./_env.ts";

Deno.test("box round trip; every tampered byte is a DecryptError", () => {
  const alice = naclBox.generateKeyPair();
  const bob = naclBox.generateKeyPair();
  const msg = crypto.getRandomValues(new Uint8Array(64));
  const sealed = naclBox.encrypt(msg, bob.publicKey, alice.privateKey);
  assert.equal(sealed.length, 24 + 16 + 64);
  assert.deepEqual(naclBox.decrypt(sealed, alice.publicKey, bob.privateKey), msg);
  for (let i = 0; i < sealed.length; i++) {
    const bad = sealed.slice();
    bad[i]! ^= 1;
    assert.throws(() => naclBox.decrypt(bad, alice.publicKey, bob.privateKey), DecryptError);
  }
  assert.throws(() => naclBox.decrypt(sealed.subarray(0, 30), alice.publicKey, bob.privateKey), DecryptError);
});

const PY = `
import sys, json
from nacl.public import PrivateKey, PublicKey, Box
from nacl.signing import SigningKey, VerifyKey
req = json.loads(sys.stdin.read())
ours = PrivateKey(bytes.fromhex(req["boxSecret"]))
theirs = PublicKey(bytes.fromhex(req["peerPublic"]))
box = Box(ours, theirs)
opened = box.decrypt(bytes.fromhex(req["sealed"]))
sk = SigningKey(bytes.fromhex(req["signSeed"]))
VerifyKey(bytes.fromhex(req["verifyKey"])).verify(bytes.fromhex(req["message"]), bytes.fromhex(req["signature"]))
reply = box.encrypt(b"reply:" + opened, bytes.fromhex(req["nonce"]))
print(json.dumps({
  "opened": opened.hex(),
  "public": ours.public_key.encode().hex(),
  "reply": bytes(reply).hex(),
  "signature": sk.sign(opened).signature.hex(),
  "verifyKey": sk.verify_key.encode().hex(),
}))
`;

Deno.test("interoperates with PyNaCl Box and SigningKey", async () => {
  const python = await requireTool("python3-nacl", ["/usr/bin/python3", "-c", "import nacl"]);
  if (!python) return;
  const ts = naclBox.generateKeyPair();
  const pySecret = crypto.getRandomValues(new Uint8Array(32));
  const py = naclBox.keyPairFromSecret(pySecret);
  const message = crypto.getRandomValues(new Uint8Array(100));
  const { ed25519 } = await provider();
  const signer = await ed25519.generateKeyPair();
  const signSeed = crypto.getRandomValues(new Uint8Array(32));
  const nonce = crypto.getRandomValues(new Uint8Array(24));
  const request = {
    boxSecret: hex.encode(pySecret),
    peerPublic: hex.encode(ts.publicKey),
    sealed: hex.encode(naclBox.encrypt(message, py.publicKey, ts.privateKey)),
    message: hex.encode(message),
    signature: hex.encode(await ed25519.sign(signer.privateKey, message)),
    verifyKey: hex.encode(signer.publicKey),
    signSeed: hex.encode(signSeed),
    nonce: hex.encode(nonce),
  };
  const child = new Deno.Command("/usr/bin/python3", { args: ["-c", PY], stdin: "piped", stdout: "piped" })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(request)));
  await writer.close();
  const out = await child.output();
  assert.equal(out.code, 0, "PyNaCl refused our box or signature");
  const reply = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(reply.opened, hex.encode(message));
  assert.equal(reply.public, hex.encode(py.publicKey));
  // PyNaCl's box, with the nonce we chose, is byte-identical to ours.
  const expected = naclBox.encrypt(
    new Uint8Array([...new TextEncoder().encode("reply:"), ...message]),
    ts.publicKey,
    py.privateKey,
    nonce,
  );
  assert.equal(reply.reply, hex.encode(expected));
  assert.deepEqual(
    naclBox.decrypt(hex.decode(reply.reply), py.publicKey, ts.privateKey).subarray(6),
    message,
  );
  // PyNaCl's Ed25519 signature is the one we compute from the same seed.
  const same = await ed25519.keyPairFromSeed(signSeed);
  assert.equal(reply.verifyKey, hex.encode(same.publicKey));
  assert.equal(reply.signature, hex.encode(await ed25519.sign(same.privateKey, message)));
});
