// The Praval profile's codec, keys and seal/open, byte-checked against an
// independent Python peer (PyNaCl + msgpack): stored vectors and a live round trip.
import assert from "node:assert/strict";
import {
  ClockSkewError,
  ConfigError,
  DecryptError,
  ExpiredError,
  hex,
  KeyChangedError,
  ProtocolError,
  RecipientError,
  SignatureError,
  SporeError,
  TooLargeError,
  UnknownSenderError,
  UnsupportedError,
} from "../crypto/mod.ts";
import {
  canonicalTraceContext,
  decodeKnowledge,
  decodePravalSpore,
  encodeKnowledge,
  encodePravalSpore,
  openPravalSpore,
  type PravalExportedKeys,
  PravalKeyPair,
  PravalPublicKeys,
  PravalReplayGuard,
  sealPravalSpore,
} from "../spore/mod.ts";
import { requireTool } from "./_env.ts";

interface VectorSpore {
  name: string;
  sporeType: string;
  priority: number;
  createdAt: number;
  expiresAt: number | null;
  id: string;
  nonce: string;
  traceContext: Record<string, string> | null;
  knowledge: Record<string, unknown>;
  knowledgeJson: string;
  spore: string;
}
const V = JSON.parse(await Deno.readTextFile(new URL("./vectors/praval_spores.json", import.meta.url))) as {
  sender: PravalExportedKeys;
  recipient: PravalExportedKeys;
  spores: VectorSpore[];
  broadcast: string;
};
const sender = await PravalKeyPair.fromExport(V.sender);
const recipient = await PravalKeyPair.fromExport(V.recipient);
const peers = new Map([[sender.agentName, sender.publicKeys()]]);

Deno.test("keys: export_keys and get_public_keys shapes round-trip", async () => {
  assert.deepEqual(sender.exportKeys(), V.sender);
  assert.equal(sender.publicKeys().toJSON().verify_key, V.sender.verify_key);
  assert.equal(sender.publicKeys().toJSON().public_key, V.sender.public_key);
  assert.ok(PravalPublicKeys.from(sender.publicKeys().toPraval()).equals(sender.publicKeys()));
  const fresh = await PravalKeyPair.generate("x");
  assert.ok((await PravalKeyPair.fromExport(fresh.exportKeys())).publicKeys().equals(fresh.publicKeys()));
  assert.ok(!JSON.stringify(fresh).includes(fresh.exportKeys().signing_key));
  const raw = { ...sender.publicKeys(), agent_name: "a", verify_key: sender.publicKeys().verifyKey };
  assert.ok(
    PravalPublicKeys.from({ ...raw, public_key: sender.publicKeys().publicKey }).equals(sender.publicKeys()),
  );
  await assert.rejects(
    () => PravalKeyPair.fromExport({ ...V.sender, verify_key: V.recipient.verify_key }),
    ConfigError,
  );
  assert.throws(
    () => PravalPublicKeys.from({ agent_name: "a", verify_key: "AAA", public_key: "" }),
    ConfigError,
  );
  // A low-order X25519 point (here 0) is refused when pinned.
  assert.throws(
    () =>
      PravalPublicKeys.from({
        agent_name: "a",
        verify_key: new Uint8Array(32),
        public_key: new Uint8Array(32),
      }),
    ConfigError,
  );
});

Deno.test("vectors: sealing gives Python's bytes; opening gives its knowledge", async () => {
  for (const v of V.spores) {
    assert.equal(new TextDecoder().decode(encodeKnowledge(v.knowledge)), v.knowledgeJson, v.name);
    const bytes = await sealPravalSpore(sender, recipient.publicKeys(), {
      sporeType: v.sporeType,
      knowledge: v.knowledge,
      priority: v.priority,
      createdAt: v.createdAt * 1000,
      expiresAt: v.expiresAt === null ? null : v.expiresAt * 1000,
      id: v.id,
      nonce: hex.decode(v.nonce),
      traceContext: v.traceContext ?? undefined,
    });
    assert.equal(hex.encode(bytes), v.spore, v.name);
    const wire = hex.decode(v.spore);
    assert.equal(hex.encode(encodePravalSpore(decodePravalSpore(wire))), v.spore, `${v.name}: re-encode`);
    const opened = await openPravalSpore(wire, recipient, { peers, now: v.createdAt * 1000 + 1000 });
    assert.deepEqual(opened.knowledge, v.knowledge, v.name);
    assert.equal(opened.spore.sporeType, v.sporeType);
    assert.equal(opened.spore.id, v.id);
    assert.deepEqual(opened.spore.traceContext ?? null, v.traceContext);
  }
});

Deno.test("an unsigned Praval broadcast is refused (SignatureError)", async () => {
  const wire = hex.decode(V.broadcast);
  assert.equal(decodePravalSpore(wire).toAgent, null);
  await assert.rejects(() => openPravalSpore(wire, recipient, { peers, now: 1767225604000 }), SignatureError);
});

