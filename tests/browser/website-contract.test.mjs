// The supertokens-website test-app contract (shared/spec/browser-protocol.md §11.2) served by
// examples/src/bin/website-test-app.rs over a real `tessera serve` core, driven the way the
// official supertokens-website suite drives its app server: /test/setup/app → /test/setup/st
// (not awaited, as in the suite) → /index.html + the SDK bundle → supertokens.init → /login →
// GET / → refresh after a 3 s access token → /update-jwt → /session-claims-error → /logout.
//
// Build first: `cargo build -p tessera-server -p tessera-examples --bin tessera --bin website-test-app`.
// Binaries: TESSERA_BIN (default ../../target/debug/tessera) and WEBSITE_TEST_APP_BIN (default
// ../../target/debug/website-test-app), relative to this folder. When the default
// website-test-app is missing, the test builds it with cargo (scripts/test.sh builds only
// browser-app before `npm test`).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { freePort, launchBrowser, startServer, supertokensWebsiteBundlePath, testPageScriptPaths } from "./harness.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const TESSERA_BIN = resolve(here, process.env.TESSERA_BIN ?? "../../target/debug/tessera");
const APP_BIN = resolve(here, process.env.WEBSITE_TEST_APP_BIN ?? "../../target/debug/website-test-app");
const TEST_TIMEOUT = 60_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
let core; // {url, stop}
let app; // {url, origin, stop}
let dataDir;
const servers = [];

