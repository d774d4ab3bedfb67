// The stock supertokens-website SDK in headless Chromium against tessera-axum
// (examples/src/bin/browser-app.rs): sign-in, refresh-and-retry after expiry, sign-out, the cookie
// jar (COOK-01/03/15), two tabs racing a refresh (RT-05), and cross-site request forgery
// (CSRF-01/03/04/11) with SameSite=None cookies.
//
// Build the app first: `cargo build -p tessera-examples --bin browser-app` (the binary path comes
// from BROWSER_APP_BIN, default ../../target/debug/browser-app relative to this folder).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { cookiesOf, freePort, launchBrowser, launchContextWithThirdPartyCookies, startServer, supertokensWebsiteBundlePath } from "./harness.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const APP_BIN = resolve(here, process.env.BROWSER_APP_BIN ?? "../../target/debug/browser-app");
const TEST_TIMEOUT = 60_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
const servers = []; // everything started here, stopped in after()

before(async () => {
    if (!existsSync(APP_BIN)) {
        throw new Error(`${APP_BIN} not found: run \`cargo build -p tessera-examples --bin browser-app\` or set BROWSER_APP_BIN`);
    }
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    for (const s of servers.reverse()) await s.stop();
});

/** Starts browser-app on a free port; `origin` is http://localhost:<port>, as the page sees it. */
async function startApp(args = []) {
    const port = await freePort();
    const server = await startServer({
        cmd: APP_BIN,
        args: ["--port", String(port), ...args],
        env: { ST_BUNDLE_PATH: supertokensWebsiteBundlePath() },
        port,
        readyPath: "/ping",
        timeoutMs: 30_000,
    });
    servers.push(server);
    return {
        ...server,
        origin: `http://localhost:${port}`,
        counters: async () => (await fetch(`${server.url}/api/counters`, { signal: AbortSignal.timeout(5_000) })).json(),
    };
}

/**
 * A page of `app` with the SDK initialised. `lock: false` replaces the SDK's cross-tab lock
 * (browser-tabs-lock) by one that never waits. Returns the page; uncaught page errors are
 * collected in `page.errors`.
 */
async function openPage(context, app, tokenTransferMethod, { lock = true } = {}) {
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.errors = [];
    page.on("pageerror", (e) => page.errors.push(e.message));
    await page.goto(`${app.origin}/index.html`);
    await page.evaluate(
        ({ apiDomain, tokenTransferMethod, lock }) => {
            const noLock = () => Promise.resolve({ acquireLock: async () => true, releaseLock: async () => {} });
            supertokens.init({ apiDomain, apiBasePath: "/auth", tokenTransferMethod, ...(lock ? {} : { lockFactory: noLock }) });
        },
        { apiDomain: app.origin, tokenTransferMethod, lock },
    );
    return page;
}

/** `fetch` inside the page (so through the SDK's interceptor); returns {status, json}. */
function call(page, method, path, body) {
    return page.evaluate(
        async ({ method, path, body }) => {
            const init = { method };
            if (body !== undefined) {
                init.headers = { "content-type": "application/json" };
                init.body = JSON.stringify(body);
            }
            const response = await fetch(new URL(path, location.origin).href, init);
            const text = await response.text();
            let json = null;
            try {
                json = JSON.parse(text);
            } catch {}
            return { status: response.status, json };
        },
        { method, path, body },
    );
}

const sdk = (page, fn) => page.evaluate((fn) => supertokens[fn](), fn);

async function signIn(page, userId) {
    const r = await call(page, "POST", "/login", { userId });
    assert.equal(r.status, 200, `login: ${JSON.stringify(r)}`);
    assert.equal(r.json.status, "OK");
}

/** Sleeps until the current access token (its `exp`, read from the front-token) has expired. */
async function waitPastExpiry(page) {
    const { exp } = await sdk(page, "getAccessTokenPayloadSecurely");
    const wait = exp * 1000 + 300 - Date.now();
    assert.ok(wait < 4_000, `access token lives ${wait} ms more: app not started with a short validity?`);
    if (wait > 0) await sleep(wait);
}

