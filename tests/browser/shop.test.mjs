// Anonymous sessions in headless Chromium: the stock supertokens-website SDK on the `shop` demo
// page (examples/src/bin/shop.rs, examples/static/shop.html). Requirement ids are those of
// /work/shared/spec/anonymous-sessions.md (A*, B*) and security-tests.md §6 (ANON-*).
//
// Build the app first: `cargo build -p tessera-examples --bin shop` (the binary path comes from
// SHOP_BIN, default ../../target/debug/shop relative to this folder). Row counts are read with
// the `sqlite3` CLI (scripts/install-browser-deps.sh installs it).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { cookiesOf, freePort, launchBrowser, startServer, supertokensWebsiteBundlePath } from "./harness.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const SHOP_BIN = resolve(here, process.env.SHOP_BIN ?? "../../target/debug/shop");
const SQLITE3 = process.env.SQLITE3_BIN || "sqlite3";
const TEST_TIMEOUT = 60_000;
// The shop sets Secure cookies even on http://localhost (Chromium accepts them there), so the
// anonymous cookie is host-only and `__Host-`: no other page can plant one (SEC2-H2).
const ANON_COOKIE = "__Host-sAnonymousToken";
const REFRESH_PATH = "/auth/session/refresh";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
let tmp;
const servers = []; // everything started here, stopped in after()