Deno.test("tampering: the authenticated fields are refused, the others are exactly Praval's gap", async () => {
  const v = V.spores[1]!; // carries a trace context: ct, nonce and trace are signed
  const wire = hex.decode(v.spore);
  const now = v.createdAt * 1000 + 1000;
  const outcome: Record<string, number> = {};
  for (let i = 0; i < wire.length; i++) {
    for (const mask of [0x01, 0x80]) {
      const bad = wire.slice();
      bad[i]! ^= mask;
      let key: string;
      try {
        const opened = await openPravalSpore(bad, recipient, { peers, now });
        // Only fields Praval does not sign may change without detection, and the knowledge never does.
        assert.deepEqual(opened.knowledge, v.knowledge);
        const d = opened.spore;
        const o = decodePravalSpore(wire);
        assert.ok(
          d.id !== o.id || d.sporeType !== o.sporeType || d.priority !== o.priority ||
            d.createdAt !== o.createdAt || d.expiresAt !== o.expiresAt,
          `byte ${i} changed nothing visible`,
        );
        key = "accepted (unsigned header field)";
      } catch (e) {
        assert.ok(e instanceof SporeError, `byte ${i}: ${e}`);
        key = e.code;
      }
      outcome[key] = (outcome[key] ?? 0) + 1;
    }
  }
  assert.ok(outcome["ERR_SIGNATURE"]! > 100, JSON.stringify(outcome));
  assert.ok(!("ERR_INTERNAL" in outcome));
});

Deno.test("bad input never crashes: truncations, random bytes, oversize, strict schema", async () => {
  const wire = hex.decode(V.spores[0]!.spore);
  for (let n = 0; n < wire.length; n++) {
    assert.throws(() => decodePravalSpore(wire.subarray(0, n)), ProtocolError);
  }
  assert.throws(() => decodePravalSpore(new Uint8Array([...wire, 0])), /trailing/);
  for (let i = 0; i < 2000; i++) {
    const junk = crypto.getRandomValues(new Uint8Array(1 + (i % 300)));
    if (i % 2 === 0) junk[0] = 0x8d;
    try {
      await openPravalSpore(junk, recipient, { peers });
    } catch (e) {
      assert.ok(e instanceof SporeError, String(e));
    }
  }
  const d = decodePravalSpore(wire);
  assert.throws(
    () =>
      decodePravalSpore(encodePravalSpore({ ...d, encryptedKnowledge: new Uint8Array(5000) }), {
        maxKnowledgeBytes: 4096,
      }),
    TooLargeError,
  );
  // Another version, an unknown field and a duplicated field.
  const text = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");
  const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  assert.throws(() => decodePravalSpore(bytes(text(wire).replace("\xa31.0", "\xa32.0"))), UnsupportedError);
  assert.throws(
    () => decodePravalSpore(bytes(text(wire).replace("\xa8priority", "\xa8priorita"))),
    UnsupportedError,
  );
  assert.throws(
    () => decodePravalSpore(bytes(text(wire).replace("\xa8to_agent", "\xa8priority"))),
    /repeats/,
  );
  // Knowledge that is not a JSON object, not UTF-8, NaN, or an integer a double cannot hold.
  for (const k of ["[1]", "NaN", '{"a": NaN}', '{"a": 12345678901234567890}', "\xff"]) {
    assert.throws(() => decodeKnowledge(bytes(k)), ProtocolError, k);
  }
});

Deno.test("freshness, recipient, trust and key changes are typed refusals", async () => {
  const bob = recipient.publicKeys();
  const seal = (o: { createdAt?: number; expiresAt?: number | null } = {}) =>
    sealPravalSpore(sender, bob, { sporeType: "knowledge", knowledge: { a: 1 }, ...o });
  const now = Date.now();
  await assert.rejects(
    async () => openPravalSpore(await seal({ createdAt: now - 400_000 }), recipient, { peers }),
    ExpiredError,
  );
  await assert.rejects(
    async () => openPravalSpore(await seal({ createdAt: now + 400_000 }), recipient, { peers }),
    ClockSkewError,
  );
  await assert.rejects(
    async () => openPravalSpore(await seal({ expiresAt: now - 1 }), recipient, { peers }),
    ExpiredError,
  );
  await assert.rejects(async () => openPravalSpore(await seal(), sender, { peers }), RecipientError);
  await assert.rejects(
    async () => openPravalSpore(await seal(), recipient, { peers: new Map() }),
    UnknownSenderError,
  );
  const other = await PravalKeyPair.generate(sender.agentName);
  await assert.rejects(
    async () =>
      openPravalSpore(await seal(), recipient, { peers: new Map([[sender.agentName, other.publicKeys()]]) }),
    KeyChangedError,
  );
  // Same box key, another signing key: the signature fails.
  const wrongVerify = PravalPublicKeys.from({
    agent_name: sender.agentName,
    verify_key: other.publicKeys().verifyKey,
    public_key: sender.publicKeys().publicKey,
  });
  await assert.rejects(
    async () =>
      openPravalSpore(await seal(), recipient, { peers: new Map([[sender.agentName, wrongVerify]]) }),
    SignatureError,
  );
  // A signature that verifies over a box the recipient cannot open (sealed to someone else).
  const third = await PravalKeyPair.generate("spores-bob");
  await assert.rejects(
    async () =>
      openPravalSpore(
        await sealPravalSpore(sender, third.publicKeys(), { sporeType: "knowledge", knowledge: {} }),
        recipient,
        { peers },
      ),
    DecryptError,
  );
});