before(async () => {
    if (!existsSync(APP_BIN) && process.env.WEBSITE_TEST_APP_BIN === undefined) {
        const build = spawnSync("cargo", ["build", "-p", "tessera-examples", "--bin", "website-test-app"], {
            cwd: resolve(here, "../.."),
            stdio: ["ignore", "ignore", "inherit"],
            timeout: 900_000,
        });
        if (build.status !== 0) throw new Error(`cargo build of website-test-app failed: ${build.error ?? build.status}`);
    }
    for (const [bin, hint] of [
        [TESSERA_BIN, "cargo build -p tessera-server --bin tessera, or set TESSERA_BIN"],
        [APP_BIN, "cargo build -p tessera-examples --bin website-test-app, or set WEBSITE_TEST_APP_BIN"],
    ]) {
        if (!existsSync(bin)) throw new Error(`${bin} not found: ${hint}`);
    }
    // Build the page's scripts (assert bundle) and the SDK bundle before anything serves them.
    const scripts = testPageScriptPaths();
    supertokensWebsiteBundlePath();

    dataDir = mkdtempSync(join(tmpdir(), "tessera-website-contract-"));
    const corePort = await freePort();
    core = await startServer({
        cmd: TESSERA_BIN,
        args: ["serve", "--port", String(corePort), "--sqlite-path", join(dataDir, "core.db"), "--log-level", "warn"],
        port: corePort,
        readyPath: "/hello",
    });
    servers.push(core);

    const port = await freePort();
    const origin = `http://localhost:${port}`;
    const server = await startServer({
        cmd: APP_BIN,
        args: ["--port", String(port), "--core-url", core.url, "--website-domain", origin],
        // The page's scripts from this folder's node_modules (what --static-dir defaults to in a
        // checkout, passed explicitly so a relocated binary works too).
        env: { WEBSITE_TEST_STATIC_DIR: resolve(dirname(scripts.axios), "../.."), TRANSFER_METHOD: "" },
        port,
        readyPath: "/ping",
    });
    servers.push(server);
    app = { ...server, origin };
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    for (const s of servers.reverse()) await s.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A request from Node (the suite's mocha side uses axios the same way). */
async function http(method, path, { body, headers = {} } = {}) {
    const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(10_000) };
    if (body !== undefined) {
        init.headers["content-type"] = "application/json";
        init.body = JSON.stringify(body);
    }
    const r = await fetch(app.url + path, init);
    return { status: r.status, headers: r.headers, text: await r.text() };
}

/** The test page with the SDK injected as the suite does (addScriptTag + window.BASE_URL). */
async function openSuitePage(context) {
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.errors = [];
    page.on("pageerror", (e) => page.errors.push(e.message));
    await page.goto(`${app.origin}/index.html`, { waitUntil: "load" });
    await page.addScriptTag({ path: supertokensWebsiteBundlePath(), type: "text/javascript" });
    await page.evaluate((base) => (window.BASE_URL = base), app.origin);
    await page.waitForFunction(() => window.supertokens !== undefined);
    return page;
}

/** `fetch` in the page (through the SDK's interceptor): {status, text}. */
function pageFetch(page, method, path, body) {
    return page.evaluate(
        async ({ method, path, body }) => {
            const init = { method, headers: { Accept: "application/json", "Content-Type": "application/json" } };
            if (body !== undefined) init.body = JSON.stringify(body);
            const r = await fetch(`${BASE_URL}${path}`, init);
            return { status: r.status, text: await r.text() };
        },
        { method, path, body },
    );
}

test("plain routes of the contract", async () => {
    assert.deepEqual(JSON.parse((await http("GET", "/featureFlags")).text), {
        sessionJwt: false,
        sessionClaims: true,
        v3AccessToken: true,
        duplicateCookieHandling: false,
    });
    for (const method of ["GET", "POST", "PUT", "DELETE"]) {
        const r = await http(method, "/testing", { headers: { testing: "abc" } });
        assert.equal(r.status, 200);
        assert.equal(r.text, "success");
        assert.equal(r.headers.get("testing"), "abc");
    }
    assert.equal((await http("GET", "/ping")).text, "success");
    assert.deepEqual(JSON.parse((await http("GET", "/testHeader", { headers: { "st-custom-header": "1" } })).text), { success: true });
    assert.equal((await http("POST", "/checkAllowCredentials")).text, "false");
    assert.equal((await http("POST", "/multipleInterceptors", { headers: { interceptorheader1: "a", interceptorheader2: "b" } })).text, "success");
    assert.equal((await http("GET", "/check-rid-no-session", { headers: { rid: "anti-csrf" } })).text, "success");
    assert.equal((await http("GET", "/check-rid-no-session")).text, "fail");
    const e = await http("GET", "/testError?code=409");
    assert.deepEqual([e.status, e.text], [409, "test error message"]);
    assert.equal((await http("GET", "/testError")).status, 500);
    assert.equal((await http("POST", "/403-without-body")).status, 403);
    assert.match((await http("GET", "/getPackageVersion")).text, /^20\.\d+\.\d+$/);
    for (const path of ["/beforeeach", "/after", "/testUserConfig", "/stopst"]) {
        assert.equal((await http("POST", path)).status, 200, path);
    }
    assert.equal((await http("GET", "/no-such-route")).status, 404);
    assert.equal((await http("GET", "/login")).status, 404, "wrong method is 404 too");
    assert.equal((await http("GET", "/angular/main.js")).status, 404, "no --angular-dir");
    // A session route without a session: the suite's onUnauthorised answer.
    const unauth = await http("GET", "/");
    assert.deepEqual([unauth.status, unauth.text], [401, "{}"]);
    // The SDK's refresh route, counted by the app's middleware; a failure is cleared + 401 {}.
    await http("POST", "/beforeeach");
    const refresh = await http("POST", "/auth/session/refresh", { headers: { rid: "session" } });
    assert.deepEqual([refresh.status, refresh.text, refresh.headers.get("front-token")], [401, "{}", "remove"]);
    assert.equal((await http("GET", "/refreshAttemptedTime")).text, "1");
    assert.equal((await http("GET", "/refreshCalledTime")).text, "0");
    // CORS preflight for the website origin with the SDK's headers.
    const pre = await fetch(`${app.url}/login`, {
        method: "OPTIONS",
        headers: { origin: "http://localhost:8080", "access-control-request-method": "POST", "access-control-request-headers": "content-type,rid,st-auth-mode" },
    });
    assert.equal(pre.headers.get("access-control-allow-credentials"), "true");
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", /st-auth-mode/);
});

test("the test page has the suite's globals", { timeout: TEST_TIMEOUT }, async () => {
    const context = await browser.newContext();
    try {
        const page = await openSuitePage(context);
        const types = await page.evaluate(() =>
            Object.fromEntries(
                [
                    "getNumberOfTimesRefreshCalled",
                    "getNumberOfTimesRefreshAttempted",
                    "getNumberOfTimesGetSessionCalled",
                    "getPackageVersion",
                    "assertEqual",
                    "assertNotEqual",
                    "delay",
                    "loadAngular",
                    "deleteAllCookies",
                    "axios",
                    "AxiosMockAdapter",
                    "assert",
                ].map((name) => [name, typeof window[name]]),
            ),
        );
        for (const [name, type] of Object.entries(types)) assert.equal(type, "function", `${name} is ${type}`);
        const checks = await page.evaluate(async () => {
            const out = {};
            out.assertStrictEqual = typeof assert.strictEqual;
            out.assertEqualThrows = (() => {
                try {
                    assertEqual(1, 2);
                    return false;
                } catch (e) {
                    return e instanceof Error;
                }
            })();
            const started = Date.now();
            await delay(0.2);
            out.delayed = Date.now() - started >= 190;
            out.version = await getPackageVersion(BASE_URL);
            out.refreshCalled = await getNumberOfTimesRefreshCalled(BASE_URL);
            document.cookie = "leftover=1";
            deleteAllCookies();
            out.cookies = document.cookie;
            return out;
        });
        assert.deepEqual(checks, {
            assertStrictEqual: "function",
            assertEqualThrows: true,
            delayed: true,
            version: (await http("GET", "/getPackageVersion")).text,
            refreshCalled: 0, // axios parses the text "0" as JSON, as in the suite
            cookies: "",
        });
        assert.deepEqual(page.errors, []);
    } finally {
        await context.close();
    }
});

for (const mode of ["cookie", "header"]) {
    describe(`${mode} mode: the suite's per-test flow`, () => {
        test("login, refresh after expiry, update-jwt, claims error, logout", { timeout: TEST_TIMEOUT }, async () => {
            assert.equal((await http("POST", "/beforeeach")).status, 200);
            const setupApp = await http("POST", "/test/setup/app", { body: { appId: randomUUID(), coreConfig: { access_token_validity: 3 } } });
            assert.equal(setupApp.status, 200, setupApp.text);
            const coreUrl = setupApp.text;
            assert.match(coreUrl, /\/appid-[0-9a-f-]{36}$/);
            // Sent while the page loads, as the suite's setupST (which never awaits it) does; awaited
            // before /login so that the flow below is deterministic.
            const setupSt = http("POST", "/test/setup/st", { body: { coreUrl, enableAntiCsrf: true } });

            const context = await browser.newContext();
            try {
                const page = await openSuitePage(context);
                await page.evaluate((tokenTransferMethod) => {
                    window.events = [];
                    window.refreshResponses = [];
                    supertokens.init({
                        apiDomain: BASE_URL,
                        tokenTransferMethod,
                        onHandleEvent: (e) => window.events.push(e.action),
                        // What the suite's "reads the body in the post API hook" test checks.
                        postAPIHook: async ({ action, fetchResponse }) => {
                            if (action === "REFRESH_SESSION") window.refreshResponses.push(`${fetchResponse.status} ${await fetchResponse.text()}`);
                        },
                    });
                }, mode);
                assert.equal((await setupSt).status, 200);

                const userId = `user-${mode}`;
                assert.deepEqual(await pageFetch(page, "POST", "/login", { userId }), { status: 200, text: userId });
                assert.equal(await page.evaluate(() => supertokens.doesSessionExist()), true);
                assert.deepEqual(await pageFetch(page, "GET", "/"), { status: 200, text: userId });
                assert.equal(await page.evaluate(() => getNumberOfTimesGetSessionCalled(BASE_URL)), 1);

                // The app created by /test/setup/app (3 s tokens) is the one in use.
                const payload = await page.evaluate(() => supertokens.getAccessTokenPayloadSecurely());
                assert.equal(payload.exp - payload.iat, 3, "access_token_validity from /test/setup/app");
                assert.deepEqual(
                    Object.keys(payload).sort(),
                    ["antiCsrfToken", "exp", "iat", "iss", "parentRefreshTokenHash1", "refreshTokenHash1", "rsub", "sessionHandle", "sub", "tId"],
                    "the v5 payload key set accessToken.test.js expects",
                );
                await sleep(Math.max(0, payload.exp * 1000 + 500 - Date.now()));

                assert.deepEqual(await pageFetch(page, "GET", "/"), { status: 200, text: userId });
                assert.equal(await page.evaluate(() => getNumberOfTimesRefreshCalled(BASE_URL)), 1);
                // Two attempts: a fresh browser's first intercepted call (the login) starts with a
                // refresh probe, answered 401 {} (no refresh token; the onUnauthorised override).
                assert.equal(await page.evaluate(() => getNumberOfTimesRefreshAttempted(BASE_URL)), 2);
                assert.equal(await page.evaluate(() => getNumberOfTimesGetSessionCalled(BASE_URL)), 2);
                assert.deepEqual(await page.evaluate(() => window.refreshResponses), ["200 refresh success"]);

                // update-jwt round trip: the new payload reaches the front-token too.
                const updated = await pageFetch(page, "POST", "/update-jwt", { key: "value" });
                assert.equal(updated.status, 200, updated.text);
                const body = JSON.parse(updated.text);
                assert.equal(body.key, "value");
                assert.equal(body.sub, userId);
                assert.equal(body.iss, undefined, "non-protected keys are cleared first");
                const seen = await pageFetch(page, "GET", "/update-jwt");
                assert.equal(JSON.parse(seen.text).key, "value");
                assert.equal((await page.evaluate(() => supertokens.getAccessTokenPayloadSecurely())).key, "value");

                const claims = await pageFetch(page, "POST", "/session-claims-error");
                assert.equal(claims.status, 403);
                assert.deepEqual(JSON.parse(claims.text), {
                    message: "invalid claim",
                    claimValidationErrors: [{ id: "test-claim-failing", reason: { message: "testReason" } }],
                });

                assert.deepEqual(await pageFetch(page, "GET", "/check-rid"), { status: 200, text: "success" });
                assert.deepEqual(await pageFetch(page, "POST", "/logout"), { status: 200, text: "success" });
                assert.equal(await page.evaluate(() => supertokens.doesSessionExist()), false);
                assert.equal((await pageFetch(page, "GET", "/")).status, 401);

                const events = await page.evaluate(() => window.events);
                for (const e of ["SESSION_CREATED", "REFRESH_SESSION", "ACCESS_TOKEN_PAYLOAD_UPDATED", "API_INVALID_CLAIM", "SIGN_OUT"]) {
                    assert.ok(events.includes(e), `event ${e} missing: ${events}`);
                }
                assert.deepEqual(page.errors, []);
            } finally {
                await context.close();
            }
        });
    });
}
