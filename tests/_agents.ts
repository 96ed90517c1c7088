// Helpers for protocol tests: agents on a shared directory with a clock the test controls.
import {
  type EngineOptions,
  Identity,
  type IdentityOptions,
  MemoryDirectory,
  type OpenResult,
  SporeEngine,
  TofuTrust,
} from "../mod.ts";

/** A clock a test can move. */
export class TestClock {
  now = Date.now();
  /** Moves the clock forward. */
  advance(ms: number): void {
    this.now += ms;
  }
  /** The clock function for an engine. */
  readonly fn = (): number => this.now;
}

/** A small world of agents sharing a directory and a clock. */
export class World {
  readonly directory = new MemoryDirectory();
  readonly clock = new TestClock();

  /** Makes and publishes an agent. */
  async agent(
    id: string,
    options: Partial<EngineOptions> & { identity?: Identity; identityOptions?: IdentityOptions } = {},
  ): Promise<SporeEngine> {
    const engine = await SporeEngine.create({
      id,
      identity: options.identity ?? await Identity.generate(options.identityOptions),
      directory: this.directory,
      trust: options.trust ?? new TofuTrust(),
      clock: this.clock.fn,
      ...options,
    });
    await engine.publishCard();
    return engine;
  }
}

/** Runs a full handshake from `a` to `b` and returns the session id. */
export async function handshake(a: SporeEngine, b: SporeEngine): Promise<string> {
  const { bytes, established } = await a.hello(b.id);
  const answer = await b.open(bytes);
  if (answer.status !== "handshake" || !answer.reply) throw new Error(`unexpected ${answer.status}`);
  await a.open(answer.reply);
  return (await established).id;
}

/** The content of a message result, or a thrown error. */
export function contentOf(result: OpenResult): unknown {
  if (result.status !== "message") throw new Error(`expected a message, got ${result.status}`);
  return result.spore.content;
}

/** Fisher-Yates shuffle (in place). */
export function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
