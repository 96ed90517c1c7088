// The `spores` command run as a subprocess, with no broker (memory:// and files).
import assert from "node:assert/strict";
import { createCard, Identity, MemoryDirectory, SporeEngine, TofuTrust } from "../mod.ts";
import { assertOneLineError, cliArgs, keygen, spores } from "./_cli.ts";
import { requireTool } from "./_env.ts";

const PASS = "correct horse battery staple";
const ENV = { SPORES_PASSPHRASE: PASS };

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "spores-cli-" });
}

Deno.test("cli: --help works for every command and lists the exit codes", async () => {
  const commands = [
    [],
    ["keygen"],
    ["fingerprint"],
    ["card"],
    ["rotate"],
    ["inspect"],
    ["send"],
    ["listen"],
    ["trust"],
    ["trust", "pin"],
    ["trust", "unpin"],
    ["trust", "list"],
    ["doctor"],
  ];
  const runs = await Promise.all(commands.map((c) => spores([...c, "--help"])));
  runs.forEach((run, i) => {
    assert.equal(run.code, 0, `${commands[i]!.join(" ")}: ${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^Usage: spores ${commands[i]!.join(" ")}`.trim()));
  });
  assert.match(runs[0]!.stdout, /Exit codes:[\s\S]*3 +key file/);
});

Deno.test("cli: usage errors are one line with exit code 2", async () => {
  assertOneLineError(await spores(["frobnicate"]), 2, /unknown command 'frobnicate'/);
  assertOneLineError(await spores(["send", "memory://x", "--to", "b"]), 2, /--type/);
  assertOneLineError(await spores(["fingerprint", "--bogus"]), 2, /unknown option '--bogus'/);
  assertOneLineError(
    await spores(["send", "memory://x", "--to", "b", "--type", "t", "--count", "many"]),
    2,
    /--count must be a whole number/,
  );
});

Deno.test("cli: an unknown URL scheme is one clear line (exit 2) for send, listen and doctor", async () => {
  const runs = await Promise.all([
    spores(["send", "carrier-pigeon://coop", "--to", "bob", "--type", "chat", "--text", "hi"]),
    spores(["listen", "carrier-pigeon://coop", "--id", "bob"]),
    spores(["doctor", "carrier-pigeon://coop"]),
    spores(["send", "not a url", "--to", "bob", "--type", "chat"]),
  ]);
  for (const run of runs.slice(0, 3)) {
    assertOneLineError(
      run,
      2,
      /unknown transport scheme carrier-pigeon:\/\/ \(known: memory:\/\/.*\) \[ERR_CONFIG\]/,
    );
  }
  assertOneLineError(runs[3]!, 2, /must be a URL/);
});

