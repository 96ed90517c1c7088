// The STOMP frame gate: frames pass unchanged however the stream is cut, a MESSAGE over the limit is passed on
// empty (marked) with its body skipped, and anything else over the limit is an error.
import assert from "node:assert/strict";
import { OVERSIZE_HEADER, StompFrameGate } from "../transports/stomp.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (parts: Uint8Array[]) => parts.map((p) => new TextDecoder().decode(p)).join("");

/** Feeds `bytes` in pieces of `size` and returns all that was passed on. */
function feed(gate: StompFrameGate, bytes: Uint8Array, size: number): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += size) out += dec(gate.push(bytes.subarray(i, i + size)));
  return out;
}

const small = "MESSAGE\nack:1\ncontent-length:5\n\nab\0cd\0";
const noLength = "RECEIPT\nreceipt-id:r1\n\n\0";
const crlf = "MESSAGE\r\nack:2\r\ncontent-length:3\r\n\r\nxyz\0";

Deno.test("stomp frame gate: frames and heartbeats pass unchanged, cut anywhere", () => {
  const stream = `\n${small}\n\n${noLength}${crlf}\n`;
  for (const size of [1, 2, 3, 7, 64, 4096]) {
    assert.equal(feed(new StompFrameGate(64), enc(stream), size), stream, `pieces of ${size}`);
  }
});

Deno.test("stomp frame gate: a MESSAGE over the limit is passed on empty and marked; the next frame is intact", () => {
  const body = "z".repeat(1000);
  const big = `MESSAGE\nack:9\nsubscription:s\ncontent-length:1000\n\n${body}\0`;
  for (const size of [1, 13, 100, 4096]) {
    const gate = new StompFrameGate(64);
    const out = feed(gate, enc(big + small), size);
    assert.equal(gate.oversized, 1);
    assert.ok(!out.includes("zzz"), "the body was passed on");
    assert.ok(out.endsWith(small), "the next frame was damaged");
    const stand = out.slice(0, out.length - small.length);
    assert.match(
      stand,
      new RegExp(`^MESSAGE\ncontent-length:0\n${OVERSIZE_HEADER}:1000\nack:9\nsubscription:s\n\n\0$`),
    );
  }
});

Deno.test("stomp frame gate: over-long headers, bodies without length and unsettleable frames are errors", () => {
  assert.throws(
    () => new StompFrameGate(64).push(enc(`MESSAGE\nx:${"h".repeat(100)}`)),
    /without completing/,
  );
  assert.throws(
    () => new StompFrameGate(64).push(enc(`MESSAGE\nack:1\n\n${"b".repeat(100)}`)),
    /without completing/,
  );
  // No ack header: nothing could dead-letter it. Cut off once the parser would hold more than the limit.
  const gate = new StompFrameGate(64);
  const out = gate.push(enc("CONNECTED\nversion:1.2\n\n\0MESSAGE\ncontent-length:999999999\n\n"));
  assert.ok(dec(out).startsWith("CONNECTED"), "the frame before was not handed on");
  assert.throws(() => gate.push(new Uint8Array(100)), /without completing/);
  const error = new StompFrameGate(64);
  error.push(enc("ERROR\ncontent-length:100\n\n"));
  assert.throws(() => error.push(new Uint8Array(101)), /without completing/);
});