/** Network-level statuses of responses to `path` seen by `page` (before the SDK's retry logic). */
function recordStatuses(page, path) {
    const seen = [];
    page.on("response", (r) => {
        if (new URL(r.url()).pathname === path) seen.push(r.status());
    });
    return seen;
}

const byName = (cookies) => Object.fromEntries(cookies.map((c) => [c.name, c]));

for (const mode of ["cookie", "header"]) {
    describe(`${mode} mode`, () => {
        let app;
        before(async () => {
            app = await startApp(["--access-token-validity-secs", "2"]);
        });

        test("sign in, refresh and retry after expiry, sign out", { timeout: TEST_TIMEOUT }, async () => {
            const context = await browser.newContext();
            try {
                const page = await openPage(context, app, mode);
                assert.equal(await sdk(page, "doesSessionExist"), false);
                await signIn(page, `alice-${mode}`);
                assert.equal(await sdk(page, "doesSessionExist"), true);
                assert.equal(await sdk(page, "getUserId"), `alice-${mode}`);
                assert.deepEqual(await call(page, "GET", "/api/me"), { status: 200, json: { userId: `alice-${mode}` } });

                await waitPastExpiry(page);
                const before = await app.counters();
                const statuses = recordStatuses(page, "/api/me");
                assert.deepEqual(await call(page, "GET", "/api/me"), { status: 200, json: { userId: `alice-${mode}` } });
                assert.deepEqual(statuses, [401, 200], "expired token answered 401, the SDK refreshed and retried");
                assert.equal((await app.counters()).refreshCalls - before.refreshCalls, 1, "exactly one refresh");
                assert.equal(await sdk(page, "doesSessionExist"), true);

                await sdk(page, "signOut");
                assert.equal(await sdk(page, "doesSessionExist"), false);
                const afterSignOut = await app.counters();
                assert.equal((await call(page, "GET", "/api/me")).status, 401);
                assert.equal((await app.counters()).refreshCalls, afterSignOut.refreshCalls, "no refresh once signed out");
                // COOK-15: nothing of the session is left in the jar.
                const left = (await cookiesOf(context)).map((c) => c.name);
                for (const name of ["sAccessToken", "sRefreshToken", "sFrontToken", "st-access-token", "st-refresh-token"]) {
                    assert.ok(!left.includes(name), `${name} left after sign-out: ${left}`);
                }
                assert.deepEqual(page.errors, []);
            } finally {
                await context.close();
            }
        });

        test("cookie jar after sign-in", { timeout: TEST_TIMEOUT }, async () => {
            const context = await browser.newContext();
            try {
                const page = await openPage(context, app, mode);
                await signIn(page, "bob");
                const jar = byName(await cookiesOf(context));
                const now = Date.now() / 1000;
                // Written by the SDK itself with document.cookie, so never HttpOnly.
                assert.equal(jar.sFrontToken?.httpOnly, false, "sFrontToken stored by the SDK");
                if (mode === "cookie") {
                    const at = jar.sAccessToken;
                    const rt = jar.sRefreshToken;
                    assert.ok(at && rt, `session cookies missing: ${Object.keys(jar)}`);
                    assert.deepEqual(
                        { httpOnly: at.httpOnly, secure: at.secure, sameSite: at.sameSite, path: at.path, domain: at.domain },
                        { httpOnly: true, secure: false, sameSite: "Lax", path: "/", domain: "localhost" },
                    );
                    assert.deepEqual(
                        { httpOnly: rt.httpOnly, secure: rt.secure, sameSite: rt.sameSite, path: rt.path, domain: rt.domain },
                        { httpOnly: true, secure: false, sameSite: "Lax", path: "/auth/session/refresh", domain: "localhost" },
                    );
                    assert.ok(at.expires > now + 300 * 86400, "sAccessToken kept for a year, whatever the JWT's exp");
                    assert.ok(rt.expires > now + 90 * 86400 && rt.expires < now + 101 * 86400, "sRefreshToken: the refresh token's 100 days");
                    // COOK-03: the refresh token goes only to the refresh route.
                    assert.deepEqual((await cookiesOf(context, `${app.origin}/api/me`)).map((c) => c.name).filter((n) => n.startsWith("s") && n.endsWith("Token")).sort(), ["sAccessToken", "sFrontToken"]);
                    assert.ok((await cookiesOf(context, `${app.origin}/auth/session/refresh`)).some((c) => c.name === "sRefreshToken"));
                    assert.equal(jar["st-access-token"], undefined);
                    assert.equal(await sdk(page, "getAccessToken"), undefined, "no JS-readable access token in cookie mode");
                } else {
                    assert.equal(jar.sAccessToken, undefined, "no session cookies in header mode");
                    assert.equal(jar.sRefreshToken, undefined, "no session cookies in header mode");
                    for (const name of ["st-access-token", "st-refresh-token"]) {
                        const c = jar[name];
                        assert.ok(c, `${name} frontend cookie missing: ${Object.keys(jar)}`);
                        assert.deepEqual({ httpOnly: c.httpOnly, path: c.path, sameSite: c.sameSite }, { httpOnly: false, path: "/", sameSite: "Lax" });
                    }
                    assert.equal(await sdk(page, "getAccessToken"), jar["st-access-token"].value);
                }
                assert.deepEqual(page.errors, []);
            } finally {
                await context.close();
            }
        });

        for (const lock of [true, false]) {
            test(`two tabs race an expired access token (RT-05, cross-tab lock ${lock ? "on" : "off"})`, { timeout: TEST_TIMEOUT }, async (t) => {
                const context = await browser.newContext();
                try {
                    const tabs = [await openPage(context, app, mode, { lock }), await openPage(context, app, mode, { lock })];
                    await signIn(tabs[0], "carol");
                    assert.equal(await sdk(tabs[1], "getUserId"), "carol", "the second tab sees the session");
                    const refreshes = [];
                    for (const round of [1, 2]) {
                        await waitPastExpiry(tabs[0]);
                        const before = await app.counters();
                        const results = await Promise.all(tabs.map((tab) => call(tab, "GET", "/api/me")));
                        assert.deepEqual(results, [
                            { status: 200, json: { userId: "carol" } },
                            { status: 200, json: { userId: "carol" } },
                        ], `round ${round}`);
                        const n = (await app.counters()).refreshCalls - before.refreshCalls;
                        refreshes.push(n);
                        assert.ok(n >= 1 && n <= 2, `round ${round}: ${n} refresh calls`);
                        if (lock) assert.equal(n, 1, `round ${round}: the lock lets one tab refresh`);
                        // Both tabs stay signed in, and the next calls need no refresh.
                        const statuses = tabs.map((tab) => recordStatuses(tab, "/api/me"));
                        for (const tab of tabs) {
                            assert.equal(await sdk(tab, "doesSessionExist"), true);
                            assert.equal((await call(tab, "GET", "/api/me")).status, 200);
                        }
                        assert.deepEqual(statuses, [[200], [200]], `round ${round}: no 401 after the refresh`);
                    }
                    t.diagnostic(`${mode} mode, lock ${lock ? "on" : "off"}: refresh calls per round ${JSON.stringify(refreshes)}`);
                    for (const tab of tabs) assert.deepEqual(tab.errors, []);
                } finally {
                    await context.close();
                }
            });
        }

        // Issue 10 (refresh lineage v2, P1): two tabs without the cross-tab lock, each with two
        // requests in flight when the access token expires, for 20 rounds: every refresh race
        // ends with both tabs signed in — never a theft answer, never a 401 after the refresh.
        test("two tabs without the lock, 20 rounds of refresh races: never theft (issue 10)", { timeout: 240_000 }, async (t) => {
            const context = await browser.newContext();
            try {
                const tabs = [await openPage(context, app, mode, { lock: false }), await openPage(context, app, mode, { lock: false })];
                await signIn(tabs[0], "dave");
                assert.equal(await sdk(tabs[1], "getUserId"), "dave");
                const before = await app.counters();
                for (let round = 1; round <= 20; round++) {
                    await waitPastExpiry(tabs[0]);
                    const calls = tabs.flatMap((tab) => [call(tab, "GET", "/api/me"), call(tab, "GET", "/api/me")]);
                    const results = await Promise.all(calls);
                    for (const r of results) assert.deepEqual(r, { status: 200, json: { userId: "dave" } }, `round ${round}`);
                    for (const tab of tabs) assert.equal(await sdk(tab, "doesSessionExist"), true, `round ${round}: signed out`);
                }
                const refreshes = (await app.counters()).refreshCalls - before.refreshCalls;
                assert.ok(refreshes >= 20, `${refreshes} refresh calls in 20 rounds`);
                // And the next calls need no refresh.
                const statuses = tabs.map((tab) => recordStatuses(tab, "/api/me"));
                for (const tab of tabs) assert.equal((await call(tab, "GET", "/api/me")).status, 200);
                assert.deepEqual(statuses, [[200], [200]]);
                t.diagnostic(`${mode} mode, lock off: ${refreshes} refresh calls in 20 rounds, no theft`);
                for (const tab of tabs) assert.deepEqual(tab.errors, []);
            } finally {
                await context.close();
            }
        });
    });
}

