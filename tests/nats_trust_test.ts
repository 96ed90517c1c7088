// Durable trust on first use in a JetStream KV bucket: pins survive a restart, each is signed by the agent's
// identity, and the server cannot change one undetected.
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import {
  Agent,
  createCard,
  Identity,
  KeyChangedError,
  type Message,
  SignedPins,
  TofuTrust,
  TrustError,
  verifyCard,
} from "../mod.ts";
import { NatsPinStore, NatsTransport, natsTrust, token } from "../transports/nats.ts";
import { requireBroker } from "./_env.ts";
import { cleanNats, NATS_URL, natsPrefix } from "./_nats.ts";

Deno.test("nats trust: a pin survives a restart; a changed or moved pin is a TrustError", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const prefix = natsPrefix();
  const transport = await NatsTransport.connect(NATS_URL, { prefix });
  try {
    const alice = await Identity.generate();
    const bucket = `${transport.names.bucket}_pins`;
    const pins = () =>
      new SignedPins(new NatsPinStore(transport.connection, bucket, "alice", alice.fingerprint), alice);
    const bob = await verifyCard(await createCard("bob", await Identity.generate()));
    const carol = await verifyCard(await createCard("carol", await Identity.generate()));
    const impostor = await verifyCard(await createCard("bob", await Identity.generate()));
    await new TofuTrust(pins()).check(bob);
    await new TofuTrust(pins()).check(carol);
    await assert.rejects(new TofuTrust(pins()).check(impostor), KeyChangedError);

    const kv = await new Kvm(transport.connection).open(bucket);
    const key = (id: string) => `${token("alice")}.${alice.fingerprint}.${token(id)}`;
    const record = JSON.parse(new TextDecoder().decode((await kv.get(key("bob")))!.value));
    await kv.put(key("bob"), JSON.stringify({ ...record, f: impostor.fingerprint }));
    await assert.rejects(new TofuTrust(pins()).check(impostor), TrustError);
    await kv.put(key("bob"), (await kv.get(key("carol")))!.value);
    await assert.rejects(pins().get("bob"), TrustError);
  } finally {
    await transport.close();
    await cleanNats(prefix);
  }
});

Deno.test("nats trust: agents with durable trust talk, and a restarted agent keeps its pins", async () => {
  if (!(await requireBroker("NATS", 4222))) return;
  const prefix = natsPrefix();
  const transport = await NatsTransport.connect(NATS_URL, { prefix });
  try {
    const identity = await Identity.generate();
    const got = Promise.withResolvers<Message>();
    await using bob = await Agent.start({ id: "bob", transport, handlers: { chat: (m) => got.resolve(m) } });
    let alice = await Agent.start({
      id: "alice",
      transport,
      identity,
      trust: natsTrust(transport, "alice", identity),
    });
    await alice.connect("bob");
    await alice.send("bob", { type: "chat", content: "pinned" });
    assert.equal((await got.promise).content, "pinned");
    await alice.close();
    alice = await Agent.start({
      id: "alice",
      transport,
      identity,
      trust: natsTrust(transport, "alice", identity),
    });
    const pins = new NatsPinStore(
      transport.connection,
      `${transport.names.bucket}_pins`,
      "alice",
      identity.fingerprint,
    );
    assert.equal(await new SignedPins(pins, identity).get("bob"), bob.identity.fingerprint);
    await alice.close();
    // Purging alice removes her pins with the rest of her broker state.
    const report = await transport.purge("alice");
    assert.ok(report.removed.some((r) => r.includes("trust pin")), report.removed.join("; "));
    assert.equal(await pins.get("bob"), undefined);
  } finally {
    await transport.close();
    await cleanNats(prefix);
  }
});
