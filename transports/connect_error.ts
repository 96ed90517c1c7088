/**
 * Why a connection failed, in plain words: a missing Deno permission, a
 * refused connection, an unknown host, a time-out, refused credentials or a
 * TLS failure, found anywhere in the chain of causes a broker client throws.
 *
 * @module
 */

/**
 * `error` and its causes (`cause`, and the errors of an `AggregateError`),
 * breadth first, at most 16, each once.
 *
 * @example
 * ```ts
 * import { errorChain } from "@spores/spores";
 * const e = new Error("outer", { cause: new Error("NOT_FOUND - no queue") });
 * console.assert(errorChain(e).length === 2);
 * ```
 */
export function errorChain(error: unknown): unknown[] {
  const out: unknown[] = [];
  const queue = [error];
  while (queue.length > 0 && out.length < 16) {
    const e = queue.shift();
    if (e === undefined || e === null || out.includes(e)) continue;
    out.push(e);
    if (e instanceof AggregateError) queue.push(...e.errors);
    if (e instanceof Error) queue.push(e.cause);
  }
  return out;
}

/**
 * The cause of a failed connection to `where` (`host:port`) as a phrase for an
 * error message, with what to do about it. Never includes credentials: only
 * the class of the problem and `where`.
 *
 * @example
 * ```ts
 * import { explainConnectError } from "@spores/spores";
 * const cause = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
 * console.assert(explainConnectError(cause, "127.0.0.1:6379").startsWith("connection refused"));
 * ```
 */
export function explainConnectError(error: unknown, where: string): string {
  const errors = errorChain(error);
  const text = (e: unknown) => e instanceof Error ? `${e.name} ${e.message}` : String(e);
  const code = (e: unknown) => String((e as { code?: unknown } | null)?.code ?? "");
  const any = (test: (e: unknown) => boolean) => errors.some(test);
  if (any((e) => /NotCapable|PermissionDenied|Requires net access|--allow-net/.test(text(e)))) {
    return `permission denied: run Deno with --allow-net=${where}`;
  }
  if (
    any((e) =>
      /ACCESS.REFUSED|WRONGPASS|NOAUTH|invalid username-password|authentication failed|\b403\b/i.test(text(e))
    )
  ) {
    return "the broker refused the user name or password (check the credentials in the URL)";
  }
  if (any((e) => /ECONNREFUSED/.test(code(e) + text(e)) || /Connection refused/i.test(text(e)))) {
    return `connection refused: nothing listens on ${where} (is the broker running?)`;
  }
  if (
    any((e) =>
      /ENOTFOUND|EAI_AGAIN|failed to lookup address|Name or service not known/i.test(code(e) + text(e))
    )
  ) {
    return `host not found: ${where.replace(/:\d+$/, "")} does not resolve`;
  }
  if (
    any((e) =>
      /certificate|self.signed|CERT_|unable to verify|handshake failure|alert|SSL|TLS/i.test(
        code(e) + text(e),
      )
    )
  ) {
    const tls = errors.find((e) => /certificate|CERT_|SSL|TLS|alert|handshake/i.test(code(e) + text(e)));
    return `TLS failed (${
      tls instanceof Error ? tls.message : String(tls)
    }): check the CA, the client certificate and the host name`;
  }
  if (any((e) => /ETIMEDOUT|timed? ?out/i.test(code(e) + text(e)))) {
    return `timed out connecting to ${where} (a firewall, a wrong port, or an overloaded broker)`;
  }
  const first = errors.find((e) => e instanceof Error);
  return first instanceof Error ? first.message : "unknown failure";
}

/**
 * `host:port` of a URL (the default port when it names none), for messages
 * and `--allow-net` hints.
 *
 * @example
 * ```ts
 * import { hostPort } from "@spores/spores";
 * console.assert(hostPort("redis://user:secret@127.0.0.1/0", 6379) === "127.0.0.1:6379");
 * ```
 */
export function hostPort(url: string, defaultPort: number): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || defaultPort}`;
  } catch {
    return "the broker's host:port";
  }
}

/**
 * Where a URL points, without its credentials (safe for messages and logs):
 * scheme, host and port, and with `path: true` its path (a virtual host).
 *
 * @example
 * ```ts
 * import { describeUrl } from "@spores/spores";
 * console.assert(describeUrl("amqp://guest:secret@127.0.0.1:5672/prod", { path: true }) === "amqp://127.0.0.1:5672/prod");
 * ```
 */
export function describeUrl(url: string, options: { path?: boolean } = {}): string {
  try {
    const u = new URL(url);
    const path = options.path && u.pathname && u.pathname !== "/" ? u.pathname : "";
    return `${u.protocol}//${u.hostname}${u.port ? `:${u.port}` : ""}${path}`;
  } catch {
    return "an invalid URL";
  }
}
