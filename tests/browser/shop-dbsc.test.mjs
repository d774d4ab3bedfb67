// Issue 14 in headless Chromium: Device Bound Session Credentials end to end with the shop
// (`--dbsc`). Debian's Chromium 156 runs DBSC headless on Linux with the features
// `DeviceBoundSessions` and `EnableBoundSessionCredentialsSoftwareKeysForManualTesting` (a
// software key provider), over https only: a proxy here terminates TLS with a certificate
// made at run time and trusted through `--ignore-certificate-errors-spki-list`. The DevTools
// `Network` domain reports the browser's device-bound-session events.
//
// Observed: the guest's registration on the first page (browser event and the server's
// request), the binding carried across sign-in (a bound refresh, no second registration), and
// a bound refresh after the short-lived bound cookie expired, with the page staying signed in
// and never calling the plain refresh with its refresh token.
//
// Build the app first: `cargo build -p tessera-examples --bin shop` (SHOP_BIN as in
// shop.test.mjs). Run alone: `node --test shop-dbsc.test.mjs`.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { freePort, launchBrowser, startServer, supertokensWebsiteBundlePath } from "./harness.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const SHOP_BIN = resolve(here, process.env.SHOP_BIN ?? "../../target/debug/shop");
const TEST_TIMEOUT = 90_000;
const ACCESS_TOKEN_SECS = 3;
const DBSC_FEATURES = "--enable-features=DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
let tmp;
let app;
let proxy;
/** Every request the proxy forwarded: `{method, path, headers}`. */
const seen = [];

/** A self-signed certificate for localhost and the base64 SHA-256 of its SPKI. */
function makeCertificate(dir) {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ], { stdio: "ignore" });
    const pem = readFileSync(cert);
    const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
    return { key: readFileSync(key), cert: pem, spkiHash: createHash("sha256").update(spki).digest("base64") };
}

before(async () => {
    if (!existsSync(SHOP_BIN)) {
        throw new Error(`${SHOP_BIN} not found: run \`cargo build -p tessera-examples --bin shop\` or set SHOP_BIN`);
    }
    tmp = mkdtempSync(join(tmpdir(), "tessera-shop-dbsc-"));
    const tls = makeCertificate(tmp);
    const [port, proxyPort] = [await freePort(), await freePort()];
    const origin = `https://localhost:${proxyPort}`;
    const server = await startServer({
        cmd: SHOP_BIN,
        args: [
            "--port", String(port),
            "--sqlite-path", join(tmp, "shop.db"),
            "--bundle", supertokensWebsiteBundlePath(),
            "--access-token-validity-secs", String(ACCESS_TOKEN_SECS),
            "--transfer", "cookie",
            "--dbsc",
            "--public-origin", origin,
        ],
        port,
        readyPath: "/health",
        timeoutMs: 30_000,
    });
    app = { ...server, origin };
    // TLS in front of the shop, recording what the browser sends.
    proxy = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
        const entry = { method: req.method, path: req.url, headers: { ...req.headers } };
        seen.push(entry);
        const upstream = http.request(
            { host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers },
            (up) => {
                entry.status = up.statusCode;
                entry.answer = { challenge: up.headers["secure-session-challenge"] };
                res.writeHead(up.statusCode, up.headers);
                up.pipe(res);
            },
        );
        upstream.on("error", () => { res.writeHead(502); res.end(); });
        req.pipe(upstream);
    });
    await new Promise((r) => proxy.listen(proxyPort, "127.0.0.1", r));
    browser = await launchBrowser({ args: [DBSC_FEATURES, `--ignore-certificate-errors-spki-list=${tls.spkiHash}`] });
});

after(async () => {
    await browser?.close();
    await new Promise((r) => (proxy ? proxy.close(r) : r()));
    await app?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const shop = (page, fn, ...args) => page.evaluate(({ fn, args }) => window.shop[fn](...args), { fn, args });

async function waitFor(what, check, timeoutMs = 15_000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const found = check();
        if (found) return found;
        if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
        await sleep(100);
    }
}

test("the shop binds a signed-in session to the browser's key and refreshes it bound", { timeout: TEST_TIMEOUT }, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const cdp = await context.newCDPSession(page);
    const events = [];
    cdp.on("Network.deviceBoundSessionEventOccurred", (e) => events.push(e));
    await cdp.send("Network.enable");
    await cdp.send("Network.enableDeviceBoundSessions", { enable: true });

    // The first page mints a guest session (cookie mode) and offers registration: the
    // browser binds the guest to a new key.
    await page.goto(`${app.origin}/`);
    await page.evaluate(() => window.shop.rendered);
    const created = await waitFor("a device-bound session", () =>
        events.find((e) => e.creationEventDetails && e.succeeded));
    assert.equal(created.creationEventDetails.fetchResult, "Success");
    const sessionId = created.sessionId;
    assert.ok(sessionId);
    const register = seen.find((r) => r.path === "/auth/session/dbsc/register");
    assert.ok(register, "the registration request reached the server");
    assert.match(register.headers["secure-session-response"], /^"?[\w-]+\.[\w-]+\.[\w-]+"?$/);
    const guest = await shop(page, "whoami");
    assert.equal(guest.body.isAnonymous, true);

    // Sign-in carries the binding to the signed-in session (no new registration): the guest's
    // cookie is gone, so before the next request the browser refreshes its bound session with
    // a proof and gets the signed-in configuration.
    const login = await shop(page, "login", "dbsc-user");
    assert.equal(login.status, 200, JSON.stringify(login));
    const signedIn = await shop(page, "whoami");
    assert.equal(signedIn.body.userId, "dbsc-user", JSON.stringify(signedIn));
    await waitFor(() => `a bound refresh after sign-in: ${JSON.stringify({
        events: events.map((e) => JSON.stringify(e).slice(0, 300)),
        seen: seen.map((r) => [r.method, r.path, !!r.headers["secure-session-response"], r.status, r.answer, r.headers["sec-secure-session-id"], (r.headers.cookie ?? "").replace(/=[^;]+/g, "")]),
    })}`, () =>
        events.find((e) => e.refreshEventDetails && e.succeeded && e.sessionId === sessionId));
    assert.equal(seen.filter((r) => r.path === "/auth/session/dbsc/register").length, 1);

    // The bound cookie expires with its token (3 s); the next request in scope waits for a
    // bound refresh, and the page is still signed in.
    const before = seen.length;
    await sleep((ACCESS_TOKEN_SECS + 1) * 1000);
    const me = await shop(page, "whoami");
    assert.equal(me.status, 200, JSON.stringify(me));
    assert.equal(me.body.userId, "dbsc-user", JSON.stringify(me));
    const later = seen.slice(before);
    const refreshes = later.filter((r) => r.path === "/auth/session/refresh/dbsc");
    assert.ok(refreshes.some((r) => r.headers["secure-session-response"]),
        `a bound refresh with a proof: ${JSON.stringify(later.map((r) => r.path))}`);
    assert.ok(refreshes.every((r) => (r.headers["sec-secure-session-id"] ?? "").includes(sessionId)));
    // The plain refresh was never used for the bound session (the SDK's first-visit call,
    // before any sign-in, carries no refresh token).
    const plainBound = seen.filter((r) => r.path === "/auth/session/refresh"
        && (r.headers.cookie ?? "").includes("sRefreshToken="));
    assert.equal(plainBound.length, 0, "the page never needed the plain refresh");
    await context.close();
});
