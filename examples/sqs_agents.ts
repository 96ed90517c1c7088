/**
 * Agents on Amazon SQS, run against an SQS/SNS server started in this process
 * (fauxqs, in memory), so it runs on a fresh machine: a session, a broadcast
 * fanned out through SNS to a member that was away, and a failing handler whose
 * message ends in the dead-letter queue. Against AWS, drop the server and use
 * `sqs://<region>` with credentials from the environment.
 *
 * Run:
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read=. --allow-env examples/sqs_agents.ts
 * ```
 * `--allow-net` for the local server (and its listener), `--allow-env` because the AWS SDK reads `AWS_*`
 * variables, `--allow-read=.` because the SQS transport is loaded by URL scheme from local files.
 *
 * @module
 */
import { buildApp } from "fauxqs";
import { Agent, type DeadLetter, Identity } from "../mod.ts";

const server = buildApp({ logger: false, host: "127.0.0.1" });
const address = await server.listen({ port: 0, host: "127.0.0.1" });
const url = `sqs://us-east-1?endpoint=${encodeURIComponent(address)}&prefix=example`;
const transportOptions = {
  credentials: { accessKeyId: "example", secretAccessKey: "example" },
  waitTimeSeconds: 1,
  maxRedeliveries: 2,
};
try {
  await using dispatcher = await Agent.start({ id: "dispatcher", transport: url, transportOptions });
  await using worker = await Agent.start({
    id: "worker",
    transport: url,
    transportOptions,
    maxRedeliveries: 2,
  });
  const jobs = Promise.withResolvers<void>();
  worker.on("job", (m) => {
    console.log(`worker     ← job ${JSON.stringify(m.content)} (${m.kind}, from ${m.from})`);
    jobs.resolve();
  });
  worker.on("broken", () => {
    throw new Error("this job always fails");
  });
  const dead = Promise.withResolvers<DeadLetter>();
  worker.addEventListener("dead-letter", (e) => dead.resolve((e as CustomEvent<DeadLetter>).detail));
  // Channel membership is explicit: who may read the channel and whose posts are accepted.
  const audit = { members: ["dispatcher", "worker", "auditor"], posters: ["dispatcher"] };
  dispatcher.setMembers("audit", audit);
  await worker.join("audit", audit);

  // The auditor joins the channel, then goes away while a notice is broadcast.
  const identity = await Identity.generate();
  const auditor = await Agent.start({ id: "auditor", identity, transport: url, transportOptions });
  await auditor.join("audit", audit);
  await auditor.close();

  await dispatcher.connect("worker");
  await dispatcher.send("worker", { type: "job", content: { task: "index" } });
  await jobs.promise;
  const seen = Promise.withResolvers<void>();
  worker.on("notice", (m) => {
    console.log(`worker     ← #${m.channel} ${JSON.stringify(m.content)} from ${m.from}`);
    seen.resolve();
  });
  await dispatcher.broadcast("audit", { type: "notice", content: { jobs: 1 } });
  await seen.promise;

  // Back again: the auditor's own queue kept the notice.
  await using back = await Agent.start({ id: "auditor", identity, transport: url, transportOptions });
  const caught = Promise.withResolvers<void>();
  back.on("notice", (m) => {
    console.log(`auditor    ← #${m.channel} ${JSON.stringify(m.content)} from ${m.from} (caught up)`);
    caught.resolve();
  });
  await back.join("audit", audit);
  await caught.promise;

  await dispatcher.send("worker", { type: "broken", content: {} });
  const letter = await dead.promise;
  // source "agent": the agent gave up on a message it opened; "transport": the transport moved sealed bytes.
  const what = letter.source === "agent" ? letter.message.type : `${letter.size} bytes`;
  console.log(`worker     ✗ ${what} dead-lettered after ${letter.attempts} attempts`);
} finally {
  await server.close();
}
