// Tamper matrix and fuzzing: no modified spore is ever accepted, and every
// refusal is a typed SporeError.
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, parseEnvelope, ProtocolError, type SporeEngine, SporeError } from "../mod.ts";
import { contentOf, handshake, World } from "./_agents.ts";

const KIB = crypto.getRandomValues(new Uint8Array(1024));

async function flipEveryBit(receiver: SporeEngine, spore: Uint8Array): Promise<number> {
  let refused = 0;
  for (let i = 0; i < spore.length * 8; i++) {
    const bad = spore.slice();
    bad[i >>> 3]! ^= 1 << (i & 7);
    let result;
    try {
      result = await receiver.open(bad);
    } catch (e) {
      if (!(e instanceof SporeError)) throw new Error(`bit ${i}: untyped ${e}`);
      refused++;
      continue;
    }
    throw new Error(`bit ${i}: a tampered spore was ${result.status}`);
  }
  return refused;
}

Deno.test("tamper matrix: every single-bit flip of a 1 KiB sealed spore is refused", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const spore = await alice.seal("bob", { type: "blob", content: KIB });
  assert.equal(await flipEveryBit(bob, spore), spore.length * 8);
  assert.deepEqual(contentOf(await bob.open(spore)), KIB);
});

Deno.test("tamper matrix: every single-bit flip of a 1 KiB session spore is refused", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  await handshake(alice, bob);
  const spore = await alice.seal("bob", { type: "blob", content: KIB });
  assert.equal(await flipEveryBit(bob, spore), spore.length * 8);
  assert.deepEqual(contentOf(await bob.open(spore)), KIB);
});

Deno.test("tamper matrix: every single-bit flip of a 1 KiB classic spore is refused", async () => {
  const w = new World();
  const alice = await w.agent("alice", { allowClassic: true });
  const bob = await w.agent("bob", { allowClassic: true });
  const spore = await alice.seal("bob", { type: "blob", content: KIB }, { mode: "classic" });
  assert.equal(await flipEveryBit(bob, spore), spore.length * 8);
  assert.deepEqual(contentOf(await bob.open(spore)), KIB);
});

Deno.test("tamper matrix: every single-bit flip of a hello and of a welcome is refused", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  const { bytes: hello, established } = await alice.hello("bob");
  // Flip a sample of bits across the whole hello (every 7th: the matrix above covers every bit of data spores).
  for (let i = 0; i < hello.length * 8; i += 7) {
    const bad = hello.slice();
    bad[i >>> 3]! ^= 1 << (i & 7);
    await assert.rejects(bob.open(bad), SporeError, `hello bit ${i}`);
  }
  const answer = await bob.open(hello);
  assert.equal(answer.status, "handshake");
  const welcome = answer.status === "handshake" ? answer.reply! : new Uint8Array();
  for (let i = 0; i < welcome.length * 8; i += 7) {
    const bad = welcome.slice();
    bad[i >>> 3]! ^= 1 << (i & 7);
    await assert.rejects(alice.open(bad), SporeError, `welcome bit ${i}`);
  }
  await alice.open(welcome);
  await established;
});

function mutate(bytes: Uint8Array, rand: () => number): Uint8Array {
  const op = Math.floor(rand() * 7);
  const at = Math.floor(rand() * (bytes.length + 1));
  switch (op) {
    case 0: { // flip a few bits
      const out = bytes.slice();
      for (let n = 1 + Math.floor(rand() * 4); n > 0; n--) {
        const i = Math.floor(rand() * out.length);
        out[i]! ^= 1 << Math.floor(rand() * 8);
      }
      return out;
    }
    case 1:
      return bytes.subarray(0, at); // truncate
    case 2: { // insert random bytes
      const extra = crypto.getRandomValues(new Uint8Array(1 + Math.floor(rand() * 8)));
      const out = new Uint8Array(bytes.length + extra.length);
      out.set(bytes.subarray(0, at));
      out.set(extra, at);
      out.set(bytes.subarray(at), at + extra.length);
      return out;
    }
    case 3: { // delete a range
      const end = Math.min(bytes.length, at + 1 + Math.floor(rand() * 16));
      const out = new Uint8Array(bytes.length - (end - at));
      out.set(bytes.subarray(0, at));
      out.set(bytes.subarray(end), at);
      return out;
    }
    case 4: { // overwrite a length-like field with an extreme value
      const out = bytes.slice();
      const v = [0x00, 0xff, 0x7f, 0x80][Math.floor(rand() * 4)]!;
      for (let i = at; i < Math.min(out.length, at + 4); i++) out[i] = v;
      return out;
    }
    case 5: { // append trailing bytes
      const out = new Uint8Array(bytes.length + 1 + Math.floor(rand() * 4));
      out.set(bytes);
      return out;
    }
    default:
      return crypto.getRandomValues(new Uint8Array(Math.floor(rand() * 300))); // pure noise
  }
}

