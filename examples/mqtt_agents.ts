/**
 * Three agents on Mosquitto (127.0.0.1:1883): a session over QoS 1, and a
 * broadcast that reaches a member who was away when it was sent, through
 * that member's persistent session. Topics live under `spores-example/`.
 *
 * Run:
 * ```sh
 * deno run --allow-net=127.0.0.1:1883 --allow-read=. --allow-env examples/mqtt_agents.ts
 * ```
 * `--allow-net` for the broker; `--allow-env` because mqtt.js reads `DEBUG`; `--allow-read=.` because the
 * MQTT transport is loaded by URL scheme from local files (importing `@spores/spores/mqtt` from JSR needs no
 * read permission).
 *
 * @module
 */
import { Agent, Identity } from "../mod.ts";

const url = "mqtt://127.0.0.1:1883";
const transportOptions = { prefix: "spores-example" };
await using sensor = await Agent.start({ id: "sensor", transport: url, transportOptions });
await using controller = await Agent.start({ id: "controller", transport: url, transportOptions });

// The logger joins #telemetry, then goes away; its session keeps the subscription.
const loggerIdentity = await Identity.generate();
const away = await Agent.start({ id: "logger", transport: url, transportOptions, identity: loggerIdentity });
const telemetry = { members: ["logger"], posters: ["sensor"] };
await away.join("telemetry", telemetry);
await away.close();

const reading = Promise.withResolvers<void>();
controller.on("reading", (m) => {
  console.log(`controller ← ${m.from}: ${JSON.stringify(m.content)} (${m.kind} spore)`);
  reading.resolve();
});
await sensor.connect("controller");
await sensor.send("controller", { type: "reading", content: { celsius: 21.5 } });
await reading.promise;
sensor.setMembers("telemetry", { members: ["logger"] });
await sensor.broadcast("telemetry", { type: "summary", content: { readings: 1 } });

// Back again, the logger catches up with what was broadcast while it was away.
await using logger = await Agent.start({
  id: "logger",
  transport: url,
  transportOptions,
  identity: loggerIdentity,
});
const caughtUp = Promise.withResolvers<void>();
logger.on("summary", (m) => {
  console.log(
    `logger     ← #${m.channel} ${JSON.stringify(m.content)} from ${m.from}, sent while it was away`,
  );
  caughtUp.resolve();
});
await logger.join("telemetry", telemetry);
await caughtUp.promise;
