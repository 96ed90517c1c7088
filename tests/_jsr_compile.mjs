// The compiler of tests/_jsr_npm.ts, run on Node with the TypeScript package: each module on its own, as
// JSR compiles a package for its npm layer. node _jsr_compile.mjs <sources dir> <output dir> <list of files>
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
// TypeScript from the tools directory this file is copied into (a path, not a bare name, which Deno would resolve).
const { default: ts } = await import(
  new URL("node_modules/typescript/lib/typescript.js", import.meta.url).href
);
const [src, out, list] = process.argv.slice(2);
const options = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  rewriteRelativeImportExtensions: true,
  allowImportingTsExtensions: true,
  verbatimModuleSyntax: false,
  isolatedModules: true,
  strict: true,
  useDefineForClassFields: true,
  removeComments: false,
};
const declarations = { ...options, declaration: true, isolatedDeclarations: true };
const relative = /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g;
const failures = [];
const imports = new Set();
let loose = 0;
for (const file of JSON.parse(readFileSync(list, "utf8"))) {
  const text = readFileSync(join(src, file), "utf8");
  const base = join(out, file.replace(/\.ts$/, ""));
  mkdirSync(dirname(base), { recursive: true });
  const js = ts.transpileModule(text, { compilerOptions: options, fileName: file, reportDiagnostics: true });
  const dts = ts.transpileDeclaration(text, {
    compilerOptions: declarations,
    fileName: file,
    reportDiagnostics: true,
  });
  for (const d of js.diagnostics ?? []) {
    failures.push(file + ": " + ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  }
  // Declarations of what is not reachable from an export may infer types (JSR's fast check asks for
  // explicit types on the public API only, which `deno publish` enforces): those are counted, not fatal.
  loose += dts.diagnostics?.length ?? 0;
  for (const i of ts.preProcessFile(text, true, true).importedFiles) imports.add(i.fileName);
  writeFileSync(base + ".js", js.outputText.replace(relative, "$1$2.js$3"));
  // transpileDeclaration also writes a method named by a well-known symbol as a property of the same name
  // (TypeScript 5.9): the property is dropped where the method is declared.
  let declaration = dts.outputText.replace(relative, "$1$2.js$3");
  for (const [, name] of declaration.matchAll(/^\s*(\[Symbol\.\w+\])\(\)/gm)) {
    const escaped = name.replace(/[.[\]]/g, "\\$&");
    declaration = declaration.replace(
      new RegExp(String.raw`^(\s*/\*\*[^\n]*\*/\n)?\s*` + escaped + String.raw`: \(\) => [^\n]*;\n`, "m"),
      "",
    );
  }
  writeFileSync(base + ".d.ts", declaration);
}
console.log(
  JSON.stringify({ modules: JSON.parse(readFileSync(list, "utf8")).length, loose, imports: [...imports] }),
);
if (failures.length > 0) {
  console.error(failures.join("\n"));
  process.exit(1);
}
