// An SQS/SNS server (fauxqs, in memory) started inside the test process on a free loopback port.
// startFauxqs() listens on 0.0.0.0; its buildApp() lets the server listen on loopback only.
import { buildApp } from "fauxqs";

/** Credentials any fauxqs accepts (it checks none). */
export const FAUXQS_CREDENTIALS = { accessKeyId: "spores-test", secretAccessKey: "spores-test" };

/** A running fauxqs. */
export interface Fauxqs {
  /** `sqs://us-east-1?endpoint=http://127.0.0.1:<port>`. */
  url: string;
  /** Its HTTP endpoint. */
  endpoint: string;
  /** Port. */
  port: number;
  /** Stops it. */
  stop(): Promise<void>;
}

/** Starts fauxqs on a free loopback port (or `port`). */
export async function startSqs(port = 0): Promise<Fauxqs> {
  const app = buildApp({ logger: false, host: "127.0.0.1" });
  const address = await app.listen({ port, host: "127.0.0.1" });
  const actual = Number(new URL(address).port);
  const endpoint = `http://127.0.0.1:${actual}`;
  return {
    url: `sqs://us-east-1?endpoint=${encodeURIComponent(endpoint)}`,
    endpoint,
    port: actual,
    stop: async () => void await app.close(),
  };
}
