// Issue 15 in headless Chromium: the shop's "Your devices" panel with two browser contexts as
// two devices of one user. Both are listed with their labels; "sign out everywhere else" from
// one; the other's next call is unauthorised and it stays a guest with its anonymousId.
//
// Build the app first: `cargo build -p tessera-examples --bin shop` (SHOP_BIN as in
// shop.test.mjs). Run alone: `node --test shop-devices.test.mjs`.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { freePort, launchBrowser, startServer, supertokensWebsiteBundlePath } from "./harness.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const SHOP_BIN = resolve(here, process.env.SHOP_BIN ?? "../../target/debug/shop");
const TEST_TIMEOUT = 60_000;
const ACCESS_TOKEN_SECS = 2;
const CHROME_LINUX = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
// Markup in a user agent must come out as text.
const MARKUP_UA = `${CHROME_LINUX} <img src=x onerror="window.pwned=1">`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
let tmp;
let app;

before(async () => {
    if (!existsSync(SHOP_BIN)) {
        throw new Error(`${SHOP_BIN} not found: run \`cargo build -p tessera-examples --bin shop\` or set SHOP_BIN`);
    }
    tmp = mkdtempSync(join(tmpdir(), "tessera-shop-devices-"));
    browser = await launchBrowser();
    const port = await freePort();
    const server = await startServer({
        cmd: SHOP_BIN,
        args: [
            "--port", String(port),
            "--sqlite-path", join(tmp, "shop.db"),
            "--bundle", supertokensWebsiteBundlePath(),
            "--access-token-validity-secs", String(ACCESS_TOKEN_SECS),
        ],
        port,
        readyPath: "/health",
        timeoutMs: 30_000,
    });
    app = { ...server, origin: `http://localhost:${port}` };
});

after(async () => {
    await browser?.close();
    await app?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function openShop(context) {
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.errors = [];
    page.on("pageerror", (e) => page.errors.push(e.message));
    await page.goto(`${app.origin}/`);
    await page.evaluate(() => window.shop.rendered);
    return page;
}

const shop = (page, fn, ...args) => page.evaluate(({ fn, args }) => window.shop[fn](...args), { fn, args });

async function whoami(page) {
    const r = await shop(page, "whoami");
    assert.equal(r.status, 200, `whoami: ${JSON.stringify(r)}`);
    return r.body;
}

async function signIn(page, userId) {
    const r = await shop(page, "login", userId);
    assert.equal(r.status, 200, `login: ${JSON.stringify(r)}`);
    // Re-render the page signed in (the panel lists devices only for a signed-in user).
    await page.reload();
    await page.evaluate(() => window.shop.rendered);
}

test("issue 15, REQ-07: two devices listed with labels; sign out everywhere else; the other device is unauthorised next and keeps its anonymousId", { timeout: TEST_TIMEOUT }, async () => {
    const laptop = await browser.newContext({ userAgent: CHROME_LINUX });
    const desktop = await browser.newContext({ userAgent: FIREFOX_WINDOWS });
    const odd = await browser.newContext({ userAgent: MARKUP_UA });
    try {
        const a = await openShop(laptop);
        const b = await openShop(desktop);
        const c = await openShop(odd);
        const idA = (await whoami(a)).anonymousId;
        const idB = (await whoami(b)).anonymousId;
        assert.notEqual(idA, idB);
        const user = "dana";
        await signIn(b, user);
        await signIn(c, user);
        await signIn(a, user);

        // The API: exactly the documented keys, both devices with labels, A's marked current.
        const listed = await shop(a, "sessions");
        assert.equal(listed.status, 200, JSON.stringify(listed));
        assert.equal(listed.body.length, 3);
        for (const row of listed.body) {
            assert.deepEqual(Object.keys(row).sort(), ["created", "current", "handle", "ip", "label", "lastActive", "userAgent"]);
            assert.equal(typeof row.created, "number");
            assert.equal(typeof row.lastActive, "number");
            assert.ok(row.lastActive >= row.created && row.created > 1.6e12, JSON.stringify(row));
            assert.equal(row.ip, "127.0.0.1");
        }
        const byUa = Object.fromEntries(listed.body.map((r) => [r.userAgent, r]));
        assert.equal(byUa[CHROME_LINUX].label, "Chrome on Linux");
        assert.equal(byUa[CHROME_LINUX].current, true);
        assert.equal(byUa[FIREFOX_WINDOWS].label, "Firefox on Windows 10");
        assert.equal(byUa[FIREFOX_WINDOWS].current, false);
        assert.equal(byUa[MARKUP_UA].userAgent, MARKUP_UA, "stored as given");

        // The panel: one row per device, labels as text, the markup user agent inert.
        await a.waitForFunction(() => document.querySelectorAll("#devices tr").length === 3);
        const rows = await a.$$eval("#devices tr", (trs) => trs.map((tr) => ({ text: tr.textContent, title: tr.cells[0].title, imgs: tr.querySelectorAll("img").length })));
        assert.ok(rows.some((r) => r.text.includes("Chrome on Linux (this device)")), JSON.stringify(rows));
        assert.ok(rows.some((r) => r.text.includes("Firefox on Windows 10")), JSON.stringify(rows));
        assert.ok(rows.some((r) => r.title === MARKUP_UA), "the user agent is shown as text");
        assert.ok(rows.every((r) => r.imgs === 0), "no markup from a user agent");
        assert.equal(await a.evaluate(() => window.pwned), undefined);
        assert.equal(await a.$$eval("#devices button.revoke", (bs) => bs.length), 2, "a button per other device");

        // One device signed out by its row's button.
        const oddHandle = byUa[MARKUP_UA].handle;
        await a.click(`#devices tr[data-handle="${oddHandle}"] button.revoke`);
        await a.waitForFunction(() => document.querySelectorAll("#devices tr").length === 2);
        // Another user's handle (or a made-up one) is not found.
        assert.equal((await shop(a, "revoke", "not-a-handle")).status, 404);

        // Sign out everywhere else, from A.
        await a.click("#revoke-others");
        await a.waitForFunction(() => document.querySelectorAll("#devices tr").length === 1);
        const left = await shop(a, "sessions");
        assert.equal(left.body.length, 1);
        assert.equal(left.body[0].current, true);

        // B's next call, once its access token is due for a refresh, is unauthorised: the
        // refresh fails, and B goes on as a guest with its anonymousId (SEC2-H2).
        await sleep(ACCESS_TOKEN_SECS * 1000 + 1200);
        const account = await shop(b, "account");
        assert.equal(account.status, 401, JSON.stringify(account));
        assert.deepEqual(await whoami(b), { anonymousId: idB, userId: null, isAnonymous: true });
        assert.equal((await shop(b, "sessions")).status, 401);

        // A is untouched (it refreshes its short-lived token as usual).
        assert.equal((await shop(a, "account")).status, 200);
        assert.deepEqual(await whoami(a), { anonymousId: idA, userId: user, isAnonymous: false });
        for (const p of [a, b, c]) assert.deepEqual(p.errors, []);
    } finally {
        await laptop.close();
        await desktop.close();
        await odd.close();
    }
});
