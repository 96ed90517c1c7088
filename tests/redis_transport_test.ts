// The Redis transport on the real server of this machine (127.0.0.1:6379).
import { createTransport } from "../transports/redis.ts";
import { cleanRedis } from "./_cleanup.ts";
import { requireBroker } from "./_env.ts";
import { transportConformance } from "./transport_conformance.ts";

const URL = "redis://127.0.0.1:6379";
const prefix = `spores-test-${crypto.randomUUID().slice(0, 8)}`;

transportConformance({
  name: "redis",
  available: () => requireBroker("Redis", 6379),
  open: () => createTransport(URL, { prefix, visibilityTimeoutMs: 2000, claimIntervalMs: 500, blockMs: 200 }),
  slackMs: 500,
});

Deno.test("redis: remove the test's keys", async () => {
  if (!(await requireBroker("Redis", 6379))) return;
  await cleanRedis(prefix);
});
