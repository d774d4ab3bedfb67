// Helpers for browser tests: start an app server, launch Debian's headless Chromium through
// playwright-core, and locate the supertokens-website browser bundle. See README.md.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { bundlePath } from "./bundles.mjs";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

// Playwright itself adds --user-data-dir=<fresh temp dir> (removed on close) and
// --remote-debugging-port; it refuses a caller-supplied --user-data-dir for launch().
export const CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
];

/** A free ephemeral TCP port on 127.0.0.1 (the OS picks it; it is released before returning). */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = createServer();
        srv.unref();
        srv.on("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// Children still alive when Node exits (e.g. a test crashed before stop()) are killed by PID.
const live = new Set();
process.on("exit", () => {
    for (const child of live) {
        try {
            process.kill(child.pid, "SIGKILL");
        } catch {}
    }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawn `cmd args` and wait until GET http://127.0.0.1:<port><readyPath> gets any HTTP answer.
 * Returns {url, port, pid, output(), stop()}; stop() sends SIGTERM to the PID, then SIGKILL after
 * `killTimeoutMs`. Throws (after stopping the process) with its stdout/stderr if it exits early
 * or is not ready within `timeoutMs`.
 */
export async function startServer({ cmd, args = [], env = {}, port, readyPath = "/", cwd, timeoutMs = 60_000, killTimeoutMs = 5_000 }) {
    if (!cmd || !port) throw new Error("startServer needs cmd and port");
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    let log = "";
    const append = (chunk) => {
        log += chunk;
        if (log.length > 200_000) log = log.slice(-100_000);
    };
    child.stdout.on("data", append);
    child.stderr.on("data", append);
    let exited = null;
    const exitPromise = new Promise((resolve) => {
        child.on("error", (err) => append(`\n[spawn error] ${err.message}\n`));
        child.on("close", (code, signal) => {
            exited = { code, signal };
            live.delete(child);
            resolve(exited);
        });
    });

    const stop = async () => {
        if (exited || child.pid === undefined) return exited;
        try {
            process.kill(child.pid, "SIGTERM");
        } catch {}
        const timer = setTimeout(() => {
            try {
                process.kill(child.pid, "SIGKILL");
            } catch {}
        }, killTimeoutMs);
        await exitPromise;
        clearTimeout(timer);
        return exited;
    };
    const output = () => log;
    const fail = async (why) => {
        await stop();
        throw new Error(`${why}: ${cmd} ${args.join(" ")}\n--- output ---\n${log}--- end output ---`);
    };

    const deadline = Date.now() + timeoutMs;
    for (;;) {
        if (exited) return fail(`server exited early (${JSON.stringify(exited)})`);
        try {
            await fetch(url + readyPath, { signal: AbortSignal.timeout(2_000) });
            return { url, port, pid: child.pid, output, stop };
        } catch {}
        if (Date.now() > deadline) return fail(`server not ready at ${url}${readyPath} after ${timeoutMs} ms`);
        await sleep(100);
    }
}

/** Headless Debian Chromium (never a downloaded browser) with a fresh temporary profile. */
export async function launchBrowser({ args = [], ...options } = {}) {
    return chromium.launch({
        executablePath: CHROMIUM_PATH,
        headless: true,
        args: [...CHROMIUM_FLAGS, ...args],
        ...options,
    });
}

/**
 * A Chromium `BrowserContext` whose profile allows third-party cookies. Debian's Chromium blocks
 * them by default (CDP reports the blocked reason `UserPreferences`): a credentialed cross-site
 * `fetch`, `sendBeacon` or `<img>` carries no cookie, while a top-level cross-site form POST does.
 * Tests that must see the server reject a cross-site request that *does* carry the cookies use
 * this. It is a persistent context on a fresh profile directory whose Preferences set
 * `profile.cookie_controls_mode = 0`; returns {context, close()}, and close() also deletes the
 * directory.
 */
export async function launchContextWithThirdPartyCookies({ args = [], ...options } = {}) {
    const dir = mkdtempSync(join(tmpdir(), "tessera-chromium-3pc-"));
    try {
        mkdirSync(join(dir, "Default"));
        const prefs = { profile: { cookie_controls_mode: 0, block_third_party_cookies: false } };
        writeFileSync(join(dir, "Default", "Preferences"), JSON.stringify(prefs));
        const context = await chromium.launchPersistentContext(dir, {
            executablePath: CHROMIUM_PATH,
            headless: true,
            args: [...CHROMIUM_FLAGS, ...args],
            ...options,
        });
        const close = async () => {
            await context.close();
            rmSync(dir, { recursive: true, force: true });
        };
        return { context, close };
    } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
    }
}

/**
 * Absolute path of the supertokens-website browser bundle (built from the pinned npm release,
 * see bundles.mjs). Loading it as a classic <script> defines the global `supertokens`.
 */
export function supertokensWebsiteBundlePath() {
    return bundlePath("supertokens-website");
}

/** Browser bundle of npm `assert` defining the global `assert` (stand-in for the CDN umd-assert). */
export function assertBundlePath() {
    return bundlePath("assert");
}

/**
 * Absolute paths of browser (UMD/IIFE) files standing in for the CDN scripts of the official
 * supertokens-website test page: globals `axios`, `AxiosMockAdapter` and `assert`.
 */
export function testPageScriptPaths() {
    const nm = (p) => fileURLToPath(new URL(`./node_modules/${p}`, import.meta.url));
    return {
        axios: nm("axios/dist/axios.min.js"),
        axiosMockAdapter: nm("axios-mock-adapter/dist/axios-mock-adapter.min.js"),
        assert: assertBundlePath(),
    };
}

/**
 * Cookies the browser context would send to `url` (all of the context's cookies if no url),
 * each with name, value, domain, path, expires (seconds since epoch, -1 for session cookies),
 * httpOnly, secure and sameSite ("Strict" | "Lax" | "None").
 */
export async function cookiesOf(context, url) {
    return url === undefined ? context.cookies() : context.cookies(url);
}
