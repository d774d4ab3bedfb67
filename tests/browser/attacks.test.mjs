// Browser attack tests in headless Chromium against examples/src/bin/browser-app.rs: cross-site
// and same-site request forgery in every anti-CSRF mode (CSRF-01…05, 09, 11), duplicate session
// cookies (COOK-08) and cookie tossing from a sibling subdomain (COOK-09, COOK-10), catalogue
// /work/shared/spec/security-tests.md §4–5.
//
// Hosts (all mapped to 127.0.0.1 with --host-resolver-rules; plain http):
// - app.example.test:<app port>   the victim's site: page and API on one origin (browser-app);
// - sib.example.test:<atk port>   a sibling subdomain: another origin but the SAME site
//                                 (registrable domain example.test), so SameSite=Lax cookies go
//                                 along on its POSTs, and it may set cookies with
//                                 Domain=example.test (cookie tossing);
// - evil.test:<atk port>          another site: Lax cookies stay home on its POSTs and
//                                 subresources; SameSite=None cookies go along.
// The two attacker origins are one Node http server in this file (the Host header picks the role).
// Ports never matter for sites or cookies.
//
// Every attack is judged by what the server saw and did, never only by the (often opaque) response
// to the attacker: browser-app logs every request (GET /api/requests: status, cookie names,
// anti-CSRF headers), counts state changes per user (GET /api/counters) and lists live sessions
// (GET /api/sessions); the victim's cookie jar is compared before and after.
//
// Build first: `cargo build -p tessera-examples --bin browser-app`; BROWSER_APP_BIN overrides the
// binary (default ../../target/debug/browser-app relative to this folder).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { freePort, launchBrowser, launchContextWithThirdPartyCookies, startServer, supertokensWebsiteBundlePath } from "./harness.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const APP_BIN = resolve(here, process.env.BROWSER_APP_BIN ?? "../../target/debug/browser-app");
const TEST_TIMEOUT = 60_000;
const APP_HOST = "app.example.test";
const SIB_HOST = "sib.example.test";
const EVIL_HOST = "evil.test";
const RESOLVER = `--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP ${EVIL_HOST} 127.0.0.1`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const byName = (cookies) => Object.fromEntries(cookies.map((c) => [c.name, c]));

/**
 * The cookies `context` would send to `url`, Secure ones included: Playwright's
 * `context.cookies(url)` leaves Secure cookies out for http URLs, but Chromium sends them to the
 * origins it treats as secure (--unsafely-treat-insecure-origin-as-secure).
 */
async function cookiesFor(context, url) {
    const { hostname, pathname } = new URL(url);
    return (await context.cookies()).filter((c) => {
        const domainOk = c.domain.startsWith(".") ? hostname === c.domain.slice(1) || hostname.endsWith(c.domain) : hostname === c.domain;
        const pathOk = c.path === "/" || pathname === c.path || pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`);
        return domainOk && pathOk;
    });
}

let browser; // Chromium defaults (third-party cookies blocked) for the SameSite=Lax profiles
let attacker;
const servers = [];

before(async () => {
    if (!existsSync(APP_BIN)) {
        throw new Error(`${APP_BIN} not found: run \`cargo build -p tessera-examples --bin browser-app\` or set BROWSER_APP_BIN`);
    }
    browser = await launchBrowser({ args: [RESOLVER] });
    attacker = await startAttacker();
});

after(async () => {
    await browser?.close();
    for (const s of servers.reverse()) await s.stop();
});

/** browser-app on a free port, serving page and API as http://app.example.test:<port>. */
async function startApp(args = []) {
    const port = await freePort();
    const origin = `http://${APP_HOST}:${port}`;
    const server = await startServer({
        cmd: APP_BIN,
        args: ["--port", String(port), "--api-domain", origin, "--website-domain", origin, ...args],
        env: { ST_BUNDLE_PATH: supertokensWebsiteBundlePath() },
        port,
        readyPath: "/ping",
        timeoutMs: 30_000,
    });
    servers.push(server);
    const get = async (path) => {
        const r = await fetch(server.url + path, { signal: AbortSignal.timeout(5_000) });
        assert.equal(r.status, 200, `${path}: ${r.status}`);
        return r.json();
    };
    return {
        ...server,
        origin,
        counters: () => get("/api/counters"),
        /** Requests logged after `mark` (a value of `mark()`). */
        requests: async (mark) => (await get(`/api/requests?since=${mark}`)).requests,
        mark: async () => (await get("/api/requests?since=18446744073709551615")).next,
        handles: async (userId) => (await get(`/api/sessions?userId=${encodeURIComponent(userId)}`)).handles,
        /** Mutations that ran as `userId`. */
        mutationsOf: async (userId) => (await get("/api/counters")).mutationsBy[userId] ?? 0,
        /** Signs in from Node (no browser): the attacker's own session, as cookie values. */
        signInFromNode: async (userId) => {
            const r = await fetch(`${server.url}/login`, {
                method: "POST",
                headers: { "content-type": "application/json", "st-auth-mode": "cookie", rid: "session" },
                body: JSON.stringify({ userId }),
            });
            assert.equal(r.status, 200);
            const jar = {};
            for (const line of r.headers.getSetCookie()) {
                const [pair] = line.split(";");
                const i = pair.indexOf("=");
                jar[pair.slice(0, i)] = pair.slice(i + 1);
            }
            assert.ok(jar.sAccessToken && jar.sRefreshToken, `attacker sign-in: ${JSON.stringify(jar)}`);
            return jar;
        },
    };
}

