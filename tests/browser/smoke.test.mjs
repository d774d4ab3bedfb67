// Self-check of the browser harness: Debian Chromium + the stock supertokens-website SDK against
// a tiny Node server on 127.0.0.1 that plays the backend of a browser with no session.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { after, before, test } from "node:test";
import { cookiesOf, freePort, launchBrowser, startServer, supertokensWebsiteBundlePath, testPageScriptPaths } from "./harness.mjs";

const indexHtml = readFileSync(new URL("./static/index.html", import.meta.url));
const bundle = readFileSync(supertokensWebsiteBundlePath());

const requests = []; // {method, path, headers} of every request the server saw
let server;
let origin;
let browser;
const profilesBefore = chromiumProfiles();

function chromiumProfiles() {
    return new Set(readdirSync(tmpdir()).filter((n) => n.startsWith("playwright_chromiumdev_profile-")));
}

before(async () => {
    server = createServer((req, res) => {
        const path = new URL(req.url, "http://x").pathname;
        requests.push({ method: req.method, path, headers: req.headers });
        if (req.method === "GET" && (path === "/" || path === "/index.html")) {
            res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(indexHtml);
        } else if (req.method === "GET" && path === "/st/bundle.js") {
            res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(bundle);
        } else if (req.method === "POST" && path === "/auth/session/refresh") {
            // No session: what a SuperTokens backend answers to a refresh without a refresh token.
            res.writeHead(401, { "content-type": "application/json", "front-token": "remove" });
            res.end(JSON.stringify({ message: "unauthorised" }));
        } else {
            res.writeHead(404).end();
        }
    });
    const port = await freePort();
    await new Promise((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${port}`;
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

test("stock SDK on a fresh browser: doesSessionExist() is false after one refresh call", async () => {
    const context = await browser.newContext();
    try {
        const page = await context.newPage();
        const pageErrors = [];
        page.on("pageerror", (e) => pageErrors.push(e.message));
        await page.goto(`${origin}/index.html`);

        const api = await page.evaluate(() => Object.keys(window.supertokens).sort());
        for (const fn of ["init", "doesSessionExist", "signOut", "attemptRefreshingSession", "getAccessTokenPayloadSecurely", "getUserId"]) {
            assert.ok(api.includes(fn), `window.supertokens.${fn} missing (has: ${api})`);
        }

        const refreshes = () => requests.filter((r) => r.path === "/auth/session/refresh");
        const exists = await page.evaluate(async (apiDomain) => {
            supertokens.init({ apiDomain, apiBasePath: "/auth" });
            return supertokens.doesSessionExist();
        }, origin);
        assert.equal(exists, false);
        assert.equal(refreshes().length, 1, "exactly one refresh call");
        const [refresh] = refreshes();
        assert.equal(refresh.method, "POST");
        assert.equal(refresh.headers.rid, "session");
        assert.equal(refresh.headers["st-auth-mode"], "cookie");
        assert.ok(refresh.headers["fdi-version"], "fdi-version header sent");

        // The 401 + `front-token: remove` leaves the state NOT_EXISTS: no further refresh.
        assert.equal(await page.evaluate(() => supertokens.doesSessionExist()), false);
        assert.equal(refreshes().length, 1, "no second refresh once the state is NOT_EXISTS");

        // The SDK records the answer in a frontend cookie (not httpOnly) on the page's host.
        const marker = (await cookiesOf(context, origin)).find((c) => c.name === "st-last-access-token-update");
        assert.ok(marker, "st-last-access-token-update cookie written");
        assert.equal(marker.httpOnly, false);
        assert.equal(marker.path, "/");
        assert.deepEqual(pageErrors, []);
    } finally {
        await context.close();
    }
});

test("local stand-ins for the official test page's CDN scripts load and define their globals", async () => {
    const page = await browser.newPage();
    try {
        await page.goto(`${origin}/index.html`);
        for (const path of Object.values(testPageScriptPaths())) await page.addScriptTag({ path });
        const seen = await page.evaluate(() => {
            let message = null;
            try {
                assert.strictEqual(1, 2);
            } catch (e) {
                message = e.name;
            }
            return { axios: typeof axios.create, mock: typeof AxiosMockAdapter, assert: typeof assert.deepStrictEqual, message };
        });
        assert.deepEqual(seen, { axios: "function", mock: "function", assert: "function", message: "AssertionError" });
    } finally {
        await page.close();
    }
});

test("startServer waits for readiness, reports early exits, and stop() ends the PID", async () => {
    // A child Node server standing in for a Rust example binary; `ignoreTerm` forces the SIGKILL path.
    const app = (ignoreTerm) => [
        "-e",
        `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ""}
         require('http').createServer((q, r) => r.end(q.url)).listen(+process.env.PORT, '127.0.0.1');`,
    ];
    for (const ignoreTerm of [false, true]) {
        const port = await freePort();
        const srv = await startServer({ cmd: process.execPath, args: app(ignoreTerm), env: { PORT: String(port) }, port, readyPath: "/ready", killTimeoutMs: 500 });
        try {
            assert.equal(srv.url, `http://127.0.0.1:${port}`);
            assert.equal(await (await fetch(`${srv.url}/hello`)).text(), "/hello");
        } finally {
            const { signal } = await srv.stop();
            assert.equal(signal, ignoreTerm ? "SIGKILL" : "SIGTERM");
        }
        assert.throws(() => process.kill(srv.pid, 0), { code: "ESRCH" });
    }
    await assert.rejects(
        startServer({ cmd: process.execPath, args: ["-e", "console.error('boom'); process.exit(3)"], port: await freePort() }),
        /exited early[\s\S]*boom/,
    );
});

test("closing the browser removes its temporary profile", async () => {
    await browser.close();
    browser = null;
    const left = [...chromiumProfiles()].filter((n) => !profilesBefore.has(n));
    assert.deepEqual(left, []);
});
