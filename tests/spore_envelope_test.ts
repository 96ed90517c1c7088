// The envelope format, its strict parser, payloads and the replay window.
import assert from "node:assert/strict";
import {
  decodePayload,
  encodeEnvelope,
  encodeHeader,
  encodePayload,
  type Header,
  inspect,
  Kind,
  parseEnvelope,
  ProtocolError,
  ReplayWindow,
  SeenCache,
  Suite,
  TooLargeError,
  UnsupportedError,
} from "../mod.ts";

const header = (over: Partial<Header> = {}): Header => ({
  version: 1,
  suite: Suite.XWING_ED25519,
  kind: Kind.SESSION,
  id: "0123abcd",
  type: "chat",
  from: "alice",
  to: "bob",
  createdAt: 1_700_000_000_000,
  expiresAt: 1_700_000_300_000,
  priority: 4,
  sessionId: new Uint8Array(16).fill(7),
  epoch: 3,
  counter: 99,
  ...over,
});
const spore = (h: Header = header(), body = new Uint8Array(40)) => encodeEnvelope(encodeHeader(h), [body]);

Deno.test("a session spore round-trips through the parser and inspect()", () => {
  const bytes = spore();
  const env = parseEnvelope(bytes);
  assert.equal(env.header.id, "0123abcd");
  assert.equal(env.header.epoch, 3);
  assert.equal(env.header.counter, 99);
  assert.deepEqual(env.sections[0], new Uint8Array(40));
  assert.deepEqual(env.headerBytes, bytes.subarray(0, env.headerBytes.length));
  const info = inspect(bytes);
  assert.equal(info.kind, "session");
  assert.equal(info.suite, "xwing-chacha20poly1305-ed25519");
  assert.equal(info.sessionId, "07".repeat(16));
  assert.equal(info.size, bytes.length);
});

Deno.test("each malformation is its own typed ProtocolError", () => {
  const good = spore();
  const at = (i: number, v: number) => {
    const b = good.slice();
    b[i] = v;
    return b;
  };
  assert.throws(
    () => parseEnvelope(at(0, 0x58)),
    (e) => e instanceof ProtocolError && /magic/.test(e.message),
  );
  assert.throws(() => parseEnvelope(at(2, 2)), UnsupportedError);
  assert.throws(() => parseEnvelope(at(3, 9)), UnsupportedError);
  assert.throws(() => parseEnvelope(at(4, 9)), UnsupportedError);
  assert.throws(() => parseEnvelope(at(5, 1)), UnsupportedError);
  assert.throws(() => parseEnvelope(good.subarray(0, good.length - 1)), /truncated/);
  assert.throws(() => parseEnvelope(new Uint8Array([...good, 0])), /trailing/);
  assert.throws(() => parseEnvelope(new Uint8Array(0)), ProtocolError);
  assert.throws(() => parseEnvelope("not bytes" as unknown as Uint8Array), ProtocolError);
  assert.throws(() => parseEnvelope(spore(header({ priority: 10 }))), /priority/);
  assert.throws(() => parseEnvelope(spore(header({ expiresAt: 1 }))), /expires_at/);
  assert.throws(() => parseEnvelope(spore(header({ from: "a/b" }))), /from is not a valid identifier/);
  assert.throws(() => parseEnvelope(spore(header({ to: "x".repeat(129) }))), ProtocolError);
  assert.throws(() => parseEnvelope(spore(header(), new Uint8Array(8))), /shorter than its tag/);
  assert.throws(() => parseEnvelope(spore(header(), new Uint8Array(2 << 20))), TooLargeError);
  assert.throws(
    () =>
      parseEnvelope(spore(header(), new Uint8Array(2000)), { maxPayloadBytes: 1000, maxHeaderBytes: 4096 }),
    TooLargeError,
  );
  assert.throws(
    () =>
      parseEnvelope(spore(header({ type: "t".repeat(128), id: "i".repeat(128) })), {
        maxPayloadBytes: 1 << 20,
        maxHeaderBytes: 200,
      }),
    TooLargeError,
  );
  // A sealed spore whose KEM ciphertext section has the wrong length.
  const sealed = encodeEnvelope(
    encodeHeader(header({ kind: Kind.SEALED, keyId: new Uint8Array(8) })),
    [new Uint8Array(1119), new Uint8Array(16), new Uint8Array(64)],
  );
  assert.throws(() => parseEnvelope(sealed), /section 0 is 1119 bytes/);
  // The classic suite has no hello.
  const classicHello = encodeEnvelope(
    encodeHeader(header({ kind: Kind.HELLO, suite: Suite.NACL_ED25519, keyId: new Uint8Array(8) })),
    [],
  );
  assert.throws(() => parseEnvelope(classicHello), UnsupportedError);
  // Invalid UTF-8 in an id.
  const b = good.slice();
  b[9] = 0xff;
  assert.throws(() => parseEnvelope(b), ProtocolError);
});