Deno.test("fuzz: 100,000 random and mutated envelopes through the parser, only typed errors, under a minute", async () => {
  const w = new World();
  const alice = await w.agent("alice", { allowClassic: true });
  const bob = await w.agent("bob", { allowClassic: true });
  const seeds = [
    await alice.seal("bob", { type: "t", content: { a: [1, 2, 3] } }),
    await alice.seal("bob", { type: "t", content: "x" }, { mode: "classic" }),
    (await alice.hello("bob")).bytes,
  ];
  await handshake(alice, bob);
  seeds.push(await alice.seal("bob", { type: "t", content: KIB.subarray(0, 100) }));
  let state = 0x9e3779b9;
  const rand = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const start = performance.now();
  let accepted = 0;
  for (let i = 0; i < 100_000; i++) {
    const input = mutate(seeds[i % seeds.length]!, rand);
    try {
      parseEnvelope(input, DEFAULT_LIMITS);
      accepted++;
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw new Error(`input ${i}: untyped ${e}`);
    }
  }
  const elapsed = performance.now() - start;
  assert.ok(elapsed < 60_000, `fuzzing took ${elapsed} ms`);
  // Some mutations (bit flips inside ciphertext) still parse: the parser checks structure, not crypto.
  assert.ok(accepted > 0 && accepted < 100_000);
});

Deno.test("fuzz: 5,000 mutated spores through the whole receive path, never accepted, only typed errors", async () => {
  const w = new World();
  const alice = await w.agent("alice", { allowClassic: true });
  const bob = await w.agent("bob", { allowClassic: true });
  await handshake(alice, bob);
  const seeds = [
    await alice.seal("bob", { type: "t", content: 1 }, { mode: "sealed" }),
    await alice.seal("bob", { type: "t", content: 2 }, { mode: "classic" }),
    await alice.seal("bob", { type: "t", content: 3 }),
  ];
  let state = 12345;
  const rand = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  for (let i = 0; i < 5000; i++) {
    const seed = seeds[i % seeds.length]!;
    const input = mutate(seed, rand);
    if (input.length === seed.length && input.every((b, j) => b === seed[j])) continue;
    try {
      const r = await bob.open(input);
      throw new Error(`mutation ${i} was ${r.status}`);
    } catch (e) {
      if (!(e instanceof SporeError)) throw e;
    }
  }
  for (const s of seeds) assert.equal((await bob.open(s)).status, "message");
});

Deno.test("tamper matrix: every single-bit flip of a 1 KiB broadcast spore is refused", async () => {
  const w = new World();
  const alice = await w.agent("alice");
  const bob = await w.agent("bob");
  bob.join("ops");
  alice.setMembers("ops", { members: ["bob"] });
  bob.setMembers("ops", { members: ["alice", "bob"] });
  const spore = await alice.sealBroadcast("ops", { type: "blob", content: KIB });
  const first = await bob.open(spore);
  assert.equal(first.status, "pending-key");
  if (first.status !== "pending-key") return;
  bob.installSenderKey("alice", alice.grantSenderKey("ops", first.keyId, "bob"));
  let refused = 0;
  for (let i = 0; i < spore.length * 8; i++) {
    const bad = spore.slice();
    bad[i >>> 3]! ^= 1 << (i & 7);
    try {
      const r = await bob.open(bad);
      throw new Error(`bit ${i}: a tampered broadcast was ${r.status}`);
    } catch (e) {
      if (!(e instanceof SporeError)) throw e;
      refused++;
    }
  }
  assert.equal(refused, spore.length * 8);
  assert.deepEqual(contentOf(await bob.open(spore)), KIB);
});
