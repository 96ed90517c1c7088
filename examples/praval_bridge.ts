/**
 * A Spores agent that talks to Praval agents in Praval's own `SecureSpore`
 * format, on Praval's RabbitMQ exchange `praval.spores` (routing keys
 * `agent.{to}.{type}`).
 *
 * With `--peer-keys FILE` it serves a real Praval agent whose public keys
 * (`get_public_keys()`, base64, as JSON) are in FILE: it prints its own public
 * keys for the Praval side to register, then answers every `request` spore
 * with a `response` until interrupted. Without it, it runs the repository's
 * Python Praval peer (`tests/praval_peer.py`, PyNaCl + msgpack + pika) and
 * exchanges a request and a response with it.
 *
 * Run:
 * ```sh
 * deno run --allow-net=127.0.0.1:5672 --allow-read=. --allow-run=/usr/bin/python3 examples/praval_bridge.ts
 * deno run --allow-net=127.0.0.1:5672 --allow-read=. examples/praval_bridge.ts --peer-keys researcher.json
 * ```
 * `--allow-read=.` loads the AMQP transport from local files (and reads the key file);
 * `--allow-run` only starts the Python peer of the demonstration.
 *
 * @module
 */
import { Agent, type Message, PravalKeyPair, PravalPublicKeys } from "../mod.ts";

const url = "amqp://guest:guest@127.0.0.1:5672";
const flag = Deno.args.indexOf("--peer-keys");
const peerFile = flag >= 0 ? Deno.args[flag + 1] : undefined;
const tag = crypto.randomUUID().slice(0, 6);
const me = peerFile ? "bridge" : `bridge-${tag}`;

// The bridge's Praval keys: separate from its Spores identity, in Praval's shapes.
const keys = await PravalKeyPair.generate(me);

if (peerFile) {
  const peer = PravalPublicKeys.from(JSON.parse(await Deno.readTextFile(peerFile)));
  await using bridge = await Agent.start({ id: me, transport: url, praval: { keys, peers: [peer] } });
  console.log(`bridge keys for the Praval side (KeyRegistry.register_agent, base64-decoded):`);
  console.log(JSON.stringify(keys.publicKeys().toJSON()));
  console.log(`pinned ${peer.agentName}, fingerprint ${peer.fingerprint}`);
  bridge.on("request", async (m: Message) => {
    console.log(`← ${m.from} ${m.type} ${JSON.stringify(m.content)} (${m.security} security)`);
    await bridge.send(m.from, { type: "response", content: { answer: "received", reply_to: m.id } });
  }, { classic: true });
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", resolve));
} else {
  const pyName = `praval-py-${tag}`;
  const pyKeys = await PravalKeyPair.generate(pyName);
  await using bridge = await Agent.start({
    id: me,
    transport: url,
    praval: { keys, peers: [pyKeys.publicKeys()] },
  });
  const answered = Promise.withResolvers<Message>();
  bridge.on("response", (m) => answered.resolve(m), { classic: true });
  const python = new Deno.Command("/usr/bin/python3", {
    args: [new URL("../tests/praval_peer.py", import.meta.url).pathname, "amqp", url, pyName, me],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const out = python.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const w = python.stdin.getWriter();
  await w.write(new TextEncoder().encode(
    JSON.stringify({ keys: pyKeys.exportKeys(), peer: keys.publicKeys().toJSON() }) + "\n",
  ));
  await w.close();
  let seen = "";
  while (!seen.includes("ready")) {
    const { value, done } = await out.read();
    if (done) throw new Error("the Python peer stopped");
    seen += value;
  }
  const id = await bridge.send(pyName, {
    type: "request",
    content: { question: "tide at noon?" },
    priority: 7,
  });
  console.log(`→ ${pyName} request ${id} on praval.spores, routing key agent.${pyName}.request`);
  const reply = await answered.promise;
  console.log(`← ${reply.from} ${reply.type} ${JSON.stringify(reply.content)} (${reply.security} security)`);
  await bridge.send(pyName, { type: "knowledge", content: { stop: true } });
  await python.status;
  await out.cancel();
  console.log(`metrics: sent ${bridge.metrics().sent}, delivered ${bridge.metrics().delivered}`);
  // Remove what this run declared on the broker.
  const { connect } = await import("amqplib");
  const conn = await connect(url);
  const ch = await conn.createChannel();
  for (const q of ["agent", "dead", "card"]) await ch.deleteQueue(`praval.spores.${q}.${me}`);
  await conn.close();
}