/**
 * The attacker: a page on http://127.0.0.1:<port>, another site than http://localhost:<port>.
 * `GET /<attack>?target=<url>` serves a page that attacks `target` on load and then sets
 * `window.attackDone` (the form attack navigates away instead).
 */
async function startAttacker() {
    const pages = {
        form: `<form method="POST" action="TARGET"><input name="amount" value="100"></form>
               <script>document.forms[0].submit()</script>`,
        "no-cors": `<script>fetch("TARGET", {method: "POST", mode: "no-cors", credentials: "include"})
               .then(() => window.attackDone = "sent", (e) => window.attackDone = "error: " + e)</script>`,
        // Needs a CORS preflight (custom header): the real POST must never be sent (CSRF-04).
        preflighted: `<script>fetch("TARGET", {method: "POST", credentials: "include", headers: {rid: "anti-csrf"}})
               .then((r) => window.attackDone = "status " + r.status, (e) => window.attackDone = "blocked: " + e.name)</script>`,
        beacon: `<script>window.attackDone = "queued " + navigator.sendBeacon("TARGET", "amount=100")</script>`,
    };
    const server = createServer((req, res) => {
        const url = new URL(req.url, "http://127.0.0.1");
        const html = pages[url.pathname.slice(1)];
        const target = url.searchParams.get("target") ?? "";
        if (!html || !/^http:\/\/localhost:\d+\/[\w/]*$/.test(target)) return res.writeHead(404).end();
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html>${html.replace("TARGET", target)}`);
    });
    const port = await freePort();
    await new Promise((ok, fail) => server.once("error", fail).listen(port, "127.0.0.1", ok));
    const stop = () => new Promise((ok) => server.close(ok));
    servers.push({ stop });
    return { origin: `http://127.0.0.1:${port}`, stop };
}

/**
 * Runs one attack from a fresh attacker tab. Returns what reached the server: `status`, `body`
 * (`try refresh token` means the session cookie was attached, `unauthorised` that it was not;
 * opaque responses give none), `cookies` (names Chromium put in the request's Cookie header) and
 * `blocked` (cookies Chromium withheld, with its reasons). The cookie facts come from the DevTools
 * protocol's extra request info: Playwright's request headers omit the Cookie header of no-cors
 * requests. `reached: false` means the POST never went out.
 */
async function attack(context, attacker, kind, target) {
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const cdp = await context.newCDPSession(page);
    try {
        await cdp.send("Network.enable");
        const ids = new Set();
        const extra = new Map();
        cdp.on("Network.requestWillBeSent", (e) => {
            if (e.request.url === target && e.request.method === "POST") ids.add(e.requestId);
        });
        cdp.on("Network.requestWillBeSentExtraInfo", (e) => extra.set(e.requestId, e));
        const seen = page
            // A refused preflight fails the fetch at once; give its POST 2 s to (not) show up.
            .waitForResponse((r) => r.url() === target && r.request().method() === "POST", { timeout: kind === "preflighted" ? 2_000 : 5_000 })
            .catch(() => null);
        await page.goto(`${attacker.origin}/${kind}?target=${encodeURIComponent(target)}`);
        if (kind !== "form") await page.waitForFunction(() => window.attackDone);
        const outcome = kind === "form" ? "navigated" : await page.evaluate(() => window.attackDone);
        const response = await seen;
        if (!response) return { kind, outcome, reached: false };
        let info;
        for (let i = 0; i < 20 && !(info = [...ids].map((id) => extra.get(id)).find(Boolean)); i++) await sleep(50);
        assert.ok(info, `${kind}: no DevTools request info for ${target}`);
        const cookieHeader = Object.entries(info.headers).find(([k]) => k.toLowerCase() === "cookie")?.[1] ?? "";
        return {
            kind,
            outcome,
            reached: true,
            status: response.status(),
            body: await response.text().catch(() => null),
            cookies: cookieHeader.split(/;\s*/).filter(Boolean).map((c) => c.split("=")[0]),
            blocked: info.associatedCookies.filter((c) => c.blockedReasons.length).map((c) => `${c.cookie.name}: ${c.blockedReasons.join(",")}`),
        };
    } finally {
        await cdp.detach().catch(() => {});
        await page.close();
    }
}

/**
 * Browser set-ups for the CSRF tests: Chromium as it comes (third-party cookies blocked, so only
 * top-level navigations carry the victim's cookies cross-site) and a profile that allows them (so
 * every attack carries them and only the server's anti-CSRF check stands in the way).
 */
const BROWSERS = {
    "Chromium defaults": async () => {
        const context = await browser.newContext();
        return { context, close: () => context.close(), thirdPartyCookies: false };
    },
    "third-party cookies allowed": async () => ({ ...(await launchContextWithThirdPartyCookies()), thirdPartyCookies: true }),
};

for (const antiCsrf of ["custom-header", "token"]) {
    describe(`CSRF with SameSite=None; Secure cookies, anti-CSRF ${antiCsrf}`, () => {
        let app;
        let attacker;
        before(async () => {
            app = await startApp(["--same-site", "none", "--secure", "true", "--anti-csrf", antiCsrf]);
            attacker = await startAttacker();
        });

        async function victim(context) {
            const page = await openPage(context, app, "cookie");
            await signIn(page, "victim");
            const jar = byName(await cookiesOf(context));
            assert.ok(jar.sAccessToken, "Chromium stored the Secure cookie from http://localhost");
            assert.deepEqual([jar.sAccessToken.sameSite, jar.sAccessToken.secure], ["None", true]);
            if (antiCsrf === "token") assert.ok(jar.sAntiCsrf, "the SDK stored the anti-csrf token");
            return page;
        }

        for (const [setup, open] of Object.entries(BROWSERS)) {
            test(`${setup}: cross-site form, no-cors fetch, preflighted fetch and beacon cannot mutate (CSRF-01/03/04)`, { timeout: TEST_TIMEOUT }, async (t) => {
                const { context, close, thirdPartyCookies } = await open();
                try {
                    const page = await victim(context);
                    const target = `${app.origin}/api/mutate`;
                    const { mutations: m0 } = await app.counters();
                    const results = [];
                    for (const kind of ["form", "no-cors", "preflighted", "beacon"]) {
                        const r = await attack(context, attacker, kind, target);
                        results.push(r);
                        t.diagnostic(`${antiCsrf}, ${setup}: ${JSON.stringify(r)}`);
                        assert.equal((await app.counters()).mutations, m0, `${kind}: the counter must not move (${JSON.stringify(r)})`);
                        if (kind === "preflighted") {
                            assert.equal(r.reached, false, "the POST behind a refused preflight is never sent");
                            assert.match(r.outcome, /^blocked/);
                            continue;
                        }
                        // The form, the no-cors fetch and the beacon all reach the server (CSRF-01/03).
                        assert.equal(r.reached, true, `${kind} reached the server`);
                        assert.equal(r.status, 401, `${kind}: ${JSON.stringify(r)}`);
                        // A top-level form POST carries SameSite=None cookies; subresources only
                        // when third-party cookies are allowed.
                        const attached = r.cookies.includes("sAccessToken");
                        assert.equal(attached, kind === "form" || thirdPartyCookies, `${kind}: cookies attached? ${JSON.stringify(r)}`);
                        if (r.body) {
                            const expected = attached ? "try refresh token" : "unauthorised";
                            assert.deepEqual(JSON.parse(r.body), { message: expected });
                        }
                    }

                    // The victim is still signed in, and the same mutation through the SDK works:
                    // the assertions above can fail.
                    assert.equal(await sdk(page, "doesSessionExist"), true);
                    const legit = await call(page, "POST", "/api/mutate");
                    assert.deepEqual(legit, { status: 200, json: { mutations: m0 + 1 } });
                    assert.equal((await app.counters()).mutations, m0 + 1);
                    assert.deepEqual(page.errors, []);
                } finally {
                    await close();
                }
            });
        }

        test("cross-site forms to refresh, sign-out and login neither rotate, sign out nor sign in (CSRF-11/12)", { timeout: TEST_TIMEOUT }, async (t) => {
            const context = await browser.newContext();
            try {
                const page = await victim(context);
                const jarBefore = byName(await cookiesOf(context));
                // /login takes JSON only, so a form (urlencoded) is refused before any session is made.
                for (const [path, status] of [["/auth/session/refresh", 401], ["/auth/signout", 401], ["/login", 415]]) {
                    const r = await attack(context, attacker, "form", `${app.origin}${path}`);
                    t.diagnostic(`${antiCsrf} ${path}: ${JSON.stringify(r)}`);
                    assert.equal(r.status, status, `${path}: ${JSON.stringify(r)}`);
                    assert.ok(r.cookies.includes("sAccessToken"), "a top-level form POST carries SameSite=None cookies");
                    if (path.endsWith("refresh")) assert.ok(r.cookies.includes("sRefreshToken"), "and the refresh token");
                    const jar = byName(await cookiesOf(context));
                    for (const name of ["sAccessToken", "sRefreshToken"]) {
                        assert.equal(jar[name]?.value, jarBefore[name].value, `${path}: ${name} unchanged (not rotated, not cleared)`);
                    }
                }
                assert.equal(await sdk(page, "doesSessionExist"), true);
                const before = await app.counters();
                assert.deepEqual(await call(page, "GET", "/api/me"), { status: 200, json: { userId: "victim" } });
                assert.equal((await app.counters()).refreshCalls, before.refreshCalls, "the session was untouched");
                // The victim's own refresh still works with the (unconsumed) refresh token.
                assert.equal(await sdk(page, "attemptRefreshingSession"), true);
                assert.equal((await call(page, "POST", "/api/mutate")).status, 200);
                assert.deepEqual(page.errors, []);
            } finally {
                await context.close();
            }
        });
    });
}
