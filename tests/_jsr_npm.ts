// The package as a Node user gets it from JSR's npm compatibility layer, built here the way JSR builds it:
// the files deno.json publishes (publish.include less publish.exclude), each TypeScript module compiled on its
// own to JavaScript and a declaration file (TypeScript's transpileModule and transpileDeclaration, which need
// no type check, as JSR's "no slow types" rule allows; tests/_jsr_compile.mjs), relative `.ts` specifiers
// rewritten to `.js`, a
// package.json whose `exports` mirror deno.json's and whose dependencies are the npm packages the modules
// import, at the exact versions deno.json's `imports` pin. It is packed with `npm pack` and installed with
// `npm install` into a project that depends on it as `@spores/spores` (what `npx jsr add @spores/spores`
// writes: an alias of `@jsr/spores__spores`), so programs import it by name as a Node user's do, and
// tests/node/types_check.ts is type-checked with tsc against its declarations.
//
// Everything is cached under /tmp/spores-jsr-npm, keyed by a hash of the inputs (the published files, the
// tool versions and this file), so a second run with nothing changed costs a directory check.
//
// Run on its own: `deno run --allow-read=.,/tmp --allow-write=/tmp --allow-run --allow-env tests/_jsr_npm.ts`
// prints the directory of the installed project.
import { hex } from "../crypto/bytes.ts";

/** TypeScript, for compiling each module as JSR does (transpile only, no type check). */
export const TYPESCRIPT = "typescript@5.9.3";
/** The Node LTS lines the package is tested on, as published on the npm registry (`npm:node`). */
export const NODE_VERSIONS = { "22": "22.23.3", "24": "24.21.0" } as const;

const ROOT = new URL("../", import.meta.url);
const CACHE = "/tmp/spores-jsr-npm";

/** The installed project: `dir` holds `node_modules/@spores/spores` and the programs run there. */
export interface NodeProject {
  /** The project directory. */
  dir: string;
  /** The compiled package (as it sits in the tarball). */
  packageDir: string;
  /** Whether this call built it (false: taken from the cache). */
  built: boolean;
}

interface DenoJson {
  name: string;
  version: string;
  exports: Record<string, string>;
  imports: Record<string, string>;
  publish: { include: string[]; exclude: string[] };
}

async function run(cmd: string, args: string[], cwd: string, env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped", env }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}):\n${text}\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** The files deno.json publishes, relative to the root, sorted. */
async function publishedFiles(config: DenoJson): Promise<string[]> {
  const excluded = (path: string) =>
    config.publish.exclude.some((pattern) =>
      pattern.startsWith("**/*")
        ? path.endsWith(pattern.slice(4))
        : pattern.endsWith("/")
        ? path.startsWith(pattern)
        : path === pattern
    );
  const out: string[] = [];
  const walk = async (rel: string) => {
    const info = await Deno.stat(new URL(rel, ROOT));
    if (info.isDirectory) {
      for await (const entry of Deno.readDir(new URL(rel, ROOT))) {
        await walk(`${rel.replace(/\/$/, "")}/${entry.name}${entry.isDirectory ? "/" : ""}`);
      }
    } else if (!excluded(rel)) out.push(rel);
  };
  for (const include of config.publish.include) await walk(include);
  return out.sort();
}

/** The npm package and exact version behind each deno.json import, by the name modules import it under. */
function npmDependencies(imports: Record<string, string>): Map<string, { name: string; version: string }> {
  const out = new Map<string, { name: string; version: string }>();
  for (const [key, target] of Object.entries(imports)) {
    const m = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)\/?$/.exec(target);
    if (!m) throw new Error(`deno.json import ${key} is not an exact npm version: ${target}`);
    out.set(key.replace(/\/$/, ""), { name: m[1]!, version: m[2]! });
  }
  return out;
}