const html = (s) => String(s).replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * The attacker: one Node server answering as http://evil.test:<port> and
 * http://sib.example.test:<port>. Pages (query `target` = absolute URL to attack):
 * - /form?enctype=&fields=[[name,value],…]  auto-submitted <form method=POST>
 * - /no-cors                                fetch(target, {method: POST, mode: no-cors, credentials: include})
 * - /beacon                                 navigator.sendBeacon(target, "amount=100")
 * - /simple-cors                            a CORS "simple" credentialed POST (text/plain body)
 * - /preflight?header=rid|anti-csrf         a credentialed POST with that header (needs a preflight)
 * - /toss?c=<Set-Cookie>&c=…                answers with those Set-Cookie headers
 * Script pages set `window.attackDone` when done.
 */
async function startAttacker() {
    const script = {
        "no-cors": `fetch(T, {method: "POST", mode: "no-cors", credentials: "include", body: "amount=100",
                       headers: {"content-type": "application/x-www-form-urlencoded"}})
                   .then(() => window.attackDone = "sent", (e) => window.attackDone = "error: " + e)`,
        beacon: `window.attackDone = "queued " + navigator.sendBeacon(T, "amount=100")`,
        "simple-cors": `fetch(T, {method: "POST", credentials: "include", body: '{"amount":100}', headers: {"content-type": "text/plain"}})
                   .then((r) => window.attackDone = "status " + r.status, (e) => window.attackDone = "blocked: " + e.name)`,
        preflight: `fetch(T, {method: "POST", credentials: "include", headers: {[H]: H === "rid" ? "session" : "x",
                       "content-type": "application/json"}, body: '{"amount":100}'})
                   .then((r) => window.attackDone = "status " + r.status, (e) => window.attackDone = "blocked: " + e.name)`,
    };
    const server = createServer((req, res) => {
        const url = new URL(req.url, "http://attacker");
        const kind = url.pathname.slice(1);
        const target = url.searchParams.get("target") ?? "";
        if (kind === "toss") {
            res.setHeader("set-cookie", url.searchParams.getAll("c"));
            return res.writeHead(200, { "content-type": "text/html" }).end("<script>window.attackDone = 'tossed'</script>");
        }
        if (!/^http:\/\/app\.example\.test:\d+\/[\w/-]*(\?a=\d+)?$/.test(target)) return res.writeHead(400).end("bad target");
        let body;
        if (kind === "form") {
            const enctype = url.searchParams.get("enctype") ?? "application/x-www-form-urlencoded";
            const fields = JSON.parse(url.searchParams.get("fields") ?? '[["amount","100"]]');
            const inputs = fields.map(([n, v]) => `<input type="hidden" name="${html(n)}" value="${html(v)}">`).join("");
            body = `<form method="POST" action="${html(target)}" enctype="${html(enctype)}">${inputs}</form><script>document.forms[0].submit()</script>`;
        } else if (script[kind]) {
            const header = url.searchParams.get("header") ?? "rid";
            body = `<script>const T = ${JSON.stringify(target)}, H = ${JSON.stringify(header)};\n${script[kind]}</script>`;
        } else {
            return res.writeHead(404).end();
        }
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html>${body}`);
    });
    const port = await freePort();
    await new Promise((ok, fail) => server.once("error", fail).listen(port, "127.0.0.1", ok));
    const stop = () => new Promise((ok) => server.close(ok));
    servers.push({ stop });
    return { evil: `http://${EVIL_HOST}:${port}`, sib: `http://${SIB_HOST}:${port}` };
}

/** The forms of CSRF-01/02: urlencoded, text/plain with a JSON-shaped body, multipart. */
const FORMS = {
    urlencoded: { enctype: "application/x-www-form-urlencoded", fields: [["amount", "100"]] },
    // Sends `{"amount":100,"pad":"="}`: JSON in a text/plain body.
    "text/plain": { enctype: "text/plain", fields: [['{"amount":100,"pad":"', '"}']] },
    multipart: { enctype: "multipart/form-data", fields: [["amount", "100"]] },
    // CSRF-12, login CSRF: the attacker's account in a form, as JSON in text/plain and urlencoded.
    "login-text/plain": { enctype: "text/plain", fields: [['{"userId":"mallory-12","pad":"', '"}']] },
    "login-urlencoded": { enctype: "application/x-www-form-urlencoded", fields: [["userId", "mallory-12"]] },
};
const MUTATION_FORMS = ["urlencoded", "text/plain", "multipart"];

let attackSeq = 0;

/**
 * One attack from a fresh tab of the victim's browser `context`, at `from` (an attacker origin),
 * against `path` on `app`. `kind`: "form:<FORMS key>", "no-cors", "beacon", "simple-cors",
 * "preflight:<header>". The target URL gets a unique `?a=<n>` so that attacks can run side by side
 * and each finds its own requests in the app's log. Returns `{label, outcome, logged, request}`:
 * `logged` is everything the app logged for this attack (preflights included), `request` the
 * non-OPTIONS request if one came.
 */
async function attack(context, app, from, kind, path) {
    const tag = `a=${++attackSeq}`;
    const target = `${app.origin}${path}?${tag}`;
    const [base, arg] = kind.split(":");
    const q = new URLSearchParams({ target });
    if (base === "form") {
        q.set("enctype", FORMS[arg].enctype);
        q.set("fields", JSON.stringify(FORMS[arg].fields));
    }
    if (base === "preflight") q.set("header", arg);
    const label = `${kind} from ${new URL(from).hostname} to ${path}`;
    const mark = await app.mark();
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    try {
        let outcome = "navigated";
        if (base === "form") {
            await Promise.all([page.waitForURL((u) => u.origin === app.origin), page.goto(`${from}/${base}?${q}`)]);
        } else {
            await page.goto(`${from}/${base}?${q}`);
            await page.waitForFunction(() => window.attackDone);
            outcome = await page.evaluate(() => window.attackDone);
        }
        // The log is the ground truth: wait for the request, or (preflight) make sure none follows.
        let logged = [];
        const deadline = Date.now() + (base === "preflight" ? 500 : 10_000);
        for (;;) {
            logged = (await app.requests(mark)).filter((e) => e.path === path && e.query === tag);
            if (base !== "preflight" && logged.some((e) => e.method !== "OPTIONS")) break;
            if (Date.now() > deadline) break;
            await sleep(50);
        }
        const posts = logged.filter((e) => e.method !== "OPTIONS");
        assert.ok(posts.length <= 1, `${label}: ${JSON.stringify(logged)}`);
        return { label, kind, path, outcome, logged, request: posts[0] };
    } finally {
        await page.close();
    }
}

/** `attack` for each `[kind, path]` of `list`, side by side. */
const attackAll = (context, app, from, list) => Promise.all(list.map(([kind, path]) => attack(context, app, from, kind, path)));

/** A page of `app` with the SDK initialised in `tokenTransferMethod`; page errors in `page.errors`. */
async function openPage(context, app, tokenTransferMethod = "cookie", init = true) {
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.errors = [];
    page.on("pageerror", (e) => page.errors.push(e.message));
    await page.goto(`${app.origin}/index.html`);
    if (init) {
        await page.evaluate(
            ({ apiDomain, tokenTransferMethod }) => supertokens.init({ apiDomain, apiBasePath: "/auth", tokenTransferMethod }),
            { apiDomain: app.origin, tokenTransferMethod },
        );
    }
    return page;
}

/** `fetch(path, init)` in the page (through the SDK if it was initialised): {status, json}. */
function call(page, method, path, { body, headers = {} } = {}) {
    return page.evaluate(
        async ({ method, path, body, headers }) => {
            const init = { method, headers: { ...headers }, credentials: "include" };
            if (body !== undefined) {
                init.headers["content-type"] = "application/json";
                init.body = JSON.stringify(body);
            }
            let response;
            try {
                response = await fetch(new URL(path, location.origin).href, init);
            } catch (e) {
                return { status: 0, json: { error: String(e) } };
            }
            const text = await response.text();
            let json = null;
            try {
                json = JSON.parse(text);
            } catch {}
            return { status: response.status, json };
        },
        { method, path, body, headers },
    );
}

const sdk = (page, fn) => page.evaluate((fn) => supertokens[fn](), fn);

/** Signs `userId` in through the page (SDK), returns {page, userId, handles, jar}. */
async function victim(context, app, userId, mode = "cookie") {
    const page = await openPage(context, app, mode);
    const r = await call(page, "POST", "/login", { body: { userId } });
    assert.equal(r.status, 200, `login: ${JSON.stringify(r)}`);
    const jar = byName(await cookiesFor(context, `${app.origin}/auth/session/refresh`));
    if (mode === "cookie") assert.ok(jar.sAccessToken && jar.sRefreshToken, `session cookies: ${Object.keys(jar)}`);
    const handles = await app.handles(userId);
    assert.equal(handles.length, 1);
    return { page, userId, handles, jar };
}

/** The victim's session is untouched: not revoked, cookies neither cleared nor rotated. */
async function assertIntact(context, app, v, label) {
    assert.deepEqual(await app.handles(v.userId), v.handles, `${label}: session revoked`);
    const jar = byName(await cookiesFor(context, `${app.origin}/auth/session/refresh`));
    for (const name of ["sAccessToken", "sRefreshToken"]) {
        assert.equal(jar[name]?.value, v.jar[name].value, `${label}: ${name} ${jar[name] ? "rotated" : "cleared"}`);
    }
}

/** The victim can still use the session through the SDK (so the assertions above can fail). */
async function assertStillWorks(app, v) {
    const before = await app.mutationsOf(v.userId);
    assert.deepEqual(await call(v.page, "GET", "/api/me"), { status: 200, json: { userId: v.userId } });
    const r = await call(v.page, "POST", "/api/mutate");
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(await app.mutationsOf(v.userId), before + 1, "the legitimate mutation ran");
    assert.deepEqual(v.page.errors, []);
}

/**
 * What the server must answer a forged request that carried (or not) the victim's cookies, for a
 * route that changes state when it accepts the session.
 */
function expectedRejection(profile, cookiesAttached, { jsonRoute = false } = {}) {
    if (!cookiesAttached) return { status: 401, message: "unauthorised" };
    if (profile.antiCsrf === "none") return jsonRoute ? { status: 415 } : { status: 200 };
    return { status: 401, message: "try refresh token" };
}

/**
 * Deployment profiles. Page and API share the origin http://app.example.test:<port>.
 * - SameSite=Lax: Chromium as it comes. Cross-site POSTs and subresources carry no cookie; the
 *   sibling's do (same site).
 * - SameSite=None; Secure: the app origin is marked secure (--unsafely-treat-insecure-origin-as-
 *   secure, so Chromium keeps Secure cookies over http) and third-party cookies are allowed, so
 *   every forged request from evil.test carries the cookies and only the server's anti-CSRF check
 *   stands in the way.
 */
const PROFILES = [
    { name: "SameSite=Lax, anti-CSRF NONE", sameSite: "lax", antiCsrf: "none" },
    { name: "SameSite=Lax, VIA_CUSTOM_HEADER", sameSite: "lax", antiCsrf: "custom-header" },
    { name: "SameSite=Lax, VIA_TOKEN", sameSite: "lax", antiCsrf: "token" },
    { name: "SameSite=None, VIA_CUSTOM_HEADER", sameSite: "none", antiCsrf: "custom-header" },
    { name: "SameSite=None, VIA_TOKEN", sameSite: "none", antiCsrf: "token" },
];

for (const profile of PROFILES) {
    describe(`CSRF, ${profile.name}`, () => {
        let app;
        let shared; // SameSite=None: one Chromium with third-party cookies allowed, for the tests in turn
        const launchThirdParty = () => launchContextWithThirdPartyCookies({ args: [RESOLVER, `--unsafely-treat-insecure-origin-as-secure=${app.origin}`] });
        before(async () => {
            const flags = ["--anti-csrf", profile.antiCsrf, "--same-site", profile.sameSite];
            if (profile.sameSite === "none") flags.push("--secure", "true");
            app = await startApp(flags);
            if (profile.sameSite === "none") shared = await launchThirdParty();
        });
        after(async () => {
            await shared?.close();
        });

        /**
         * An empty cookie jar for one test: {context, close()}. `separate` asks for one that does
         * not share the jar with the other calls (a second user at the same time).
         */
        async function open({ separate = false } = {}) {
            if (profile.sameSite === "lax") {
                const context = await browser.newContext();
                return { context, close: () => context.close() };
            }
            if (separate) return launchThirdParty();
            await shared.context.clearCookies();
            return {
                context: shared.context,
                close: async () => {
                    for (const page of shared.context.pages()) await page.close();
                },
            };
        }

        /** Whether Chromium attaches the victim's cookies to a forged POST from `from`. */
        const attaches = (from) => from === attacker.sib || profile.sameSite === "none";

        for (const [role, ids] of [
            ["evil", "CSRF-01/02/03/04/12"],
            ["sib", "CSRF-05 (with CSRF-01/02/03/04/12 forms)"],
        ]) {
            const site = role === "evil" ? "evil.test, another site" : "sib.example.test, same site";
            test(`${ids}: forged POSTs from ${site} to protected routes and /login`, { timeout: TEST_TIMEOUT }, async (t) => {
                const { context, close } = await open();
                try {
                    const v = await victim(context, app, `victim-${role}`);
                    if (profile.sameSite === "none") {
                        assert.deepEqual([v.jar.sAccessToken.sameSite, v.jar.sAccessToken.secure], ["None", true]);
                    } else {
                        assert.deepEqual([v.jar.sAccessToken.sameSite, v.jar.sAccessToken.secure], ["Lax", false]);
                    }
                    if (profile.antiCsrf === "token") assert.ok(byName(await context.cookies()).sAntiCsrf, "the SDK stored the anti-csrf token");
                    const from = attacker[role];
                    const cookies = attaches(from);
                    let expectedMutations = 0;
                    const attacks = [
                        ...MUTATION_FORMS.map((k) => [`form:${k}`, "/api/mutate"]),
                        ["no-cors", "/api/mutate"],
                        ["beacon", "/api/mutate"],
                        ...(role === "sib" ? [["simple-cors", "/api/mutate"]] : []),
                        ...MUTATION_FORMS.map((k) => [`form:${k}`, "/api/mutate-json"]),
                        // CSRF-12: /login takes JSON only.
                        ["form:login-text/plain", "/login"],
                        ["form:login-urlencoded", "/login"],
                        // CSRF-04: a header that forces a preflight.
                        ["preflight:rid", "/api/mutate"],
                        ["preflight:anti-csrf", "/api/mutate"],
                    ];
                    const results = await attackAll(context, app, from, attacks);
                    for (const r of results.filter((r) => r.path === "/login")) {
                        t.diagnostic(`${r.label}: ${JSON.stringify(r.request)}`);
                        assert.equal(r.request.status, 415, `${r.label}: ${JSON.stringify(r.request)}`);
                    }
                    assert.deepEqual(await app.handles("mallory-12"), [], "CSRF-12: no session was created for the attacker's account");
                    for (const r of results.filter((r) => !r.kind.startsWith("preflight") && r.path !== "/login")) {
                        t.diagnostic(`${r.label}: ${r.outcome}; ${JSON.stringify(r.request)}`);
                        assert.ok(r.request, `${r.label} reached the server`);
                        assert.equal(r.request.cookies.includes("sAccessToken"), cookies, `${r.label}: cookies attached? ${JSON.stringify(r.request)}`);
                        const want = expectedRejection(profile, cookies, { jsonRoute: r.path === "/api/mutate-json" });
                        assert.equal(r.request.status, want.status, `${r.label}: ${JSON.stringify(r.request)}`);
                        if (want.message) assert.equal(r.request.message, want.message, r.label);
                        if (want.status === 200) expectedMutations += 1;
                    }
                    assert.equal(await app.mutationsOf(v.userId), expectedMutations, "state changes as the victim: exactly the accepted requests");
                    // CSRF-04: the CORS allowlist holds only the app's origin, so the preflight for
                    // `rid` / `anti-csrf` fails and the POST is never sent.
                    for (const r of results.filter((r) => r.kind.startsWith("preflight"))) {
                        t.diagnostic(`${r.label}: ${r.outcome}; ${JSON.stringify(r.logged)}`);
                        assert.equal(r.request, undefined, `${r.label}: the POST must never be sent`);
                        assert.match(r.outcome, /^blocked/);
                        assert.equal(r.logged.length, 1, `${r.label}: exactly the preflight: ${JSON.stringify(r.logged)}`);
                        assert.equal(r.logged[0].method, "OPTIONS");
                        // tower-http's exact allowlist answers with the app's own origin (or none),
                        // never the attacker's, so Chromium fails the preflight.
                        assert.ok([null, app.origin].includes(r.logged[0].acao), `${r.label}: Access-Control-Allow-Origin ${r.logged[0].acao}`);
                        assert.notEqual(r.logged[0].acao, from);
                    }
                    // Only anti-CSRF NONE, and only from the sibling, lets anything through: the
                    // three forms, the no-cors fetch, the beacon and the simple CORS POST to
                    // /api/mutate (the JSON route still refuses those bodies with 415).
                    assert.equal(expectedMutations, profile.antiCsrf === "none" && role === "sib" ? 6 : 0);
                    if (expectedMutations > 0) {
                        // Documented residual risk: with anti-CSRF NONE, SameSite=Lax is all that
                        // stands between a sibling subdomain and the API (SameSite is per site).
                        t.diagnostic(`anti-CSRF NONE: ${expectedMutations} forged POSTs from the sibling ran as the victim`);
                    }
                    await assertIntact(context, app, v, site);
                    await assertStillWorks(app, v);
                } finally {
                    await close();
                }
            });
        }

        const title11 =
            profile.antiCsrf === "none"
                ? "CSRF-11 with CSRF-05: a sibling's form POSTs to /auth/session/refresh and /auth/signout rotate and revoke (residual risk of anti-CSRF NONE, documented)"
                : "CSRF-11: forged POSTs to /auth/session/refresh and /auth/signout neither rotate, revoke nor clear";
        test(title11, { timeout: TEST_TIMEOUT }, async (t) => {
            const { context, close } = await open();
            try {
                const v = await victim(context, app, "victim-11");
                const before = await app.counters();
                const roles = profile.sameSite === "lax" && profile.antiCsrf === "none" ? [] : ["sib"];
                // Lax cookies stay home on POSTs from evil.test: that case is the next test.
                if (profile.sameSite === "none") roles.unshift("evil");
                for (const role of roles) {
                    const list = ["/auth/session/refresh", "/auth/signout"].flatMap((path) => MUTATION_FORMS.map((enc) => [`form:${enc}`, path]));
                    for (const r of await attackAll(context, app, attacker[role], list)) {
                        t.diagnostic(`${r.label}: ${JSON.stringify(r.request)}`);
                        assert.ok(r.request.cookies.includes("sAccessToken"), `${r.label}: cookies attached`);
                        const refresh = r.path.endsWith("refresh");
                        if (refresh) assert.ok(r.request.cookies.includes("sRefreshToken"), `${r.label}: refresh token attached`);
                        // No rid / no anti-csrf: refresh answers 401 unauthorised, sign-out 401
                        // try-refresh; neither clears (RT-13).
                        assert.deepEqual([r.request.status, r.request.message], [401, refresh ? "unauthorised" : "try refresh token"], r.label);
                    }
                    await assertIntact(context, app, v, `forged forms from ${role}`);
                }
                assert.equal((await app.counters()).refreshCalls - before.refreshCalls, roles.length * 3, "every forged refresh reached the server");
                if (roles.length) await assertStillWorks(app, v);
                else {
                    // anti-CSRF NONE with Lax cookies: the sibling *can* refresh and sign out.
                    // Documented residual risk (CSRF-05), asserted precisely.
                    let r = await attack(context, app, attacker.sib, "form:urlencoded", "/auth/session/refresh");
                    assert.equal(r.request.status, 200, `sibling refresh: ${JSON.stringify(r.request)}`);
                    const jar = byName(await cookiesFor(context, `${app.origin}/auth/session/refresh`));
                    assert.notEqual(jar.sRefreshToken.value, v.jar.sRefreshToken.value, "rotated (the new tokens landed in the victim's jar)");
                    assert.deepEqual(await app.handles(v.userId), v.handles, "same session");
                    assert.equal((await call(v.page, "GET", "/api/me")).status, 200, "the victim is still signed in");
                    r = await attack(context, app, attacker.sib, "form:text/plain", "/auth/signout");
                    assert.equal(r.request.status, 200, `sibling sign-out: ${JSON.stringify(r.request)}`);
                    assert.deepEqual(await app.handles(v.userId), [], "the sibling signed the victim out (session revoked)");
                    t.diagnostic("anti-CSRF NONE: a same-site sibling can rotate and revoke the victim's session with a form POST");
                }
            } finally {
                await close();
            }
        });

        if (profile.sameSite === "lax") {
            // Found by this test: a refresh request that carried no token at all was answered with
            // clearing Set-Cookies. A cross-site form POST carries no Lax cookie, got those
            // Set-Cookies back as a top-level navigation response, and Chromium applied them: the
            // victim was signed out. Fixed in routes.rs (`from_our_frontend`): clearing needs
            // `rid` (every SDK refresh sends it; a cross-origin page cannot add it without passing
            // CORS) or one of the session cookies.
            test("CSRF-11: a cross-site form POST to /auth/session/refresh does not sign the victim out (Lax cookies are not sent)", { timeout: TEST_TIMEOUT }, async (t) => {
                const { context, close } = await open();
                try {
                    const v = await victim(context, app, "victim-11-lax");
                    for (const path of ["/auth/signout", "/auth/session/refresh"]) {
                        const r = await attack(context, app, attacker.evil, "form:urlencoded", path);
                        t.diagnostic(`${r.label}: ${JSON.stringify(r.request)}`);
                        assert.deepEqual(r.request.cookies.filter((c) => c.startsWith("sAccess") || c.startsWith("sRefresh")), [], "Lax cookies stay home");
                        assert.deepEqual([r.request.status, r.request.message], [401, "unauthorised"], r.label);
                        await assertIntact(context, app, v, r.label);
                    }
                    await assertStillWorks(app, v);
                } finally {
                    await close();
                }
            });
        }

        if (profile.antiCsrf === "token") {
            test("CSRF-09: VIA_TOKEN: no, wrong or another session's anti-csrf header is refused, the right one works, GET and header mode are exempt", { timeout: TEST_TIMEOUT }, async () => {
                const { context, close } = await open();
                const { context: other, close: closeOther } = await open({ separate: true });
                try {
                    const v = await victim(context, app, "victim-09");
                    const o = await victim(other, app, "other-09");
                    const token = (await context.cookies()).find((c) => c.name === "sAntiCsrf")?.value;
                    const otherToken = (await other.cookies()).find((c) => c.name === "sAntiCsrf")?.value;
                    assert.ok(token && otherToken && token !== otherToken, "two sessions, two anti-CSRF tokens");
                    // A page of the app without the SDK: plain fetch, headers exactly as given.
                    const raw = await openPage(context, app, "cookie", false);
                    const cases = [
                        ["no header", {}, 401],
                        ["rid instead of anti-csrf", { rid: "session" }, 401],
                        ["wrong value", { "anti-csrf": "x".repeat(token.length) }, 401],
                        ["another session's value", { "anti-csrf": otherToken }, 401],
                        ["the session's value", { "anti-csrf": token }, 200],
                    ];
                    let ran = 0;
                    for (const [label, headers, status] of cases) {
                        const r = await call(raw, "POST", "/api/mutate", { headers });
                        assert.equal(r.status, status, `${label}: ${JSON.stringify(r)}`);
                        if (status === 401) assert.deepEqual(r.json, { message: "try refresh token" }, label);
                        if (status === 200) ran += 1;
                        assert.equal(await app.mutationsOf(v.userId), ran, `${label}: state changes`);
                    }
                    assert.deepEqual(await call(raw, "GET", "/api/me"), { status: 200, json: { userId: v.userId } }, "GET needs no anti-csrf header");
                    // The refresh route: a wrong or missing token is refused and consumes nothing.
                    for (const headers of [{ rid: "session" }, { rid: "session", "anti-csrf": otherToken }]) {
                        const r = await call(raw, "POST", "/auth/session/refresh", { headers });
                        assert.deepEqual([r.status, r.json], [401, { message: "unauthorised" }], JSON.stringify(headers));
                        await assertIntact(context, app, v, `refresh with ${JSON.stringify(headers)}`);
                    }
                    assert.equal(await app.mutationsOf(o.userId), 0);
                    await assertStillWorks(app, v);

                    // Header mode (Authorization: Bearer) is exempt: no anti-csrf token exists there.
                    const { context: h, close: closeH } = await open({ separate: true });
                    try {
                        const hv = await victim(h, app, "header-09", "header");
                        const at = (await h.cookies()).find((c) => c.name === "st-access-token")?.value;
                        assert.ok(at, "header mode keeps the access token in a frontend cookie");
                        const hraw = await openPage(h, app, "header", false);
                        const r = await call(hraw, "POST", "/api/mutate", { headers: { authorization: `Bearer ${at}` } });
                        assert.equal(r.status, 200, JSON.stringify(r));
                        assert.equal(await app.mutationsOf(hv.userId), 1);
                    } finally {
                        await closeH();
                    }
                } finally {
                    await closeOther();
                    await close();
                }
            });
        }
    });
}

// --- Duplicate and tossed cookies ------------------------------------------------------------

describe("duplicate and tossed session cookies (cookie mode, SameSite=Lax, anti-CSRF NONE)", () => {
    let app; // no older_cookie_domain
    let appOlder; // --older-cookie-domain example.test
    before(async () => {
        const flags = ["--same-site", "lax", "--anti-csrf", "none"];
        // One after the other: if the second fails to start, the first is already in `servers`
        // and gets stopped (a child still starting when the hook fails would keep Node alive).
        app = await startApp(flags);
        appOlder = await startApp([...flags, "--older-cookie-domain", "example.test"]);
    });

    /** Cookie-jar view of the session cookies the refresh route would get, as "name@domain path". */
    const sessionCookies = async (context, app) =>
        (await cookiesFor(context, `${app.origin}/auth/session/refresh`))
            .filter((c) => c.name === "sAccessToken" || c.name === "sRefreshToken")
            .map((c) => `${c.name}@${c.domain}${c.path}`)
            .sort();

    for (const older of [false, true]) {
        test(`COOK-08: a second sAccessToken (other Domain or Path) gets 401 try-refresh at verify; refresh ${older ? "with" : "without"} older_cookie_domain refuses and clears`, { timeout: TEST_TIMEOUT }, async (t) => {
            const a = older ? appOlder : app;
            const context = await browser.newContext();
            try {
                const v = await victim(context, a, older ? "dup-older" : "dup");
                const raw = await openPage(context, a, "cookie", false);
                const port = new URL(a.origin).port;
                // Both copies hold the victim's own valid token: a server that picked either
                // one would answer 200.
                const copies = [
                    { domain: ".example.test", path: "/" }, // another Domain
                    { domain: APP_HOST, path: "/api" }, // another Path (host-only, longer: sent first)
                ];
                for (const copy of copies) {
                    await context.addCookies([{ name: "sAccessToken", value: v.jar.sAccessToken.value, ...copy, httpOnly: true, sameSite: "Lax" }]);
                    const mark = await a.mark();
                    assert.deepEqual(await call(raw, "GET", "/api/me"), { status: 401, json: { message: "try refresh token" } }, JSON.stringify(copy));
                    const [seen] = (await a.requests(mark)).filter((e) => e.path === "/api/me");
                    assert.deepEqual(seen.cookies.filter((c) => c === "sAccessToken"), ["sAccessToken", "sAccessToken"], "Chromium sent both");
                    assert.equal((await call(raw, "POST", "/api/mutate")).status, 401);
                    await context.clearCookies({ name: "sAccessToken", domain: copy.domain, path: copy.path });
                    assert.equal((await call(raw, "GET", "/api/me")).status, 200, `${JSON.stringify(copy)}: one copy left, verify works again`);
                }
                assert.equal(await a.mutationsOf(v.userId), 0, "no mutation ran on a duplicated cookie");

                // Refresh with a duplicate: never a silent pick.
                await context.addCookies([{ name: "sAccessToken", value: "planted", ...copies[0], httpOnly: true, sameSite: "Lax" }]);
                const before = await a.counters();
                const r = await call(raw, "POST", "/auth/session/refresh", { headers: { rid: "session" } });
                assert.deepEqual(r, { status: 401, json: { message: "unauthorised" } });
                assert.deepEqual(await a.handles(v.userId), v.handles, "the refresh token was not consumed and the session lives");
                const left = await sessionCookies(context, a);
                t.diagnostic(`after the refused refresh (older_cookie_domain ${older}): ${JSON.stringify(left)}`);
                // tessera-axum clears the host-only cookies in both cases, and the
                // example.test copies too when older_cookie_domain says so. (The catalogue asks
                // for clearing only the older copies so that the client can retry; tessera signs
                // the victim out instead, see README: "Duplicate session cookies are refused with
                // 401 and a full clear".)
                assert.deepEqual(left, older ? [] : ["sAccessToken@.example.test/"]);
                assert.equal((await a.counters()).refreshCalls - before.refreshCalls, 1);

                // Through the SDK: one 401, one refused refresh, signed out; never a 200.
                await context.clearCookies();
                const v2 = await victim(context, a, older ? "dup-older-2" : "dup-2");
                await context.addCookies([{ name: "sAccessToken", value: "planted", ...copies[0], httpOnly: true, sameSite: "Lax" }]);
                const mark = await a.mark();
                assert.equal((await call(v2.page, "GET", "/api/me")).status, 401);
                const seen = (await a.requests(mark)).map((e) => `${e.method} ${e.path} ${e.status}`);
                assert.deepEqual(seen, ["GET /api/me 401", "POST /auth/session/refresh 401"]);
                assert.equal(await sdk(v2.page, "doesSessionExist"), false);
                assert.deepEqual(await sessionCookies(context, a), older ? [] : ["sAccessToken@.example.test/"]);
            } finally {
                await context.close();
            }
        });
    }

    test("COOK-08: header mode is unaffected by duplicate sAccessToken cookies", { timeout: TEST_TIMEOUT }, async () => {
        const context = await browser.newContext();
        try {
            const v = await victim(context, app, "dup-header", "header");
            await context.addCookies([
                { name: "sAccessToken", value: "junk-1", domain: ".example.test", path: "/", sameSite: "Lax" },
                { name: "sAccessToken", value: "junk-2", domain: APP_HOST, path: "/api", sameSite: "Lax" },
            ]);
            assert.deepEqual(await call(v.page, "GET", "/api/me"), { status: 200, json: { userId: v.userId } });
            assert.equal((await call(v.page, "POST", "/api/mutate")).status, 200);
            assert.equal(await app.mutationsOf(v.userId), 1);
        } finally {
            await context.close();
        }
    });

    /** Tosses cookies from the sibling (Set-Cookie: …; Domain=example.test) in `context`. */
    async function toss(context, from, setCookies) {
        const page = await context.newPage();
        try {
            const q = new URLSearchParams();
            for (const c of setCookies) q.append("c", c);
            await page.goto(`${from}/toss?${q}`);
            await page.waitForFunction(() => window.attackDone);
        } finally {
            await page.close();
        }
    }

    test("COOK-09: cookie tossing from the sibling: duplicates lock the victim out, never a silent pick; a tossed Path=/ access token outlives the forced sign-out and then answers as the attacker (residual, documented)", { timeout: TEST_TIMEOUT }, async (t) => {
        const context = await browser.newContext();
        try {
            const mallory = await app.signInFromNode("mallory-09");
            // evil.test cannot set cookies for example.test at all.
            await toss(context, attacker.evil, [`sAccessToken=${mallory.sAccessToken}; Domain=example.test; Path=/api`]);
            assert.deepEqual(await cookiesFor(context, app.origin), [], "Chromium refused Domain=example.test from evil.test");

            const v = await victim(context, app, "victim-09t");
            // (a) A tossed access token on a longer path (/api): sent first on /api/*, never on
            // the refresh route. Verify sees two and answers try-refresh; the refresh (one AT,
            // one RT) succeeds, the retry fails again: the SDK gives up after a bounded number of
            // refreshes. The victim is locked out while the cookie lives, but never acts as mallory.
            await toss(context, attacker.sib, [`sAccessToken=${mallory.sAccessToken}; Domain=example.test; Path=/api; HttpOnly; SameSite=Lax`]);
            const tossed = (await cookiesFor(context, `${app.origin}/api/me`)).filter((c) => c.name === "sAccessToken");
            assert.deepEqual(tossed.map((c) => `${c.domain}${c.path}`).sort(), [".example.test/api", `${APP_HOST}/`], "the sibling planted a copy");
            let mark = await app.mark();
            const me = await call(v.page, "GET", "/api/me");
            const seen = await app.requests(mark);
            t.diagnostic(`(a) ${JSON.stringify(me)} after ${seen.map((e) => `${e.method} ${e.path} ${e.status}`).join(", ")}`);
            // supertokens-website gives up after maxRetryAttemptsForSessionRefresh (10) and throws.
            assert.equal(me.status, 0, JSON.stringify(me));
            assert.match(me.json.error, /maximum session refresh limit has been reached/);
            assert.ok(seen.filter((e) => e.path === "/api/me").every((e) => e.status === 401 && e.message === "try refresh token"), "every /api/me was refused");
            const refreshes = seen.filter((e) => e.path === "/auth/session/refresh").length;
            assert.equal(refreshes, 10, "bounded refresh attempts (each one succeeds: one AT and one RT reach the refresh route)");
            assert.deepEqual(await app.handles(v.userId), v.handles, "the victim's session lives on");
            assert.equal((await call(v.page, "POST", "/api/mutate")).status, 0, "the SDK gives up on the mutation too");
            assert.equal(await app.mutationsOf("mallory-09"), 0, "nothing ran as mallory");
            assert.equal(await app.mutationsOf(v.userId), 0);
            await context.clearCookies({ name: "sAccessToken", domain: ".example.test" });
            assert.deepEqual(await call(v.page, "GET", "/api/me"), { status: 200, json: { userId: v.userId } }, "once the tossed copy is gone, the victim's own session works");

            // (b) A tossed access token on Path=/ also reaches the refresh route: the refresh
            // sees two access tokens, refuses and clears the victim's (host-only) cookies; the
            // tossed one is beyond the server's reach (another Domain) and stays.
            await toss(context, attacker.sib, [`sAccessToken=${mallory.sAccessToken}; Domain=example.test; Path=/; HttpOnly; SameSite=Lax`]);
            mark = await app.mark();
            assert.equal((await call(v.page, "GET", "/api/me")).status, 401);
            t.diagnostic(`(b) ${(await app.requests(mark)).map((e) => `${e.method} ${e.path} ${e.status}`).join(", ")}`);
            assert.equal(await sdk(v.page, "doesSessionExist"), false, "the SDK reports the victim signed out");
            assert.deepEqual(await sessionCookies(context, app), ["sAccessToken@.example.test/"], "only mallory's tossed access token is left");
            // RESIDUAL RISK, asserted as it is: the victim's page now sends only mallory's
            // access token, and the API accepts it. Requests made while the SDK says "signed out"
            // run as mallory until that token expires (no refresh: the SDK has no session).
            const asMallory = await call(v.page, "GET", "/api/me");
            t.diagnostic(`(b) the signed-out victim's page calls /api/me: ${JSON.stringify(asMallory)}`);
            assert.deepEqual(asMallory, { status: 200, json: { userId: "mallory-09" } });
            // Signing in again does not help while the tossed cookie lives: the next request sees
            // two access tokens again.
            await call(v.page, "POST", "/login", { body: { userId: v.userId } });
            assert.equal((await call(v.page, "GET", "/api/me")).status, 401);
            assert.equal(await app.mutationsOf(v.userId), 0);
        } finally {
            await context.close();
        }
    });

    test("COOK-10: a refresh token tossed into a signed-out victim (residual login CSRF, documented)", { timeout: TEST_TIMEOUT }, async (t) => {
        // (a) A victim that signed out through the SDK: the SDK knows there is no session
        // (st-last-access-token-update without front token) and never calls refresh by itself.
        const signedOut = await browser.newContext();
        const fresh = await browser.newContext();
        try {
            const v = await victim(signedOut, app, "victim-10");
            await sdk(v.page, "signOut");
            assert.equal(await sdk(v.page, "doesSessionExist"), false);
            const mallory = await app.signInFromNode("mallory-10a");
            await toss(signedOut, attacker.sib, [`sRefreshToken=${mallory.sRefreshToken}; Domain=example.test; Path=/auth/session/refresh; HttpOnly; SameSite=Lax`]);
            let mark = await app.mark();
            assert.equal(await sdk(v.page, "doesSessionExist"), false);
            assert.equal((await call(v.page, "GET", "/api/me")).status, 401);
            assert.deepEqual((await app.requests(mark)).map((e) => `${e.method} ${e.path}`), ["GET /api/me"], "no refresh attempted");
            // Reloading the page does not change that.
            const reloaded = await openPage(signedOut, app);
            assert.equal(await sdk(reloaded, "doesSessionExist"), false);

            // (b) A browser that never had a session here (fresh profile, or cleared site data):
            // the SDK's local state is "may exist", so doesSessionExist() tries a refresh, which
            // carries mallory's tossed refresh token and succeeds. RESIDUAL RISK, asserted as it
            // is: the victim is signed in as mallory. SuperTokens has no binding cookie that a
            // sibling could not forge (the catalogue's recommended __Host- binding needs HTTPS and
            // a server change), so this is documented, not fixed.
            const m2 = await app.signInFromNode("mallory-10b");
            await toss(fresh, attacker.sib, [`sRefreshToken=${m2.sRefreshToken}; Domain=example.test; Path=/auth/session/refresh; HttpOnly; SameSite=Lax`]);
            const page = await openPage(fresh, app);
            mark = await app.mark();
            const exists = await sdk(page, "doesSessionExist");
            const seen = (await app.requests(mark)).map((e) => `${e.method} ${e.path} ${e.status}`);
            t.diagnostic(`(b) doesSessionExist() = ${exists} after ${seen.join(", ")}`);
            assert.deepEqual(seen, ["POST /auth/session/refresh 200"]);
            assert.equal(exists, true);
            assert.equal(await sdk(page, "getUserId"), "mallory-10b", "the victim's browser is now signed in as mallory");
            assert.deepEqual(await call(page, "GET", "/api/me"), { status: 200, json: { userId: "mallory-10b" } });
        } finally {
            await signedOut.close();
            await fresh.close();
        }
    });
});