Deno.test("cli: keygen, fingerprint, card and rotate agree; files are private; no overwrite", async () => {
  const dir = await tempDir();
  try {
    const key = `${dir}/alice.key`;
    const fp = await keygen(key, PASS);
    assert.match(fp, /^([a-z2-7]{4}-){7}[a-z2-7]{4}$/);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(key)).mode! & 0o777, 0o600);
    assert.doesNotMatch(await Deno.readTextFile(key).catch(() => ""), new RegExp(PASS));

    const again = await spores(["keygen", "-o", key, "--scrypt-log-n", "10"], { env: ENV });
    assertOneLineError(again, 2, /exists; pass --force/);

    const printed = await spores(["fingerprint", key], { env: ENV });
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout.trim(), fp);

    // The passphrase from a file and from a named variable.
    await Deno.writeTextFile(`${dir}/pass.txt`, `${PASS}\n`);
    const fromFile = await spores(["fingerprint", key, "--passphrase-file", `${dir}/pass.txt`]);
    assert.equal(fromFile.stdout.trim(), fp, fromFile.stderr);
    const fromEnv = await spores(["fingerprint", key, "--passphrase-env", "MY_PASS"], {
      env: { MY_PASS: PASS },
    });
    assert.equal(fromEnv.stdout.trim(), fp, fromEnv.stderr);
    // No terminal and no source: a clear usage error, not a hang.
    assertOneLineError(await spores(["fingerprint", key]), 2, /no passphrase/);

    const card = await spores(["card", "--key", key, "--id", "alice", "--out", `${dir}/alice.card`], {
      env: ENV,
    });
    assert.equal(card.code, 0, card.stderr);
    const shown = await spores(["card", "--show", `${dir}/alice.card`, "--json"]);
    const described = JSON.parse(shown.stdout);
    assert.equal(described.id, "alice");
    assert.equal(described.fingerprint, fp);
    assert.equal(described.kemKeys.length, 1);
    assert.equal((await spores(["fingerprint", "--card", `${dir}/alice.card`])).stdout.trim(), fp);

    const rotated = await spores(["rotate", key, "--overlap", "10m", "--json"], { env: ENV });
    assert.equal(rotated.code, 0, rotated.stderr);
    const r = JSON.parse(rotated.stdout);
    assert.equal(r.fingerprint, fp);
    assert.notEqual(r.previous, r.current);
    const after = await spores(["card", "--key", key, "--id", "alice", "--json"], { env: ENV });
    const kem = JSON.parse(after.stdout).kemKeys;
    assert.deepEqual(kem.map((k: { keyId: string }) => k.keyId), [r.previous, r.current]);
    assert.ok(kem[0].notAfter && !kem[1].notAfter);

    const hybrid = await spores([
      "keygen",
      "-o",
      `${dir}/h.key`,
      "--hybrid",
      "--scrypt-log-n",
      "10",
      "--json",
    ], {
      env: ENV,
    });
    assert.equal(JSON.parse(hybrid.stdout).signatures, "ed25519+mldsa65");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: a wrong passphrase and damaged key files are one line each, exit code 3", async () => {
  const dir = await tempDir();
  try {
    const key = `${dir}/k.key`;
    await keygen(key, PASS);
    const bytes = await Deno.readFile(key);
    assertOneLineError(
      await spores(["fingerprint", key], { env: { SPORES_PASSPHRASE: "wrong" } }),
      3,
      /wrong passphrase for this key file \[ERR_PASSPHRASE\]/,
    );
    const flipped = bytes.slice();
    flipped[60]! ^= 1;
    await Deno.writeFile(`${dir}/flipped.key`, flipped);
    assertOneLineError(
      await spores(["fingerprint", `${dir}/flipped.key`], { env: ENV }),
      3,
      /corrupted .*\[ERR_KEY_FILE\]/,
    );
    await Deno.writeFile(`${dir}/short.key`, bytes.subarray(0, 40));
    assertOneLineError(
      await spores(["fingerprint", `${dir}/short.key`], { env: ENV }),
      3,
      /truncated \[ERR_KEY_FILE\]/,
    );
    await Deno.writeTextFile(`${dir}/text.key`, "x".repeat(200));
    assertOneLineError(
      await spores(["fingerprint", `${dir}/text.key`], { env: ENV }),
      3,
      /not a Spores key file/,
    );
    assertOneLineError(
      await spores(["fingerprint", `${dir}/missing.key`], { env: ENV }),
      3,
      /does not exist/,
    );
    // The same in the commands that open keys on the way to something else.
    assertOneLineError(
      await spores(["send", "memory://x", "--key", key, "--id", "a", "--to", "b", "--type", "t"], {
        env: { SPORES_PASSPHRASE: "wrong" },
      }),
      3,
      /wrong passphrase/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: inspect prints the public header; garbage and empty stdin are refused (exit 4)", async () => {
  const garbage = await spores(["inspect"], { stdin: "this is not a spore at all, just text\n" });
  assertOneLineError(garbage, 4, /\[ERR_PROTOCOL\]/);
  const random = await spores(["inspect", "-"], { stdin: crypto.getRandomValues(new Uint8Array(5000)) });
  assertOneLineError(random, 4, /\[ERR_(PROTOCOL|UNSUPPORTED|TOO_LARGE)\]/);
  assertOneLineError(await spores(["inspect"], { stdin: "" }), 4, /input is empty/);
});

