// Test environment helpers: under CI (CI=true or SPORES_REQUIRE_BROKERS=1) a
// missing tool or unreachable broker is a failure; elsewhere the test says
// why it did nothing and passes.

/** Whether missing services must fail the run. */
export function strict(): boolean {
  return Deno.env.get("CI") === "true" || Deno.env.get("SPORES_REQUIRE_BROKERS") === "1";
}

/**
 * Runs `probe`; true if it exits 0. Under CI a failing probe throws; else it
 * logs and returns false so the caller can return early.
 */
export async function requireTool(name: string, probe: string[]): Promise<boolean> {
  let ok = false;
  try {
    const out = await new Deno.Command(probe[0]!, { args: probe.slice(1), stdout: "null", stderr: "null" })
      .output();
    ok = out.success;
  } catch {
    ok = false;
  }
  if (!ok) {
    if (strict()) throw new Error(`${name} is required under CI but is not available`);
    console.warn(`${name} not available: test did nothing (set CI=true to make this a failure)`);
  }
  return ok;
}

/**
 * Whether a broker answers on 127.0.0.1:`port`. Under CI an unreachable
 * broker throws (the test fails); elsewhere the test logs why it did nothing.
 */
export async function requireBroker(name: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    if (strict()) throw new Error(`${name} on 127.0.0.1:${port} is required under CI but unreachable`);
    console.warn(
      `${name} unreachable on 127.0.0.1:${port}: test did nothing (set CI=true to make this a failure)`,
    );
    return false;
  }
}
