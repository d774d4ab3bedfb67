// The admin page of `tessera serve` (/dashboard, issue 13) in headless Chromium: sign in with
// the admin key, find a user with two sessions, revoke one (the core then rejects it), see the
// theft event after a refresh-token replay, see two kids after a rotation; a wrong key is
// refused; a form posted to a dashboard action from another origin changes nothing. Saves a
// screenshot to output/dashboard.png.
//
// Needs the `tessera` binary: TESSERA_BIN, default ../../target/debug/tessera
// (cargo build -p tessera-server --bin tessera).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, launchBrowser, startServer } from "./harness.mjs";

const TESSERA_BIN = process.env.TESSERA_BIN || fileURLToPath(new URL("../../target/debug/tessera", import.meta.url));
const OUTPUT = fileURLToPath(new URL("./output/", import.meta.url));
const ADMIN_KEY = "dashboard-admin-key-0123456789abcdef";
const CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const FIREFOX_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";

let dir;
let core;
let attacker;
let attackerUrl;
let browser;

before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tessera-dashboard-"));
    const port = await freePort();
    core = await startServer({
        cmd: TESSERA_BIN,
        args: [
            "serve", "--host", "127.0.0.1", "--port", String(port),
            "--sqlite-path", join(dir, "tessera.db"),
            "--audit-retention-days", "7",
            // Strict CDI 5.4 replay rule, so a replay right away is theft.
            "--refresh-token-rotation-grace-period", "0",
            // A dynamic key signs for 7.2 s: the test sees a rotation.
            "--access-token-dynamic-signing-key-update-interval", "0.002",
        ],
        env: { TESSERA_ADMIN_KEY: ADMIN_KEY, TESSERA_LOG: "warn" },
        port,
        readyPath: "/hello",
    });
    // Another origin (same host, another port: the same *site*, so SameSite=Strict cookies go
    // along) serving a page that posts a form to a dashboard action.
    const attackerPort = await freePort();
    attacker = createServer((req, res) => {
        const handle = new URL(req.url, "http://x").searchParams.get("handle") || "";
        const body = JSON.stringify({ app: "public", handles: [handle], pad: "" }).slice(0, -2);
        res.setHeader("content-type", "text/html");
        res.end(`<!doctype html><title>elsewhere</title>
<form id="f" method="POST" enctype="text/plain" action="${core.url}/dashboard/api/revoke">
<input type="hidden" name='${body}' value='"}'></form>
<script>document.getElementById("f").submit()</script>`);
    });
    await new Promise((resolve) => attacker.listen(attackerPort, "127.0.0.1", resolve));
    attackerUrl = `http://127.0.0.1:${attackerPort}`;
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await new Promise((resolve) => (attacker ? attacker.close(resolve) : resolve()));
    await core?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
});

async function coreCall(path, body) {
    const r = await fetch(core.url + path, {
        method: "POST",
        headers: { "content-type": "application/json", "cdi-version": "5.4", rid: "session" },
        body: JSON.stringify(body),
    });
    assert.equal(r.status, 200, `${path}: HTTP ${r.status}`);
    return r.json();
}

async function createSession(userId, userAgent) {
    const s = await coreCall("/recipe/session", {
        userId, userDataInJWT: {}, userDataInDatabase: {}, enableAntiCsrf: false,
        useDynamicSigningKey: true,
        device: { userAgent, ip: "203.0.113.7" },
    });
    assert.equal(s.status, "OK");
    return { handle: s.session.handle, at: s.accessToken.token, rt: s.refreshToken.token };
}

const verify = (at) => coreCall("/recipe/session/verify",
    { accessToken: at, doAntiCsrfCheck: false, enableAntiCsrf: false, checkDatabase: true });
const refresh = (rt) => coreCall("/recipe/session/refresh",
    { refreshToken: rt, enableAntiCsrf: false, useDynamicSigningKey: true });

async function signIn(page, key) {
    await page.goto(core.url + "/dashboard");
    await page.locator("#signin").waitFor({ state: "visible" });
    await page.fill("#admin-key", key);
    await page.click("#signin-form button[type=submit]");
}

test("a wrong admin key is refused", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const started = Date.now();
    await signIn(page, "not-the-admin-key-0000000000000");
    await page.locator("#signin-error").filter({ hasText: "Wrong admin key" }).waitFor();
    assert.ok(Date.now() - started >= 700, "a wrong key is answered slowly");
    assert.equal(await page.locator("#app").isVisible(), false);
    assert.equal((await context.cookies()).length, 0, "no cookie for a wrong key");
    // The JSON endpoints need the session too.
    const r = await fetch(core.url + "/dashboard/api/events");
    assert.equal(r.status, 401);
    await context.close();
});