Deno.test("content that cannot round-trip is refused when sent", async () => {
  const bob = recipient.publicKeys();
  for (
    const knowledge of [{ a: NaN }, { a: 2 ** 60 }, { a: new Uint8Array(1) }, { a: "\ud800" }, {
      a: undefined,
    }, { a: new Date() }]
  ) {
    await assert.rejects(
      () => sealPravalSpore(sender, bob, { sporeType: "knowledge", knowledge }),
      ConfigError,
    );
  }
  await assert.rejects(() => sealPravalSpore(sender, bob, { sporeType: "chat", knowledge: {} }), ConfigError);
  await assert.rejects(
    () => sealPravalSpore(sender, bob, { sporeType: "knowledge", knowledge: {}, priority: 0 }),
    ConfigError,
  );
  assert.equal(
    new TextDecoder().decode(canonicalTraceContext({ "é": "1", z: "2", "\u{1F30A}": "3", "\uffff": "4" })),
    '{"z":"2","é":"1","\uffff":"4","\u{1F30A}":"3"}',
  );
});

Deno.test("replay guard: bounded per peer, release lets a redelivery run again", () => {
  const g = new PravalReplayGuard({ perPeer: 3 });
  const n = (i: number) => new Uint8Array(24).fill(i);
  assert.equal(g.claim("p", n(1)), "new");
  assert.equal(g.claim("p", n(1)), "busy");
  g.release("p", n(1));
  assert.equal(g.claim("p", n(1)), "new");
  g.complete("p", n(1));
  assert.equal(g.claim("p", n(1)), "done");
  for (let i = 2; i < 100; i++) g.claim("p", n(i));
  assert.equal(g.size("p"), 3);
  assert.equal(g.claim("q", n(1)), "new");
});

Deno.test("live round trip with the Python peer (both directions, with and without trace context)", async () => {
  if (
    !(await requireTool("python3-nacl and python3-msgpack", [
      "/usr/bin/python3",
      "-c",
      "import nacl, msgpack",
    ]))
  ) return;
  const child = new Deno.Command("/usr/bin/python3", {
    args: [new URL("./praval_peer.py", import.meta.url).pathname, "serve"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const ask = async (req: unknown): Promise<Record<string, unknown>> => {
    await writer.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("python peer exited");
      buffered += value;
    }
    const i = buffered.indexOf("\n");
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    return JSON.parse(line);
  };
  try {
    const py = await PravalKeyPair.generate("py-agent");
    const ts = await PravalKeyPair.generate("ts-agent");
    const knowledge = {
      text: 'naïve \u{1F30A} "quoted"',
      n: [1, -2, 3.25, 1e-7],
      flag: false,
      deep: { x: null },
    };
    for (const traceContext of [undefined, { traceparent: "00-ab-cd-01", "é": "ü" }]) {
      // Spores → Python: Python opens it and re-packs the same bytes.
      const sealed = await sealPravalSpore(ts, py.publicKeys(), {
        sporeType: "request",
        knowledge,
        priority: 9,
        traceContext,
      });
      const opened = await ask({
        op: "open",
        keys: py.exportKeys(),
        peer: ts.publicKeys().toJSON(),
        spore: hex.encode(sealed),
      });
      assert.equal(opened.error, undefined, String(opened.error));
      assert.deepEqual(opened.knowledge, knowledge);
      assert.equal(opened.repackedIdentical, true);
      assert.equal(opened.priority, 9);
      // Python → Spores.
      const back = await ask({
        op: "seal",
        keys: py.exportKeys(),
        peer: ts.publicKeys().toJSON(),
        knowledge,
        spore_type: "response",
        trace_context: traceContext,
      });
      const wire = hex.decode(back.spore as string);
      const got = await openPravalSpore(wire, ts, { peers: new Map([["py-agent", py.publicKeys()]]) });
      assert.deepEqual(got.knowledge, knowledge);
      assert.equal(got.spore.sporeType, "response");
      assert.equal(hex.encode(encodePravalSpore(got.spore)), back.spore);
    }
    // Python refuses a spore Spores signed with another key.
    const sealed = await sealPravalSpore(ts, py.publicKeys(), { sporeType: "knowledge", knowledge: {} });
    const other = await PravalKeyPair.generate("ts-agent");
    const refused = await ask({
      op: "open",
      keys: py.exportKeys(),
      peer: other.publicKeys().toJSON(),
      spore: hex.encode(sealed),
    });
    assert.match(String(refused.error), /BadSignatureError/);
  } finally {
    await writer.close();
    await child.status;
  }
});