Deno.test("payloads: JSON-like values and Uint8Array round-trip exactly; bad MessagePack is typed", () => {
  const values = [
    null,
    true,
    0,
    -1,
    2 ** 40,
    1.25,
    "ünïcødé",
    [],
    {},
    { nested: { list: [1, [2, [3]]], bin: new Uint8Array([0, 255]) } },
    new Uint8Array(70_000),
  ];
  for (const v of values) assert.deepEqual(decodePayload(encodePayload(v)), v);
  assert.throws(() => decodePayload(new Uint8Array([0xc1])), ProtocolError);
  assert.throws(() => decodePayload(new Uint8Array([0x92, 0x01])), ProtocolError); // truncated array
  assert.throws(() => decodePayload(new Uint8Array([0x01, 0x02])), ProtocolError); // trailing
  assert.throws(() => decodePayload(new Uint8Array([0xd6, 0xff, 0, 0, 0, 0])), ProtocolError); // timestamp ext
  assert.throws(() => encodePayload(new Uint8Array(100), 10), TooLargeError);
});

Deno.test("replay window: fresh once, duplicate after, stale below the window", () => {
  const w = new ReplayWindow(64);
  assert.equal(w.accept(0), "fresh");
  assert.equal(w.accept(0), "duplicate");
  assert.equal(w.accept(63), "fresh");
  assert.equal(w.accept(1), "fresh");
  assert.equal(w.accept(64), "fresh");
  assert.equal(w.accept(0), "stale");
  assert.equal(w.accept(1), "duplicate");
  assert.equal(w.accept(1000), "fresh");
  assert.equal(w.accept(63), "stale");
  assert.equal(w.accept(999), "fresh");
  assert.equal(w.accept(999), "duplicate");
  assert.equal(w.check(998), "fresh");
  assert.throws(() => new ReplayWindow(33), RangeError);
});

Deno.test("seen cache: duplicates until expiry; full cache fails closed", () => {
  const seen = new SeenCache(2);
  const now = 1_000_000;
  assert.equal(seen.accept("a", now + 100, now), "fresh");
  assert.equal(seen.accept("a", now + 100, now), "duplicate");
  assert.equal(seen.accept("b", now + 100, now), "fresh");
  assert.equal(seen.accept("c", now + 100, now), "stale");
  assert.equal(seen.accept("c", now + 5000, now + 200), "fresh");
  assert.equal(seen.size, 1);
});

Deno.test("codec: a header encoded into the shared writer is a copy the next encoding does not touch", async () => {
  const { encodeHeader, parseEnvelope, encodeEnvelope } = await import("../spore/envelope.ts");
  const { Writer } = await import("../spore/codec.ts");
  const base = {
    version: 1,
    suite: 1,
    kind: 2,
    id: "a".repeat(36),
    type: "t",
    from: "alice",
    to: "bob",
    createdAt: 2 ** 52 + 7,
    expiresAt: 2 ** 52 + 9,
    priority: 4,
    sessionId: new Uint8Array(16).fill(3),
    epoch: 0xfffffffe,
    counter: 2 ** 40 + 5,
  };
  const first = encodeHeader({ ...base, type: "x".repeat(120), to: "b".repeat(120) } as never);
  const copy = first.slice();
  encodeHeader({ ...base, type: "y".repeat(120), to: "c".repeat(120) } as never);
  assert.deepEqual(first, copy);
  const env = parseEnvelope(encodeEnvelope(first, [new Uint8Array(20)]));
  assert.equal(env.header.createdAt, 2 ** 52 + 7);
  assert.equal(env.header.epoch, 0xfffffffe);
  assert.equal(env.header.counter, 2 ** 40 + 5);
  const w = new Writer(8).u64(Number.MAX_SAFE_INTEGER);
  assert.deepEqual([...w.finish()], [0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
});
