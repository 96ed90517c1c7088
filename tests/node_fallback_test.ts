// The module on Node 20, where Web Crypto lacks what Spores uses natively: every primitive falls back to
// @noble/*, and spores made there open here on the native backend (and the other way round).
import assert from "node:assert/strict";
import { base64, Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";
import { requireTool } from "./_env.ts";

Deno.test("node: the bundled module runs on the fallback backend and interoperates with native Deno", async () => {
  if (!(await requireTool("node", ["node", "--version"]))) return;
  const root = new URL("../", import.meta.url);
  const bundle = await Deno.makeTempFile({ suffix: ".mjs" });
  try {
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform=node", "-o", bundle, "tests/fixtures/node_alice.ts"],
      cwd: root,
      stderr: "piped",
    }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));

    const directory = new MemoryDirectory();
    const bob = await SporeEngine.create({
      id: "bob",
      identity: await Identity.generate(),
      directory,
      trust: new TofuTrust(),
    });
    await bob.publishCard();
    const child = new Deno.Command("node", {
      args: [bundle],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode(JSON.stringify({ bobCard: base64.encode(await bob.card()) })),
    );
    await writer.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const node = JSON.parse(new TextDecoder().decode(out.stdout));

    // On Node every primitive was probed and fell back; the AEAD runs on libsodium's WebAssembly build there.
    const { "ChaCha20-Poly1305": aead, ...others } = node.backends;
    assert.ok(Object.values(others).every((b) => b === "noble"), JSON.stringify(node.backends));
    assert.ok(aead === "sodium" || aead === "noble", JSON.stringify(node.backends));
    // What Node sealed (X-Wing + ML-DSA-65 signatures, fallback) opens here (native).
    await directory.publish(base64.decode(node.card));
    const sealed = await bob.open(base64.decode(node.sealed));
    assert.equal(sealed.status, "message");
    if (sealed.status === "message") {
      assert.deepEqual(sealed.spore.content, { from: "node", bytes: new Uint8Array([1, 2, 3]) });
      assert.equal(sealed.spore.suite, "xwing-chacha20poly1305-ed25519+mldsa65");
    }
    // Node's hello is answered here.
    const answer = await bob.open(base64.decode(node.hello));
    assert.equal(answer.status, "handshake");
  } finally {
    await Deno.remove(bundle);
  }
});