test("sign in, find, revoke, theft, rotation, cross-site form, screenshot", async () => {
    const alice1 = await createSession("dash-alice", CHROME_UA);
    const alice2 = await createSession("dash-alice", FIREFOX_UA);

    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    await signIn(page, ADMIN_KEY);
    await page.locator("#app").waitFor({ state: "visible" });
    const [cookie] = await context.cookies(core.url + "/dashboard");
    assert.equal(cookie.name, "tessera_admin");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(cookie.path, "/dashboard");
    assert.notEqual(cookie.value, ADMIN_KEY);

    // Find the user: two sessions with their devices.
    await page.fill("#user-id", "dash-alice");
    await page.click("#sessions-form button[type=submit]");
    const rows = page.locator("#sessions-table tbody tr");
    await page.waitForFunction(() => document.querySelectorAll("#sessions-table tbody tr").length === 2);
    const text = await page.locator("#sessions-table").innerText();
    assert.match(text, /Chrome/);
    assert.match(text, /Firefox/);
    assert.match(text, /203\.0\.113\.7/);

    // A form posted from another origin to a dashboard action changes nothing, although the
    // browser sends the session cookie with it (same site).
    const attackPage = await context.newPage();
    const refused = attackPage.waitForResponse((r) => r.url().endsWith("/dashboard/api/revoke"));
    await attackPage.goto(`${attackerUrl}/?handle=${encodeURIComponent(alice1.handle)}`);
    const response = await refused;
    assert.equal(response.status(), 403);
    const sent = await response.request().allHeaders();
    assert.match(sent.cookie || "", /tessera_admin=/, "the cookie went along; the origin check refused");
    await attackPage.close();
    assert.equal((await verify(alice1.at)).status, "OK", "the session survives the cross-site form");

    // Revoke one: the core then rejects it; the other still works.
    await rows.filter({ hasText: alice1.handle }).locator("button.revoke").click();
    await page.locator("#sessions-status").filter({ hasText: "Revoked 1" }).waitFor();
    assert.equal(await rows.count(), 1);
    assert.equal((await verify(alice1.at)).status, "UNAUTHORISED");
    assert.equal((await refresh(alice1.rt)).status, "UNAUTHORISED");
    assert.equal((await verify(alice2.at)).status, "OK");

    // Theft: RT1 → RT2, RT2 → RT3, then RT1 replayed.
    const bob = await createSession("dash-bob", CHROME_UA);
    const r2 = await refresh(bob.rt);
    assert.equal(r2.status, "OK");
    assert.equal((await refresh(r2.refreshToken.token)).status, "OK");
    assert.equal((await refresh(bob.rt)).status, "TOKEN_THEFT_DETECTED");
    await page.selectOption("#event-kind", "theft_detected");
    await page.click("#events-form button[type=submit]");
    const theftRow = page.locator("#events-table tbody tr.theft_detected").filter({ hasText: bob.handle });
    await theftRow.waitFor();
    assert.match(await theftRow.innerText(), /dash-bob/);
    assert.match(await theftRow.innerText(), /127\.0\.0\.1/);
    await page.selectOption("#event-kind", "");
    await page.click("#events-form button[type=submit]");
    await page.locator("#events-table tbody tr.session_revoked").filter({ hasText: '"cause":"admin"' }).first().waitFor();

    // Rotation: within a few seconds a second dynamic key exists and the page lists both.
    const deadline = Date.now() + 30_000;
    let dynamic = 0;
    while (Date.now() < deadline) {
        await createSession("dash-rotation", CHROME_UA); // signing loads (and creates) keys
        await page.click("#sessions-form button[type=submit]"); // reloads the key table
        await page.waitForTimeout(500);
        dynamic = await page.locator("#keys-table tbody tr", { hasText: "dynamic" }).count();
        if (dynamic >= 2) break;
        await page.waitForTimeout(1000);
    }
    assert.ok(dynamic >= 2, `two dynamic kids after a rotation (saw ${dynamic})`);
    const kids = await page.locator("#keys-table td.kid").allInnerTexts();
    assert.equal(new Set(kids).size, kids.length);
    assert.equal(await page.locator("#keys-table td.signing").filter({ hasText: "signing" }).count() >= 1, true);

    // Live counters move.
    await page.locator('#counters [data-counter="theft_detected"] dd').filter({ hasText: /^[1-9]/ }).waitFor();

    // The page for the README: alice's remaining session, keys, events.
    await page.fill("#user-id", "dash-alice");
    await page.click("#sessions-form button[type=submit]");
    await page.waitForFunction(() => document.querySelectorAll("#sessions-table tbody tr").length === 1);
    // Fresh counters and events (they reload every 3 s): the rotation's second key is there.
    await page.locator('#counters [data-counter="key_created"] dd').filter({ hasText: /^([2-9]|\d\d+)$/ }).waitFor();
    await page.click("#events-form button[type=submit]");
    await page.locator("#events-table tbody tr.key_created").nth(1).waitFor();
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, "dashboard.png"), fullPage: true });
    await context.close();
});
