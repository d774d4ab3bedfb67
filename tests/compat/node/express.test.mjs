// An express app with supertokens-node 24 (middleware, verifySession, errorHandler) in front of
// `tessera serve`, driven over real HTTP on 127.0.0.1 the way a browser in cookie mode would:
// fetch with a hand-kept cookie jar (Path respected, cleared cookies dropped).
// Access tokens live 4 s in this app so that expiry can be observed.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import express from "express";
import Session from "supertokens-node/recipe/session/index.js";
import { middleware, errorHandler } from "supertokens-node/framework/express/index.js";
import { verifySession } from "supertokens-node/recipe/session/framework/express/index.js";
import supertokens from "supertokens-node";
import { startCore, createApp, removeApp, initSdk, decodeJwt, sleep } from "./helper.mjs";

const ACCESS_TOKEN_VALIDITY_S = 4;
let core;
let appId;
let server;
let base;

/** A browser's cookie store, reduced to what these tests need. */
class CookieJar {
  constructor(entries = []) {
    this.cookies = new Map(entries);
  }

  clone() {
    return new CookieJar([...this.cookies].map(([k, v]) => [k, { ...v }]));
  }

  /** Applies a response's Set-Cookie headers; returns them parsed, by name. */
  store(response) {
    const set = {};
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrParts] = line.split(";").map((s) => s.trim());
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq);
      const value = decodeURIComponent(pair.slice(eq + 1));
      const attrs = {};
      for (const a of attrParts) {
        const i = a.indexOf("=");
        attrs[(i < 0 ? a : a.slice(0, i)).toLowerCase()] = i < 0 ? true : a.slice(i + 1);
      }
      const expired =
        value === "" ||
        (attrs.expires !== undefined && Date.parse(attrs.expires) <= Date.now()) ||
        (attrs["max-age"] !== undefined && Number(attrs["max-age"]) <= 0);
      set[name] = { value, attrs, expired };
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, { value, path: attrs.path ?? "/" });
    }
    return set;
  }

  header(path) {
    return [...this.cookies]
      .filter(([, c]) => c.path === "/" || path === c.path || path.startsWith(`${c.path}/`))
      .map(([name, c]) => `${name}=${encodeURIComponent(c.value)}`)
      .join("; ");
  }

  get(name) {
    return this.cookies.get(name)?.value;
  }
}