/** The package a bare specifier names (`@scope/name` or `name`), or undefined for relative and `node:` ones. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("node:")) {
    return undefined;
  }
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** Exclusive use of `dir` between test processes (mkdir is atomic); a lock older than 10 minutes is stale. */
async function withDirLock<T>(dir: string, task: () => Promise<T>): Promise<T> {
  const lock = `${dir}.lock`;
  for (;;) {
    try {
      await Deno.mkdir(lock);
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      const age = Date.now() - ((await Deno.stat(lock).catch(() => undefined))?.mtime?.getTime() ?? 0);
      if (age > 600_000) await Deno.remove(lock, { recursive: true }).catch(() => {});
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await task();
  } finally {
    await Deno.remove(lock, { recursive: true }).catch(() => {});
  }
}

/** Removes builds (about 50 MB each) of other inputs made over a day ago: other checkouts may use newer ones. */
async function prune(keep: string): Promise<void> {
  for await (const entry of Deno.readDir(CACHE)) {
    if (!/^[0-9a-f]{16}$/.test(entry.name) || entry.name === keep) continue;
    const done = await Deno.stat(`${CACHE}/${entry.name}/done`).catch(() => undefined);
    if (done?.mtime && Date.now() - done.mtime.getTime() > 86_400_000) {
      await Deno.remove(`${CACHE}/${entry.name}`, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Builds (or takes from the cache) the package as JSR's npm layer would serve it, and a project that has
 * installed it with npm under the name `@spores/spores`.
 */
export async function nodeProject(): Promise<NodeProject> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))) as DenoJson;
  const files = await publishedFiles(config);
  const hash = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(
        JSON.stringify([
          TYPESCRIPT,
          await Deno.readTextFile(new URL(import.meta.url)),
          await Deno.readTextFile(new URL("node/types_check.ts", import.meta.url)),
          await Deno.readTextFile(new URL("_jsr_compile.mjs", import.meta.url)),
          ...await Promise.all(files.map(async (f) => [f, await Deno.readTextFile(new URL(f, ROOT))])),
        ]),
      ),
    ),
  );
  const key = hex.encode(hash).slice(0, 16);
  const dir = `${CACHE}/${key}`;
  const project = { dir: `${dir}/project`, packageDir: `${dir}/package` };
  const done = async () => (await Deno.stat(`${dir}/done`).catch(() => undefined)) !== undefined;
  await Deno.mkdir(CACHE, { recursive: true });
  if (await done()) return { ...project, built: false };
  return await withDirLock(dir, async () => {
    if (await done()) return { ...project, built: false };
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${dir}/src`, { recursive: true });
    const npmEnv = {
      npm_config_update_notifier: "false",
      npm_config_fund: "false",
      npm_config_audit: "false",
    };

    // The compiler's own install, shared by every build.
    const tools = `${CACHE}/tools-${TYPESCRIPT.replace("@", "-")}`;
    if (!(await Deno.stat(`${tools}/node_modules/typescript/package.json`).catch(() => undefined))) {
      await Deno.mkdir(tools, { recursive: true });
      await Deno.writeTextFile(`${tools}/package.json`, JSON.stringify({ private: true, type: "module" }));
      await run("npm", ["install", "--no-save", "--silent", TYPESCRIPT], tools, npmEnv);
    }
    await Deno.copyFile(new URL("_jsr_compile.mjs", import.meta.url), `${tools}/compile.mjs`);

    // Sources, compiled module by module.
    const sources = files.filter((f) => f.endsWith(".ts"));
    for (const f of files) {
      const target = `${dir}/${f.endsWith(".ts") ? "src" : "package"}/${f}`;
      await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
      await Deno.copyFile(new URL(f, ROOT), target);
    }
    await Deno.remove(`${dir}/package/deno.json`).catch(() => {});
    await Deno.writeTextFile(`${dir}/sources.json`, JSON.stringify(sources));
    const compiled = JSON.parse(
      await run(
        "node",
        [`${tools}/compile.mjs`, `${dir}/src`, `${dir}/package`, `${dir}/sources.json`],
        tools,
      ),
    ) as { imports: string[] };

    // Dependencies: the npm packages the modules import (statically or by a literal dynamic import), at
    // deno.json's exact versions.
    const pinned = npmDependencies(config.imports);
    const dependencies: Record<string, string> = {};
    for (const spec of compiled.imports) {
      const name = packageOf(spec);
      if (!name) continue;
      const pin = pinned.get(name);
      if (!pin) throw new Error(`a published module imports ${spec}, which deno.json's imports do not map`);
      dependencies[pin.name] = pin.version;
    }
    const exports: Record<string, { types: string; default: string }> = {};
    for (const [name, path] of Object.entries(config.exports)) {
      const base = path.replace(/\.ts$/, "");
      exports[name] = { types: `${base}.d.ts`, default: `${base}.js` };
    }
    const [scope, name] = config.name.slice(1).split("/");
    await Deno.writeTextFile(
      `${dir}/package/package.json`,
      JSON.stringify(
        {
          name: `@jsr/${scope}__${name}`,
          version: config.version,
          type: "module",
          license: "MIT",
          exports,
          dependencies: Object.fromEntries(Object.entries(dependencies).sort()),
        },
        null,
        2,
      ) + "\n",
    );
    const tarball =
      (await run("npm", ["pack", "--silent", "--pack-destination", dir], `${dir}/package`, npmEnv))
        .trim().split("\n").pop()!;

    // A Node user's project: `npx jsr add @spores/spores` makes it an alias of the JSR package.
    await Deno.mkdir(project.dir);
    await Deno.writeTextFile(
      `${project.dir}/package.json`,
      JSON.stringify({
        private: true,
        type: "module",
        dependencies: { "@spores/spores": `file:../${tarball}` },
      }),
    );
    await run("npm", ["install", "--silent", "--no-package-lock"], project.dir, npmEnv);

    // A TypeScript program of a Node user's checks against the package's declarations.
    await Deno.copyFile(new URL("node/types_check.ts", import.meta.url), `${project.dir}/types_check.ts`);
    await run("node", [
      `${tools}/node_modules/typescript/bin/tsc`,
      "--noEmit",
      "--strict",
      "--skipLibCheck",
      "--module",
      "nodenext",
      "--target",
      "es2022",
      "types_check.ts",
    ], project.dir);
    await Deno.writeTextFile(`${dir}/done`, new Date().toISOString());
    await prune(key);
    return { ...project, built: true };
  });
}

/**
 * The path of the `node` binary of `version`, from the npm registry's `node` package (fetched by npx on first
 * use, then taken from npm's cache).
 */
export async function nodeBinary(version: string): Promise<string> {
  const path = (await run("npx", ["-y", `node@${version}`, "-p", "process.execPath"], "/tmp", {
    npm_config_update_notifier: "false",
  })).trim();
  const reported = (await run(path, ["--version"], "/tmp")).trim();
  if (reported !== `v${version}`) throw new Error(`node@${version} from npm runs as ${reported}`);
  return path;
}

if (import.meta.main) {
  const started = performance.now();
  const project = await nodeProject();
  console.log(
    project.dir,
    project.built ? "built" : "cached",
    `${Math.round(performance.now() - started)} ms`,
  );
}
