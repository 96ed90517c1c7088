// What a Node user does with agents on one transport: handlers given at start, send and receive, request and
// reply, a broadcast to a channel's members. Shared by the programs in this folder; prints nothing.

/** Resolves with `promise`, or rejects after `ms` saying what did not happen. */
export function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Starts alice, bob and carol on `transport` and exchanges messages; closes them in `finally`. */
export async function exercise(Agent, transport, transportOptions = {}, directory = undefined) {
  const chat = Promise.withResolvers();
  const bobAlert = Promise.withResolvers();
  const carolAlert = Promise.withResolvers();
  const start = (id, handlers) => Agent.start({ id, transport, transportOptions, handlers, directory });
  const bob = await start("bob", {
    chat: (m) => chat.resolve(m),
    add: (m) => m.reply(m.content.reduce((a, b) => a + b, 0)),
    alert: (m) => bobAlert.resolve(m),
  });
  let carol;
  let alice;
  try {
    carol = await start("carol", { alert: (m) => carolAlert.resolve(m) });
    alice = await start("alice", {});
    await alice.send("bob", { type: "chat", content: { text: "hello", bytes: new Uint8Array([0, 1, 255]) } });
    const got = await within(chat.promise, 30_000, "bob receiving alice's chat");
    const answer = await alice.request("bob", { type: "add", content: [1, 2, 3] }, { timeoutMs: 30_000 });
    const ops = { members: ["alice", "bob", "carol"] };
    alice.setMembers("ops", ops);
    await bob.join("ops", ops);
    await carol.join("ops", ops);
    await alice.broadcast("ops", { type: "alert", content: { level: 2 } });
    const alerts = await within(Promise.all([bobAlert.promise, carolAlert.promise]), 30_000, "the broadcast");
    return {
      transport: alice.transport.name,
      chat: { from: got.from, text: got.content.text, bytes: [...got.content.bytes] },
      answer: answer.content,
      alerts: alerts.map((m) => ({ from: m.from, channel: m.channel, level: m.content.level })),
    };
  } finally {
    await alice?.close();
    await carol?.close();
    await bob.close();
  }
}
