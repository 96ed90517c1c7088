// The SQS transport against fauxqs (an SQS/SNS server started in this process): the shared conformance suite.
import { createTransport } from "../transports/sqs.ts";
import { type Fauxqs, FAUXQS_CREDENTIALS, startSqs } from "./_fauxqs.ts";
import { transportConformance } from "./transport_conformance.ts";

let server: Fauxqs | undefined;
const prefix = `t${crypto.randomUUID().slice(0, 8)}`;

transportConformance({
  name: "sqs",
  open: async () => {
    server ??= await startSqs();
    return await createTransport(server.url, {
      prefix,
      credentials: FAUXQS_CREDENTIALS,
      waitTimeSeconds: 1,
      visibilityTimeoutSeconds: 5,
    });
  },
  slackMs: 500,
  testOptions: { sanitizeOps: false, sanitizeResources: false },
});

Deno.test({
  name: "sqs: stop the test server",
  fn: async () => {
    await server?.stop();
  },
  sanitizeOps: false,
  sanitizeResources: false,
});