before(async () => {
    if (!existsSync(SHOP_BIN)) {
        throw new Error(`${SHOP_BIN} not found: run \`cargo build -p tessera-examples --bin shop\` or set SHOP_BIN`);
    }
    execFileSync(SQLITE3, ["-version"]); // fails early with a clear ENOENT if the CLI is missing
    tmp = mkdtempSync(join(tmpdir(), "tessera-shop-test-"));
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    for (const s of servers.reverse()) await s.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/**
 * Starts shop on `port` (a free one if not given) with its sessions in `sqlitePath` (a new file
 * in the temp dir if not given); `origin` is http://localhost:<port>, as the page sees it.
 */
async function startShop({ args = [], port, sqlitePath } = {}) {
    port ??= await freePort();
    sqlitePath ??= join(tmp, `shop-${port}-${servers.length}.db`);
    const server = await startServer({
        cmd: SHOP_BIN,
        args: ["--port", String(port), "--sqlite-path", sqlitePath, "--bundle", supertokensWebsiteBundlePath(), ...args],
        port,
        readyPath: "/health",
        timeoutMs: 30_000,
    });
    servers.push(server);
    return { ...server, origin: `http://localhost:${port}`, sqlitePath };
}

const sqlite = (file, sql) => execFileSync(SQLITE3, [file, sql], { encoding: "utf8", timeout: 10_000 }).trim();
/** Rows in the signed-in sessions table (crates/tessera/migrations/sqlite: `session_info`). */
const sessionRows = (app) => Number(sqlite(app.sqlitePath, "SELECT count(*) FROM session_info;"));
/** The whole database as SQL text: equal dumps mean no write at all happened in between. */
const dump = (app) => sqlite(app.sqlitePath, ".dump");

/**
 * Opens the shop page (`?tokenTransferMethod=header` in header mode) and waits for the page's
 * own first render (whoami, then cart). Uncaught page errors are collected in `page.errors`;
 * `page.refreshCalls` counts POST /auth/session/refresh requests the page makes.
 */
async function openShop(context, app, mode = "cookie") {
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.errors = [];
    page.refreshCalls = 0;
    page.on("pageerror", (e) => page.errors.push(e.message));
    page.on("request", (r) => {
        if (r.method() === "POST" && new URL(r.url()).pathname === REFRESH_PATH) page.refreshCalls += 1;
    });
    await page.goto(mode === "header" ? `${app.origin}/?tokenTransferMethod=header` : `${app.origin}/`);
    await page.evaluate(() => window.shop.rendered);
    return page;
}

/** window.shop.<fn>(...args) in the page. */
const shop = (page, fn, ...args) => page.evaluate(({ fn, args }) => window.shop[fn](...args), { fn, args });

async function whoami(page) {
    const r = await shop(page, "whoami");
    assert.equal(r.status, 200, `whoami: ${JSON.stringify(r)}`);
    return r.body;
}

async function cart(page) {
    const r = await shop(page, "cart");
    assert.equal(r.status, 200, `cart: ${JSON.stringify(r)}`);
    return r.body;
}

async function login(page, userId) {
    const r = await shop(page, "login", userId);
    assert.equal(r.status, 200, `login: ${JSON.stringify(r)}`);
    assert.equal(r.body.userId, userId);
    return r.body;
}

const byName = (cookies) => Object.fromEntries(cookies.map((c) => [c.name, c]));
// All of the shop host's cookies: Playwright's context.cookies(url) leaves Secure cookies out
// for http URLs, but Chromium stores and sends them on http://localhost.
const jar = async (context, app) => byName((await cookiesOf(context)).filter((c) => c.domain === new URL(app.origin).hostname));
/** A cookie for the shop's host as the shop itself sets it (host-only, Secure, path /). */
const shopCookie = (app, name, value) => ({ name, value, domain: new URL(app.origin).hostname, path: "/", secure: true, httpOnly: true, sameSite: "Lax" });
const decodeJwt = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
// 128 bits or more of URL-safe text (22+ base64url characters).
const ID_RE = /^[A-Za-z0-9_-]{22,}$/;

/** The anonymous state as the SDK sees it: session exists, payload has anonymousId, no sub. */
async function assertSdkAnonymous(page, anonymousId) {
    assert.equal(await shop(page, "exists"), true, "doesSessionExist() must be true for a guest (A17)");
    const payload = await shop(page, "payload");
    assert.match(String(payload.anonymousId), ID_RE, `payload: ${JSON.stringify(payload)}`);
    assert.equal(payload.sub, undefined, `an anonymous payload has no sub: ${JSON.stringify(payload)}`);
    assert.equal(payload.tokenType, "anonymous");
    if (anonymousId !== undefined) assert.equal(payload.anonymousId, anonymousId);
    return payload;
}

for (const mode of ["cookie", "header"]) {
    describe(`${mode} mode`, () => {
        let app;
        before(async () => {
            app = await startShop();
        });

        test(`A1 A2 A17${mode === "header" ? " B4" : ""}: a first visit gets an anonymousId the SDK sees, with no database write`, { timeout: TEST_TIMEOUT }, async () => {
            const before = dump(app);
            assert.equal(sessionRows(app), 0);
            const ids = new Set();
            const contexts = [];
            try {
                for (let visitor = 0; visitor < 3; visitor++) {
                    const context = await browser.newContext();
                    contexts.push(context);
                    const page = await openShop(context, app, mode);
                    // A2: no explicit call; the page's first API request created the session.
                    const me = await whoami(page);
                    assert.equal(me.isAnonymous, true);
                    assert.equal(me.userId, null);
                    assert.match(me.anonymousId, ID_RE);
                    // A17: the stock SDK counts it as a session and reads the anonymousId.
                    await assertSdkAnonymous(page, me.anonymousId);
                    ids.add(me.anonymousId);

                    const cookies = await jar(context, app);
                    if (mode === "cookie") {
                        const ant = cookies[ANON_COOKIE];
                        assert.ok(ant, `no ${ANON_COOKIE} cookie: ${Object.keys(cookies)}`);
                        assert.equal(ant.httpOnly, true);
                        assert.equal(ant.path, "/");
                        assert.equal(decodeJwt(ant.value).anonymousId, me.anonymousId);
                    } else {
                        assert.equal(cookies[ANON_COOKIE], undefined, "header mode sets no anonymous cookie");
                        // The SDK stored the AnT from st-access-token and st-refresh-token (B4).
                        const access = cookies["st-access-token"]?.value;
                        assert.ok(access, "the SDK holds no access-token slot");
                        assert.equal(decodeJwt(access).anonymousId, me.anonymousId);
                        assert.equal(cookies["st-refresh-token"]?.value, access);
                    }
                    assert.equal(cookies.sAccessToken, undefined);
                    assert.equal(cookies.sRefreshToken, undefined);

                    // Many more anonymous requests, reads and writes of the guest cart: same id.
                    for (let i = 0; i < 10; i++) assert.equal((await whoami(page)).anonymousId, me.anonymousId);
                    for (const item of ["book", "pen"]) assert.equal((await shop(page, "add", item)).status, 200);
                    assert.deepEqual((await cart(page)).items, ["book", "pen"]);
                    assert.deepEqual(page.errors, []);
                }
                assert.equal(ids.size, 3, "every visitor has their own anonymousId");
                // A1: not a row, not a write.
                assert.equal(sessionRows(app), 0, "anonymous visitors created session rows");
                assert.equal(dump(app), before, "anonymous traffic wrote to the database");

                // The counter works: one sign-in is one row.
                await login(await contexts[0].pages()[0], `rows-${mode}`);
                assert.equal(sessionRows(app), 1);
            } finally {
                for (const c of contexts) await c.close();
            }
        });

        test(`A3 A5 A6 A15 B3 ANON-06${mode === "header" ? " B4" : ""}: anonymousId and cart survive sign-in, sign-out and a second sign-in; the guest cart is emptied`, { timeout: TEST_TIMEOUT }, async () => {
            const context = await browser.newContext();
            const attacker = await browser.newContext();
            try {
                const page = await openShop(context, app, mode);
                const guest = await whoami(page);
                const A = guest.anonymousId;
                await assertSdkAnonymous(page, A);
                assert.equal((await shop(page, "add", "book")).status, 200);
                assert.equal((await shop(page, "add", "pen")).status, 200);
                assert.deepEqual(await cart(page), { owner: `guest:${A}`, items: ["book", "pen"] });
                // The guest's AnT as it is now: an attacker who planted or copied it replays it later.
                // Header mode: the SDK keeps both slots in its own frontend cookies (A16, B4).
                const antSlot = mode === "cookie" ? ANON_COOKIE : "st-access-token";
                const guestAnt = (await jar(context, app))[antSlot]?.value;
                assert.ok(guestAnt, "the guest's AnT is not where the SDK keeps it");
                assert.equal(decodeJwt(guestAnt).anonymousId, A);

                // Sign-in: the access token carries the same anonymousId (A6, A15) and the hook
                // moved the cart into the user's (A3, B3).
                const user = `alice-${mode}`;
                assert.equal((await login(page, user)).anonymousId, A);
                const signedIn = await shop(page, "payload");
                assert.equal(signedIn.sub, user);
                assert.equal(signedIn.anonymousId, A);
                assert.deepEqual(await whoami(page), { anonymousId: A, userId: user, isAnonymous: false });
                assert.deepEqual(await cart(page), { owner: `user:${user}`, items: ["book", "pen"] });
                assert.equal((await shop(page, "account")).status, 200);
                {
                    const cookies = await jar(context, app);
                    assert.equal(cookies[ANON_COOKIE], undefined, "sign-in must clear the AnT cookie in the same response (A15)");
                    const at = cookies[mode === "cookie" ? "sAccessToken" : "st-access-token"]?.value;
                    assert.ok(at, "no access token after sign-in");
                    assert.equal(decodeJwt(at).sub, user);
                    assert.equal(decodeJwt(at).anonymousId, A);
                }

                // ANON-06: the replayed guest AnT sees an empty guest cart, never the user's items.
                const replay = await attacker.request.get(`${app.origin}/api/cart`, {
                    headers: mode === "cookie" ? { cookie: `${ANON_COOKIE}=${guestAnt}` } : { authorization: `Bearer ${guestAnt}` },
                });
                assert.equal(replay.status(), 200);
                assert.deepEqual(await replay.json(), { owner: `guest:${A}`, items: [] });

                // Sign-out: the SDK still has a session, a new AnT with the same anonymousId (A5, A6).
                await shop(page, "signOut");
                await assertSdkAnonymous(page, A);
                assert.deepEqual(await whoami(page), { anonymousId: A, userId: null, isAnonymous: true });
                assert.equal((await shop(page, "account")).status, 401);
                // A19: nothing moves back from the user to the guest on its own.
                assert.deepEqual(await cart(page), { owner: `guest:${A}`, items: [] });
                {
                    const cookies = await jar(context, app);
                    assert.ok(cookies[antSlot], "sign-out must leave a new AnT");
                    // (Not compared with guestAnt: Ed25519 is deterministic, so the same id minted in
                    // the same second gives the very same token.)
                    const claims = decodeJwt(cookies[antSlot].value);
                    assert.equal(claims.anonymousId, A);
                    assert.equal(claims.sub, undefined);
                    assert.equal(cookies.sAccessToken, undefined);
                    assert.equal(cookies.sRefreshToken, undefined);
                }

                // Second round: add as a guest again, sign in again; same id, carts merged again.
                assert.equal((await shop(page, "add", "hat")).status, 200);
                assert.equal((await login(page, user)).anonymousId, A);
                assert.deepEqual(await whoami(page), { anonymousId: A, userId: user, isAnonymous: false });
                assert.deepEqual(await cart(page), { owner: `user:${user}`, items: ["book", "pen", "hat"] });
                assert.deepEqual(page.errors, []);
            } finally {
                await context.close();
                await attacker.close();
            }
        });

        test(`A14 A17${mode === "header" ? " B4" : ""}: a guest calling a sign-in-only route gets 401 after at most one refresh call and keeps its anonymousId`, { timeout: TEST_TIMEOUT }, async () => {
            const context = await browser.newContext();
            try {
                const page = await openShop(context, app, mode);
                const A = (await whoami(page)).anonymousId;
                for (let round = 1; round <= 2; round++) {
                    const refreshesBefore = page.refreshCalls;
                    const r = await shop(page, "account");
                    assert.equal(r.status, 401, `round ${round}: ${JSON.stringify(r)}`);
                    assert.deepEqual(r.body, { message: "unauthorised" });
                    const refreshes = page.refreshCalls - refreshesBefore;
                    assert.ok(refreshes <= 1, `round ${round}: ${refreshes} refresh calls for one 401 (refresh loop)`);
                    await assertSdkAnonymous(page, A);
                    assert.deepEqual(await whoami(page), { anonymousId: A, userId: null, isAnonymous: true });
                }
                assert.deepEqual(page.errors, []);
            } finally {
                await context.close();
            }
        });
    });
}

describe("forged, tampered and swapped tokens (cookie mode)", () => {
    let app;
    let genuineAnt; // a guest's AnT
    let genuineId;
    let accessToken; // a signed-in user's access token
    let userAnonymousId;
    const USER = "mallory";

    before(async () => {
        app = await startShop();
        const context = await browser.newContext();
        try {
            const page = await openShop(context, app);
            genuineId = (await whoami(page)).anonymousId;
            genuineAnt = (await jar(context, app))[ANON_COOKIE].value;
            const other = await browser.newContext();
            try {
                const userPage = await openShop(other, app);
                userAnonymousId = (await login(userPage, USER)).anonymousId;
                accessToken = (await jar(other, app)).sAccessToken.value;
            } finally {
                await other.close();
            }
        } finally {
            await context.close();
        }
        assert.match(genuineId, ID_RE);
        assert.notEqual(userAnonymousId, genuineId);
    });

    /** A fresh browser whose jar holds `cookies` for the shop before its first request. */
    async function planted(cookies) {
        const context = await browser.newContext();
        await context.addCookies(Object.entries(cookies).map(([name, value]) => shopCookie(app, name, value)));
        return context;
    }

    /** Flips one character in the middle of JWT part `part` (0 header, 1 payload, 2 signature). */
    function tamper(jwt, part) {
        const parts = jwt.split(".");
        const s = parts[part];
        const i = Math.floor(s.length / 2);
        parts[part] = s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
        return parts.join(".");
    }

    /** Payload re-encoded with another anonymousId, original signature kept. */
    function withOtherId(jwt) {
        const [h, p, s] = jwt.split(".");
        const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
        claims.anonymousId = "AAAAAAAAAAAAAAAAAAAAAA";
        return [h, Buffer.from(JSON.stringify(claims)).toString("base64url"), s].join(".");
    }

    /** The page is a guest with a fresh valid AnT, not `notId`, and never signed in. */
    async function assertReplacedGuest(context, page, notIds) {
        const me = await whoami(page);
        assert.equal(me.isAnonymous, true, `accepted as signed in: ${JSON.stringify(me)}`);
        assert.equal(me.userId, null);
        assert.match(me.anonymousId, ID_RE);
        for (const id of notIds) assert.notEqual(me.anonymousId, id, "an unverifiable token's anonymousId was kept");
        await assertSdkAnonymous(page, me.anonymousId);
        const account = await shop(page, "account");
        assert.equal(account.status, 401, `account: ${JSON.stringify(account)}`);
        const cookies = await jar(context, app);
        assert.ok(cookies[ANON_COOKIE], "no AnT after the bad one");
        assert.equal(decodeJwt(cookies[ANON_COOKIE].value).anonymousId, me.anonymousId, "the jar's AnT is not the one in use");
        assert.deepEqual(page.errors, []);
        return me;
    }

    test("A10 ANON-16: a garbage AnT cookie is replaced by a fresh valid one, no error", { timeout: TEST_TIMEOUT }, async () => {
        for (const garbage of ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJhbm9ueW1vdXNJZCI6IngifQ."]) {
            const context = await planted({ [ANON_COOKIE]: garbage });
            try {
                const page = await openShop(context, app);
                await assertReplacedGuest(context, page, ["x"]);
                assert.notEqual((await jar(context, app))[ANON_COOKIE].value, garbage);
            } finally {
                await context.close();
            }
        }
    });

    test("A10 A20 ANON-16: a tampered AnT (signature, header or payload) is replaced with a new anonymousId", { timeout: TEST_TIMEOUT }, async () => {
        const forged = { signature: tamper(genuineAnt, 2), header: tamper(genuineAnt, 0), payload: withOtherId(genuineAnt) };
        for (const [what, token] of Object.entries(forged)) {
            assert.notEqual(token, genuineAnt);
            const context = await planted({ [ANON_COOKIE]: token });
            try {
                const page = await openShop(context, app);
                await assertReplacedGuest(context, page, [genuineId, "AAAAAAAAAAAAAAAAAAAAAA"]);
                assert.notEqual((await jar(context, app))[ANON_COOKIE].value, token, what);
            } finally {
                await context.close();
            }
        }
        // Mid-session, on an API request the SDK makes (not the page navigation): a tampered
        // AnT swapped into the jar of a working guest is replaced, under a new anonymousId.
        {
            const context = await browser.newContext();
            try {
                const page = await openShop(context, app);
                const own = (await whoami(page)).anonymousId;
                const ownAnt = (await jar(context, app))[ANON_COOKIE].value;
                await context.addCookies([shopCookie(app, ANON_COOKIE, tamper(ownAnt, 2))]);
                const me = await assertReplacedGuest(context, page, [own]);
                assert.notEqual((await jar(context, app))[ANON_COOKIE].value, tamper(ownAnt, 2));
                // The new id sticks from then on.
                assert.equal((await whoami(page)).anonymousId, me.anonymousId);
            } finally {
                await context.close();
            }
        }
        // Control: the genuine token itself is accepted as that guest (so the above can fail).
        const context = await planted({ [ANON_COOKIE]: genuineAnt });
        try {
            const page = await openShop(context, app);
            assert.deepEqual(await whoami(page), { anonymousId: genuineId, userId: null, isAnonymous: true });
        } finally {
            await context.close();
        }
    });

    test("A16 ANON-01 ANON-04: an AnT in the access-token cookie never authenticates", { timeout: TEST_TIMEOUT }, async () => {
        // Without the SDK: the raw request is not signed in.
        const raw = await fetch(`${app.url}/api/account`, { headers: { cookie: `sAccessToken=${genuineAnt}` } });
        assert.equal(raw.status, 401);
        const rawWhoami = await fetch(`${app.url}/api/whoami`, { headers: { cookie: `sAccessToken=${genuineAnt}` } });
        assert.notEqual(rawWhoami.status, 200, "an AnT in sAccessToken was accepted as an access token");
        // Through the SDK: the page ends up a guest, never signed in, with no refresh loop.
        const context = await planted({ sAccessToken: genuineAnt });
        try {
            const page = await openShop(context, app);
            const me = await assertReplacedGuest(context, page, []);
            // One refresh at the SDK's first request (no front-token yet), one for the 401 of /api/account.
            assert.ok(page.refreshCalls <= 2, `${page.refreshCalls} refresh calls`);
            assert.equal((await jar(context, app)).sAccessToken, undefined, "the bad access-token cookie was kept");
            assert.equal(me.userId, null);
        } finally {
            await context.close();
        }
    });

    test("A16 ANON-03 ANON-04: an access token in the anonymous cookie is no identity and no anonymousId", { timeout: TEST_TIMEOUT }, async () => {
        const raw = await fetch(`${app.url}/api/account`, { headers: { cookie: `${ANON_COOKIE}=${accessToken}` } });
        assert.equal(raw.status, 401, "an access token in the AnT cookie authenticated a request");
        const context = await planted({ [ANON_COOKIE]: accessToken });
        try {
            const page = await openShop(context, app);
            // The access token's anonymousId is not carried over from the anonymous cookie either.
            const me = await assertReplacedGuest(context, page, [userAnonymousId]);
            assert.notEqual(me.userId, USER);
        } finally {
            await context.close();
        }
    });

    test("ANON-04: with a valid access token and someone else's AnT, identity comes from the access token only", { timeout: TEST_TIMEOUT }, async () => {
        const context = await browser.newContext();
        try {
            const page = await openShop(context, app);
            const own = (await whoami(page)).anonymousId;
            const user = "victim";
            assert.equal((await login(page, user)).anonymousId, own);
            // Plant the other guest's AnT beside the signed-in cookies.
            await context.addCookies([shopCookie(app, ANON_COOKIE, genuineAnt)]);
            assert.deepEqual(await whoami(page), { anonymousId: own, userId: user, isAnonymous: false });
            assert.equal((await cart(page)).owner, `user:${user}`);
            assert.equal((await shop(page, "account")).status, 200);
        } finally {
            await context.close();
        }
    });
});

/**
 * Signs `page` in as `user`, revokes the session behind the SDK's back (deletes its row, which
 * is what a revocation does to the store) and waits until the access token has expired, so the
 * SDK's next call must refresh. The shop must run with a short access-token validity.
 */
async function signInThenRevoke(app, page, user) {
    const A = (await whoami(page)).anonymousId;
    assert.equal((await login(page, user)).anonymousId, A);
    // Read now: once the access token has expired, reading the payload would itself refresh.
    const { exp, sub } = await shop(page, "payload");
    assert.equal(sub, user);
    assert.equal(sessionRows(app), 1);
    sqlite(app.sqlitePath, "DELETE FROM session_info;");
    assert.equal(sessionRows(app), 0);
    const wait = exp * 1000 + 300 - Date.now();
    assert.ok(wait < 4_000, `access token lives ${wait} ms more`);
    if (wait > 0) await sleep(wait);
    return A;
}

describe("revoked signed-in session (cookie mode)", () => {
    let app;
    before(async () => {
        app = await startShop({ args: ["--access-token-validity-secs", "2"] });
    });

    test("A5 A20 A21: a revoked signed-in session turns back into a guest with the same anonymousId, no refresh loop", { timeout: TEST_TIMEOUT }, async () => {
        const context = await browser.newContext();
        try {
            const page = await openShop(context, app);
            const A = await signInThenRevoke(app, page, "revoked");
            const refreshesBefore = page.refreshCalls;
            const r = await shop(page, "account");
            assert.equal(r.status, 401, `account after revocation: ${JSON.stringify(r)}`);
            assert.ok(page.refreshCalls - refreshesBefore <= 1, `${page.refreshCalls - refreshesBefore} refresh calls (refresh loop)`);
            // The "unauthorised" refresh response already carried the new anonymous session (A21).
            await assertSdkAnonymous(page, A);
            const cookies = await jar(context, app);
            assert.equal(cookies.sAccessToken, undefined);
            assert.equal(cookies.sRefreshToken, undefined);
            assert.equal(decodeJwt(cookies[ANON_COOKIE].value).anonymousId, A);
            assert.deepEqual(await whoami(page), { anonymousId: A, userId: null, isAnonymous: true });
            assert.equal(sessionRows(app), 0);
            assert.deepEqual(page.errors, []);
        } finally {
            await context.close();
        }
    });

    // Today the refresh route answers the revoked session 401 with the new anonymous front-token;
    // the SDK then still holds a session, so onUnauthorisedResponse reports API_ERROR instead of
    // SESSION_EXPIRED: this first doesSessionExist() answers false (the next one true), and
    // getAccessTokenPayloadSecurely()/attemptRefreshingSession() throw the raw 401 Response.
    test("A5 A17 A21: after revocation and expiry the SDK's first doesSessionExist() is already true", { timeout: TEST_TIMEOUT, todo: "refresh route answers 401 (not 200) with the replacement AnT" }, async () => {
        const context = await browser.newContext();
        try {
            const page = await openShop(context, app);
            const A = await signInThenRevoke(app, page, "revoked-2");
            assert.equal(await shop(page, "exists"), true);
            await assertSdkAnonymous(page, A);
        } finally {
            await context.close();
        }
    });
});

test("A10 A20 ANON-16: an expired AnT is replaced by a valid one, never accepted; the genuine token's anonymousId is kept", { timeout: TEST_TIMEOUT }, async () => {
    const app = await startShop({ args: ["--anonymous-validity-secs", "2"] });
    const context = await browser.newContext();
    try {
        const page = await openShop(context, app);
        const A = (await whoami(page)).anonymousId;
        const first = (await jar(context, app))[ANON_COOKIE];
        assert.equal(decodeJwt(first.value).anonymousId, A);
        await new Promise((r) => setTimeout(r, 3_500));
        // The browser dropped the cookie at its expiry; put the expired token back as a browser
        // that kept it (or a replay) would send it.
        await context.addCookies([{ ...first, expires: Math.floor(Date.now() / 1000) + 3600 }]);
        const raw = await page.evaluate(async () => {
            const r = await window.__supertokensOriginalFetch("/api/whoami", { credentials: "include", headers: { "st-auth-mode": "cookie" } });
            return { status: r.status, body: await r.json() };
        });
        assert.equal(raw.status, 200, "never an error response (A10)");
        assert.equal(raw.body.isAnonymous, true);
        assert.equal(raw.body.userId, null);
        assert.equal(raw.body.anonymousId, A, "A20: the expired genuine token's id is kept");
        const replaced = (await jar(context, app))[ANON_COOKIE];
        assert.notEqual(replaced.value, first.value, "the expired token was replaced");
        const claims = decodeJwt(replaced.value);
        assert.ok(claims.exp * 1000 > Date.now(), "by a valid one");
        assert.equal(claims.anonymousId, A);
        const account = await page.evaluate(async () => (await fetch("/api/account")).status);
        assert.equal(account, 401, "never authenticated");
    } finally {
        await context.close();
    }
});

test("A4 A18: switching anonymous sessions off clears the AnT cookie on the next request", { timeout: TEST_TIMEOUT }, async () => {
    // Cookies are per host, not per port: restart on the same port with the feature off and
    // keep the browser context.
    const on = await startShop();
    const context = await browser.newContext();
    try {
        const page = await openShop(context, on);
        const A = (await whoami(page)).anonymousId;
        assert.equal(decodeJwt((await jar(context, on))[ANON_COOKIE].value).anonymousId, A);
        await page.goto(`${on.origin}/health`);
        assert.ok((await jar(context, on))[ANON_COOKIE], "a request with the feature on must keep the AnT");
        await on.stop();

        const off = await startShop({ port: on.port, sqlitePath: on.sqlitePath, args: ["--anonymous", "false"] });
        const response = await page.goto(`${off.origin}/health`);
        const setCookie = (await response.headersArray()).filter((h) => h.name.toLowerCase() === "set-cookie").map((h) => h.value);
        const clearing = setCookie.find((v) => v.startsWith(`${ANON_COOKIE}=`));
        assert.ok(clearing, `no Set-Cookie for ${ANON_COOKIE}: ${JSON.stringify(setCookie)}`);
        assert.match(clearing, /Expires=Thu, 01 Jan 1970|Max-Age=0/i);
        assert.equal((await jar(context, off))[ANON_COOKIE], undefined, "the browser still holds the AnT");

        // The SDK in that browser still holds the anonymous front-token: its next API call gets
        // 401, one refresh call answers "remove", and it ends signed out with no loop.
        const again = await openShop(context, off);
        assert.equal(await shop(again, "exists"), false, "the SDK still believes in the anonymous session");
        assert.ok(again.refreshCalls <= 2, `${again.refreshCalls} refresh calls`);
        assert.equal((await shop(again, "whoami")).status, 401);
        assert.equal((await jar(context, off))[ANON_COOKIE], undefined);
        assert.deepEqual(again.errors, []);

        // The shop page with the feature off: no anonymous session is minted.
        const fresh = await browser.newContext();
        try {
            const p = await openShop(fresh, off);
            assert.equal(await shop(p, "exists"), false);
            assert.equal((await jar(fresh, off))[ANON_COOKIE], undefined);
        } finally {
            await fresh.close();
        }
    } finally {
        await context.close();
    }
});

test("B2: an excluded path mints no anonymous session (no Set-Cookie), other paths do", { timeout: TEST_TIMEOUT }, async () => {
    const app = await startShop({ args: ["--anonymous-exclude", "/health"] });
    const context = await browser.newContext();
    try {
        const page = await context.newPage();
        const health = await page.goto(`${app.origin}/health`);
        assert.equal(health.status(), 200);
        assert.equal(await health.headerValue("set-cookie"), null);
        assert.equal(await health.headerValue("front-token"), null);
        assert.equal(await health.headerValue("st-access-token"), null);
        assert.equal((await jar(context, app))[ANON_COOKIE], undefined);
        await page.goto(`${app.origin}/`);
        await page.evaluate(() => window.shop.rendered);
        assert.ok((await jar(context, app))[ANON_COOKIE], "the page's API calls must mint an AnT");
    } finally {
        await context.close();
    }
});

test("SEC2-L4 CSRF-11: a cross-site form POST to /auth/signout leaves the guest's anonymous session alone", { timeout: TEST_TIMEOUT }, async () => {
    // Cookie transfer: new tokens go into cookies whatever the request says (with `any`, a
    // form POST carries no st-auth-mode and would be answered in headers).
    const app = await startShop({ args: ["--transfer", "cookie"] });
    // The attacker's page: another site (127.0.0.1 is not localhost's site) whose form posts to
    // the shop's sign-out. The Lax cookies stay home; before the fix, the answer minted a new
    // anonymous token that the browser stored over the guest's (an identity reset).
    const { createServer } = await import("node:http");
    const target = `${app.origin}/auth/signout`;
    const attacker = createServer((req, res) => {
        res.writeHead(200, { "content-type": "text/html" });
        res.end(`<form id="f" method="POST" action="${target}"><input name="x" value="1"></form><script>document.getElementById("f").submit()</script>`);
    });
    await new Promise((r) => attacker.listen(0, "127.0.0.1", r));
    const context = await browser.newContext();
    try {
        const page = await openShop(context, app);
        const A = (await whoami(page)).anonymousId;
        const before = (await jar(context, app))[ANON_COOKIE].value;
        const evil = await context.newPage();
        const answered = evil.waitForResponse((r) => r.url() === target);
        await evil.goto(`http://127.0.0.1:${attacker.address().port}/`);
        const response = await answered;
        assert.equal(response.request().headers()["sec-fetch-site"] ?? "cross-site", "cross-site");
        const setCookie = (await response.headersArray()).filter((h) => h.name.toLowerCase() === "set-cookie");
        assert.deepEqual(setCookie, [], "the cross-site sign-out set cookies");
        assert.equal((await jar(context, app))[ANON_COOKIE].value, before, "the guest's AnT was replaced");
        assert.equal((await whoami(page)).anonymousId, A);
        assert.deepEqual(page.errors, []);
    } finally {
        await context.close();
        attacker.close();
    }
});
