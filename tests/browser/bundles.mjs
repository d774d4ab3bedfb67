// Browser bundles of npm packages that ship no browser file of their own.
//
// The npm tarball of supertokens-website has no `bundle/` folder (it is listed in the repo's
// .npmignore); it ships only CommonJS in lib/build/. The upstream repo builds bundle/bundle.js
// with webpack from lib/build/bundleEntry.js as a `var supertokens` library. We do the same with
// esbuild (an IIFE assigned to the global `supertokens`), from the exact pinned npm release.
//
// Outputs live in node_modules/.tessera/, so `npm ci` (which wipes node_modules) also discards
// stale bundles; they are rebuilt on first use or by `node bundles.mjs`.
//
// Run directly (`node bundles.mjs`) to (re)build every bundle and print the paths.
import { buildSync } from "esbuild";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const outDir = join(here, "node_modules", ".tessera");

const version = (pkg) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8")).version;

const BUNDLES = {
    // window.supertokens = exports of supertokens-website/lib/build/bundleEntry.js
    "supertokens-website": () => ({
        entryPoints: [require.resolve("supertokens-website/lib/build/bundleEntry.js")],
        globalName: "supertokens",
        banner: { js: `/* supertokens-website ${version("supertokens-website")} (npm), bundled by tests/browser/bundles.mjs */` },
    }),
    // window.assert = Node's assert API for the browser (npm `assert`, browserify/commonjs-assert).
    // Stand-in for the `umd-assert` the official test page imports from a CDN (not on npm).
    assert: () => ({
        entryPoints: [require.resolve("assert")],
        globalName: "assert",
        // `util` (a dependency) touches these `process` members; everything else is guarded.
        define: { "process.env.NODE_DEBUG": "false", "process.stderr": "undefined", "process.emitWarning": "undefined" },
        banner: { js: `/* assert ${version("assert")} (npm), bundled by tests/browser/bundles.mjs */` },
    }),
};

/** Absolute path of the browser bundle for `name` (a key of BUNDLES), building it if missing. */
export function bundlePath(name) {
    const options = BUNDLES[name];
    if (!options) throw new Error(`unknown bundle ${name}`);
    const outfile = join(outDir, `${name}.js`);
    if (!existsSync(outfile)) {
        buildSync({ bundle: true, format: "iife", platform: "browser", target: "es2017", logLevel: "error", outfile, ...options() });
    }
    return outfile;
}

export const buildAll = () => Object.keys(BUNDLES).map(bundlePath);

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
    for (const p of buildAll()) console.log(p);
}