/** One HTTP request to the express app with the jar's cookies; updates the jar. */
async function call(jar, method, path, { body, headers = {} } = {}) {
  const cookie = jar.header(path);
  const r = await fetch(`${base}${path}`, {
    method,
    redirect: "manual",
    headers: {
      ...(cookie ? { cookie } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const setCookies = jar.store(r);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text, headers: r.headers, setCookies };
}

async function login(userId) {
  const jar = new CookieJar();
  // The frontend SDK in cookie mode announces it with st-auth-mode.
  const r = await call(jar, "POST", "/login", { body: { userId }, headers: { "st-auth-mode": "cookie" } });
  assert.equal(r.status, 200, r.text);
  return { jar, r };
}

const frontToken = (headers) => JSON.parse(Buffer.from(headers.get("front-token"), "base64").toString("utf8"));

/** Waits until the access token in the jar has expired (by its exp claim). */
async function waitForExpiry(jar) {
  const { exp } = decodeJwt(jar.get("sAccessToken")).payload;
  await sleep(Math.max(0, exp * 1000 - Date.now()) + 50);
}

before(async () => {
  core = await startCore();
  // 1 s grace window: a replay inside it is a late concurrent refresh, after it theft.
  appId = await createApp(core.url, {
    access_token_validity: ACCESS_TOKEN_VALIDITY_S,
    refresh_token_rotation_grace_period: 1,
  });
  server = http.createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  base = `http://127.0.0.1:${server.address().port}`;
  initSdk({ coreUrl: core.url, appId, apiDomain: base, recipeList: [Session.init()] });

  const app = express();
  app.use(express.json());
  app.use(middleware());
  app.post("/login", async (req, res, next) => {
    try {
      const s = await Session.createNewSession(
        req,
        res,
        "public",
        supertokens.convertToRecipeUserId(req.body.userId),
        { role: "user" },
        { loggedInFrom: "express" },
      );
      res.json({ handle: s.getHandle() });
    } catch (e) {
      next(e);
    }
  });
  app.get("/protected", verifySession(), (req, res) => {
    const s = req.session;
    res.json({ userId: s.getUserId(), handle: s.getHandle(), role: s.getAccessTokenPayload().role });
  });
  app.get("/protected-db", verifySession({ checkDatabase: true }), (req, res) => {
    res.json({ handle: req.session.getHandle() });
  });
  app.use(errorHandler());
  app.use((err, req, res, _next) => {
    res.status(500).json({ error: String(err) });
  });
  server.on("request", app);
});

after(async () => {
  if (server) await new Promise((ok) => server.close(ok));
  if (appId) await removeApp(core.url, appId);
  if (core) await core.stop();
});

test("login: Set-Cookie sAccessToken (Path=/) and sRefreshToken (Path=/auth/session/refresh), front-token", async () => {
  const { jar, r } = await login("alice");
  assert.deepEqual(Object.keys(r.setCookies).sort(), ["sAccessToken", "sRefreshToken"]);
  const at = r.setCookies.sAccessToken;
  const rt = r.setCookies.sRefreshToken;
  assert.equal(at.attrs.path, "/");
  assert.equal(rt.attrs.path, "/auth/session/refresh");
  for (const c of [at, rt]) {
    assert.equal(c.attrs.httponly, true);
    assert.equal(c.attrs.samesite, "Lax");
    assert.equal(c.attrs.secure, undefined, "http apiDomain: not Secure");
    assert.equal(c.expired, false);
  }
  assert.match(rt.value, /\.V2$/);
  const claims = decodeJwt(at.value);
  assert.match(claims.header.kid, /^d-/);
  assert.equal(claims.payload.sub, "alice");
  assert.equal(claims.payload.role, "user");
  assert.equal(claims.payload.exp - claims.payload.iat, ACCESS_TOKEN_VALIDITY_S);
  assert.equal(claims.payload.sessionHandle, r.json.handle);
  const ft = frontToken(r.headers);
  assert.equal(ft.uid, "alice");
  assert.equal(ft.ate, claims.payload.exp * 1000);
  assert.equal(ft.up.sessionHandle, r.json.handle);
  assert.match(r.headers.get("access-control-expose-headers"), /front-token/);
  assert.equal(r.headers.get("st-access-token"), null, "cookie mode: no header tokens");
  assert.equal(jar.header("/protected"), `sAccessToken=${encodeURIComponent(at.value)}`);
  const info = await Session.getSessionInformation(r.json.handle);
  assert.deepEqual(info.sessionDataInDatabase, { loggedInFrom: "express" });
});

test("verifySession: 200 with the cookie; 401 unauthorised without; 401 try refresh token once expired", async () => {
  const { jar, r: loggedIn } = await login("bob");
  const ok = await call(jar, "GET", "/protected");
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json, { userId: "bob", handle: loggedIn.json.handle, role: "user" });
  assert.deepEqual(ok.setCookies, {}, "a valid token is not reissued");
  const okDb = await call(jar, "GET", "/protected-db");
  assert.equal(okDb.status, 200);
  assert.deepEqual(okDb.json, { handle: loggedIn.json.handle });

  const none = await call(new CookieJar(), "GET", "/protected");
  assert.equal(none.status, 401);
  assert.deepEqual(none.json, { message: "unauthorised" });

  const garbage = await call(new CookieJar([["sAccessToken", { value: "not-a-jwt", path: "/" }]]), "GET", "/protected");
  assert.equal(garbage.status, 401);
  assert.deepEqual(garbage.json, { message: "unauthorised" });

  await waitForExpiry(jar);
  const expired = await call(jar, "GET", "/protected");
  assert.equal(expired.status, 401);
  assert.deepEqual(expired.json, { message: "try refresh token" });
  assert.deepEqual(expired.setCookies, {}, "try-refresh keeps the cookies");
});

test("refresh over HTTP: new cookies and front-token; the next request promotes; signout clears everything", async () => {
  const { jar, r: loggedIn } = await login("carol");
  const handle = loggedIn.json.handle;
  const firstAccess = jar.get("sAccessToken");
  const firstRefresh = jar.get("sRefreshToken");
  await waitForExpiry(jar);
  assert.equal((await call(jar, "GET", "/protected")).status, 401);

  // The refresh cookie is sent only to the refresh path.
  assert.match(jar.header("/auth/session/refresh"), /sRefreshToken=/);
  assert.doesNotMatch(jar.header("/protected"), /sRefreshToken=/);
  const refreshed = await call(jar, "POST", "/auth/session/refresh");
  assert.equal(refreshed.status, 200, refreshed.text);
  assert.deepEqual(refreshed.json, {});
  assert.deepEqual(Object.keys(refreshed.setCookies).sort(), ["sAccessToken", "sRefreshToken"]);
  assert.notEqual(jar.get("sAccessToken"), firstAccess);
  assert.notEqual(jar.get("sRefreshToken"), firstRefresh);
  const child = decodeJwt(jar.get("sAccessToken")).payload;
  assert.equal(child.sessionHandle, handle);
  assert.equal(typeof child.parentRefreshTokenHash1, "string");
  assert.equal(frontToken(refreshed.headers).uid, "carol");
  assert.equal(frontToken(refreshed.headers).ate, child.exp * 1000);

  // First use of the child: node asks the core, which promotes it and mints a parentless token.
  const promoted = await call(jar, "GET", "/protected");
  assert.equal(promoted.status, 200, promoted.text);
  assert.deepEqual(Object.keys(promoted.setCookies), ["sAccessToken"]);
  assert.ok(promoted.headers.get("front-token"));
  assert.equal(decodeJwt(jar.get("sAccessToken")).payload.parentRefreshTokenHash1, null);
  const steady = await call(jar, "GET", "/protected");
  assert.equal(steady.status, 200);
  assert.deepEqual(steady.setCookies, {});

  const out = await call(jar, "POST", "/auth/signout");
  assert.equal(out.status, 200, out.text);
  assert.deepEqual(out.json, { status: "OK" });
  assert.deepEqual(Object.keys(out.setCookies).sort(), ["sAccessToken", "sRefreshToken"]);
  assert.ok(out.setCookies.sAccessToken.expired && out.setCookies.sRefreshToken.expired);
  assert.equal(out.headers.get("front-token"), "remove");
  assert.equal(jar.cookies.size, 0);
  assert.equal(await Session.getSessionInformation(handle), undefined, "revoked in the core");
  assert.equal((await call(jar, "GET", "/protected")).status, 401);
});

test("theft over HTTP: replaying the old refresh cookie after the new one was used → 401 token theft detected", async () => {
  const { jar, r: loggedIn } = await login("dave");
  const stolen = jar.clone();
  const refreshed = await call(jar, "POST", "/auth/session/refresh");
  assert.equal(refreshed.status, 200);
  assert.equal((await call(jar, "GET", "/protected")).status, 200, "uses (promotes) the new refresh token");

  await sleep(1_100); // past the grace window
  const replay = await call(stolen, "POST", "/auth/session/refresh");
  assert.equal(replay.status, 401);
  assert.deepEqual(replay.json, { message: "token theft detected" });
  assert.ok(replay.setCookies.sAccessToken.expired && replay.setCookies.sRefreshToken.expired);
  assert.equal(await Session.getSessionInformation(loggedIn.json.handle), undefined, "session revoked");
  // The legitimate holder's refresh token died with the session.
  const legit = await call(jar, "POST", "/auth/session/refresh");
  assert.equal(legit.status, 401);
  assert.deepEqual(legit.json, { message: "unauthorised" });
  // The old access token still passes a local check, but not one against the database.
  const oldAccess = new CookieJar([["sAccessToken", { value: loggedIn.setCookies.sAccessToken.value, path: "/" }]]);
  assert.equal((await call(oldAccess.clone(), "GET", "/protected")).status, 200);
  const checked = await call(oldAccess, "GET", "/protected-db");
  assert.equal(checked.status, 401);
  assert.deepEqual(checked.json, { message: "unauthorised" });
});
