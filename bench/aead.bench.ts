// ChaCha20-Poly1305 side by side at 64 B, 1 KiB, 8 KiB and 64 KiB: @noble/ciphers (synchronous), libsodium
// in WebAssembly (synchronous), and Web Crypto one call at a time and with 32 calls in flight.
// Run: deno bench --allow-read=. bench/aead.bench.ts
import {
  AeadKey,
  loadSodium,
  nativeAead,
  openSync,
  randomBytes,
  sealSync,
  sodiumAead,
} from "../crypto/mod.ts";

const sodium = sodiumAead((await loadSodium())!);
const key = AeadKey.from(randomBytes(32));
const nonce = randomBytes(12);
const aad = randomBytes(48); // about a session spore's header
const BATCH = 32;

for (const size of [64, 1024, 8192, 65536]) {
  const label = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  const pt = randomBytes(size);
  const ct = sealSync(key, nonce, pt, aad);
  for (const [op, group] of [["seal", `seal ${label}`], ["open", `open ${label}`]] as const) {
    const input = op === "seal" ? pt : ct;
    Deno.bench({ name: "libsodium (wasm), sync", group, baseline: true }, () => {
      if (op === "seal") sodium.sealSync(key, nonce, input, aad);
      else sodium.openSync(key, nonce, input, aad);
    });
    Deno.bench({ name: "noble, sync", group }, () => {
      if (op === "seal") sealSync(key, nonce, input, aad);
      else openSync(key, nonce, input, aad);
    });
    Deno.bench({ name: "Web Crypto, 1 in flight", group }, async () => {
      await (op === "seal"
        ? nativeAead.seal(key, nonce, input, aad)
        : nativeAead.open(key, nonce, input, aad));
    });
    Deno.bench({ name: `Web Crypto ×${BATCH} in flight (batch time)`, group, n: 200 }, async (b) => {
      const calls = new Array(BATCH);
      b.start();
      for (let i = 0; i < BATCH; i++) {
        calls[i] = op === "seal"
          ? nativeAead.seal(key, nonce, input, aad)
          : nativeAead.open(key, nonce, input, aad);
      }
      await Promise.all(calls);
      b.end();
    });
    Deno.bench({ name: `libsodium ×${BATCH} (batch time)`, group, n: 200 }, (b) => {
      b.start();
      for (let i = 0; i < BATCH; i++) {
        if (op === "seal") sodium.sealSync(key, nonce, input, aad);
        else sodium.openSync(key, nonce, input, aad);
      }
      b.end();
    });
  }
}
