// Bundles src/app.tsx into dist/app.js, the script the server embeds. The bundle is
// committed so that building and running the server needs no Node.js; `node build.mjs
// --check` (run by .ci/run) fails when the committed bundle is not what the sources make.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { build } from "esbuild";

const OUT = "dist/app.js";
const result = await build({
  entryPoints: ["src/app.tsx"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  charset: "utf8",
  write: false,
  logLevel: "warning",
});
const bundle = result.outputFiles[0].contents;

if (process.argv.includes("--check")) {
  let committed = null;
  try {
    committed = readFileSync(OUT);
  } catch {}
  if (!committed || Buffer.compare(committed, Buffer.from(bundle)) !== 0) {
    console.error(`${OUT} is not what src/ builds: run \`npm run build\` in server/dashboard and commit ${OUT}`);
    process.exit(1);
  }
  console.log(`${OUT} is current (${bundle.length} bytes)`);
} else {
  mkdirSync("dist", { recursive: true });
  writeFileSync(OUT, bundle);
  console.log(`${OUT}: ${bundle.length} bytes`);
}