Deno.test("cli: inspect with a key file says whether a spore opens, and why not; nothing secret printed", async () => {
  const dir = await tempDir();
  try {
    await keygen(`${dir}/alice.key`, PASS);
    await keygen(`${dir}/bob.key`, PASS);
    await keygen(`${dir}/eve.key`, PASS);
    const alice = await Identity.open(await Deno.readFile(`${dir}/alice.key`), PASS);
    const bob = await Identity.open(await Deno.readFile(`${dir}/bob.key`), PASS);
    await Deno.writeFile(`${dir}/alice.card`, await createCard("alice", alice));
    const directory = new MemoryDirectory();
    await directory.publish(await createCard("bob", bob));
    const engine = await SporeEngine.create({
      id: "alice",
      identity: alice,
      directory,
      trust: new TofuTrust(),
    });
    const secret = "the launch code is 0000";
    const spore = await engine.seal("bob", { type: "orders", content: { text: secret }, priority: 7 });
    await Deno.writeFile(`${dir}/spore.bin`, spore);

    const header = await spores(["inspect", `${dir}/spore.bin`, "--json"]);
    assert.equal(header.code, 0, header.stderr);
    const info = JSON.parse(header.stdout);
    assert.equal(info.kind, "sealed");
    assert.equal(info.suite, "xwing-chacha20poly1305-ed25519");
    assert.equal(info.from, "alice");
    assert.equal(info.to, "bob");
    assert.equal(info.type, "orders");
    assert.equal(info.priority, 7);
    assert.equal(info.sizes.total, spore.length);
    assert.equal(
      info.sizes.header + info.sizes.sections.reduce((a: number, b: number) => a + b, 0) < spore.length,
      true,
    );
    assert.equal(info.opens, undefined);
    const text = await spores(["inspect"], { stdin: spore });
    assert.match(text.stdout, /kind +sealed/);
    assert.doesNotMatch(text.stdout + header.stdout, /launch code/);

    const opened = await spores(
      ["inspect", `${dir}/spore.bin`, "--key", `${dir}/bob.key`, "--card", `${dir}/alice.card`, "--json"],
      { env: ENV },
    );
    assert.equal(opened.code, 0, opened.stderr);
    const verdict = JSON.parse(opened.stdout).opens;
    assert.equal(verdict.opens, true);
    assert.match(verdict.result, /sealed message of type orders from alice/);
    assert.doesNotMatch(opened.stdout, /launch code/);
    const shown = await spores(
      [
        "inspect",
        `${dir}/spore.bin`,
        "--key",
        `${dir}/bob.key`,
        "--card",
        `${dir}/alice.card`,
        "--show-content",
      ],
      { env: ENV },
    );
    assert.match(shown.stdout, /launch code/);

    // Someone else's key: it does not open, with the typed reason, exit 4.
    const eve = await spores(
      ["inspect", `${dir}/spore.bin`, "--key", `${dir}/eve.key`, "--card", `${dir}/alice.card`, "--json"],
      { env: ENV },
    );
    assert.equal(eve.code, 4, eve.stderr);
    const no = JSON.parse(eve.stdout).opens;
    assert.equal(no.opens, false);
    assert.match(no.code, /^ERR_(STALE_KEY|DECRYPT)$/);
    // Without the sender's card the signature cannot be checked: a typed reason too.
    const nocard = await spores(["inspect", `${dir}/spore.bin`, "--key", `${dir}/bob.key`, "--json"], {
      env: ENV,
    });
    assert.equal(nocard.code, 4);
    assert.equal(JSON.parse(nocard.stdout).opens.code, "ERR_UNKNOWN_SENDER");
    // One flipped ciphertext byte.
    const tampered = spore.slice();
    tampered[tampered.length - 20]! ^= 1;
    const bad = await spores(
      ["inspect", "-", "--key", `${dir}/bob.key`, "--card", `${dir}/alice.card`, "--json"],
      { env: ENV, stdin: tampered },
    );
    assert.equal(bad.code, 4);
    assert.match(JSON.parse(bad.stdout).opens.code, /^ERR_(DECRYPT|SIGNATURE)$/);
    for (const run of [opened, eve, nocard, bad]) assert.doesNotMatch(run.stdout + run.stderr, /launch code/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: trust pin/list/unpin keep a signed store; an edited or foreign store is refused", async () => {
  const dir = await tempDir();
  try {
    const bobFp = await keygen(`${dir}/bob.key`, PASS);
    const aliceFp = await keygen(`${dir}/alice.key`, PASS);
    await spores(["card", "--key", `${dir}/alice.key`, "--id", "alice", "--out", `${dir}/alice.card`], {
      env: ENV,
    });
    const store = ["--trust-file", `${dir}/bob.trust`, "--key", `${dir}/bob.key`];
    const pinned = await spores(["trust", "pin", "alice", "--card", `${dir}/alice.card`, ...store], {
      env: ENV,
    });
    assert.equal(pinned.code, 0, pinned.stderr);
    const carol = "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh";
    assert.equal((await spores(["trust", "pin", "carol", carol, ...store], { env: ENV })).code, 0);
    assertOneLineError(
      await spores(["trust", "pin", "dave", "not-a-fingerprint", ...store], { env: ENV }),
      2,
      /not a fingerprint/,
    );
    assertOneLineError(
      await spores(["trust", "pin", "mallory", "--card", `${dir}/alice.card`, ...store], { env: ENV }),
      2,
      /the card is alice's, not mallory's/,
    );
    const listed = await spores(["trust", "list", ...store, "--json"], { env: ENV });
    const doc = JSON.parse(listed.stdout);
    assert.equal(doc.owner, bobFp);
    assert.deepEqual(doc.entries.map((e: { id: string; fingerprint: string }) => [e.id, e.fingerprint]), [
      ["alice", aliceFp],
      ["carol", carol],
    ]);
    assert.equal((await spores(["trust", "unpin", "carol", ...store], { env: ENV })).code, 0);
    assertOneLineError(
      await spores(["trust", "unpin", "carol", ...store], { env: ENV }),
      2,
      /no entry for carol/,
    );

    // Someone without bob's key edits the file: refused, exit 4.
    const text = await Deno.readTextFile(`${dir}/bob.trust`);
    await Deno.writeTextFile(
      `${dir}/bob.trust`,
      text.replace(aliceFp, "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh"),
    );
    assertOneLineError(
      await spores(["trust", "list", ...store], { env: ENV }),
      4,
      /fails its signature check.*\[ERR_TRUST\]/,
    );
    await Deno.writeTextFile(`${dir}/bob.trust`, text);
    // Another identity's key does not open bob's store.
    assertOneLineError(
      await spores(["trust", "list", "--trust-file", `${dir}/bob.trust`, "--key", `${dir}/alice.key`], {
        env: ENV,
      }),
      4,
      /belongs to identity/,
    );
    await Deno.writeTextFile(`${dir}/junk.trust`, "{]");
    assertOneLineError(
      await spores(["trust", "list", "--trust-file", `${dir}/junk.trust`, "--key", `${dir}/bob.key`], {
        env: ENV,
      }),
      4,
      /not valid: not JSON \[ERR_PROTOCOL\]/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: send --count runs a load on memory:// with a progress bar and a summary", async () => {
  const run = await spores([
    "send",
    "memory://load",
    "--loopback",
    "--type",
    "load",
    "--content",
    '{"n":1}',
    "--count",
    "300",
    "--progress",
    "--json",
  ]);
  assert.equal(run.code, 0, run.stderr);
  const s = JSON.parse(run.stdout);
  assert.equal(s.sent, 300);
  assert.equal(s.delivered, 300);
  assert.equal(s.session, true);
  assert.ok(s.rate > 0);
  for (const l of [s.sendLatencyMs, s.deliveryLatencyMs]) {
    assert.ok(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max, JSON.stringify(l));
  }
  assert.match(run.stderr, /\[#{30}\] 300\/300 100%/);
  // Sealed spores, text summary.
  const sealed = await spores([
    "send",
    "memory://load2",
    "--loopback",
    "--type",
    "t",
    "-n",
    "20",
    "--sealed",
  ]);
  assert.equal(sealed.code, 0, sealed.stderr);
  assert.match(sealed.stdout, /sent 20 spores in [\d.]+ s: \d+ msg\/s \(sealed\)/);
  assert.match(sealed.stdout, /delivered 20\/20/);
  // Nobody to send to on a fresh in-process broker: a typed refusal.
  assertOneLineError(
    await spores(["send", "memory://empty", "--to", "nobody", "--type", "t"]),
    4,
    /no agent card for nobody/,
  );
});

Deno.test("cli: on a terminal the passphrase is prompted for twice, without echo; Ctrl-C is exit 130", async () => {
  if (Deno.build.os === "windows" || !(await requireTool("script", ["script", "--version"]))) return;
  const dir = await tempDir();
  try {
    const typed = "tty-typed passphrase 42";
    const terminal = async (command: string, answers: (string | null)[]) => {
      // `script` gives the command a pseudo-terminal; answers are typed after each prompt appears.
      const child = new Deno.Command("script", {
        args: ["-qec", command, "/dev/null"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      let seen = "";
      let prompts = 0;
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        seen += chunk;
        const count = (seen.match(/passphrase( again)?: /g) ?? []).length;
        while (prompts < count && prompts < answers.length) {
          const answer = answers[prompts++];
          await writer.write(new TextEncoder().encode(answer === null ? "\x03" : `${answer}\r`));
        }
      }
      await writer.close().catch(() => {});
      return { code: (await child.status).code, output: seen };
    };
    const deno = `${Deno.execPath()} ${cliArgs([]).join(" ")}`;
    const made = await terminal(`${deno} keygen -o ${dir}/t.key --scrypt-log-n 10`, [typed, typed]);
    assert.equal(made.code, 0, made.output);
    assert.match(made.output, /passphrase: [\s\S]*passphrase again: /);
    assert.ok(!made.output.includes(typed), `the passphrase was echoed: ${made.output}`);
    const fp = await spores(["fingerprint", `${dir}/t.key`], { env: { SPORES_PASSPHRASE: typed } });
    assert.equal(fp.code, 0, fp.stderr);
    const interrupted = await terminal(`${deno} keygen -o ${dir}/u.key --scrypt-log-n 10`, [null]);
    assert.equal(interrupted.code, 130, interrupted.output);
    await assert.rejects(Deno.stat(`${dir}/u.key`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
