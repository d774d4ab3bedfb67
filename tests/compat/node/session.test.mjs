// supertokens-node 24 (session recipe, no HTTP framework) against `tessera serve`: create,
// local verification through the JWKS, verification with a database check, refresh, theft,
// revocation, listing, data and payload updates, regenerate, and the JWT recipe.
// Every test also checks which core APIs the SDK called. See helper.mjs for the environment.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Session from "supertokens-node/recipe/session/index.js";
import {
  startCore,
  createApp,
  removeApp,
  initSdk,
  recordCoreCalls,
  newUser,
  decodeJwt,
  sha256hex,
  rejectsWith,
  sleep,
  coreApi,
} from "./helper.mjs";

const ISS = "http://localhost:3001/auth";
let core;
let appId;
let calls;

before(async () => {
  core = await startCore();
  // A 1 s grace window keeps the tests fast: inside it a late tab's old refresh token is a
  // concurrent refresh, not theft; after it, reuse is theft.
  appId = await createApp(core.url, { access_token_validity: 60, refresh_token_rotation_grace_period: 1 });
  calls = recordCoreCalls(core.url);
  initSdk({ coreUrl: core.url, appId, recipeList: [Session.init({ antiCsrf: "NONE" })] });
});

after(async () => {
  if (appId) await removeApp(core.url, appId);
  if (core) await core.stop();
});

async function create(uid = newUser(), payload = {}, data = {}) {
  const s = await Session.createNewSessionWithoutRequestResponse("public", uid, payload, data);
  calls.take();
  return { s, uid, tokens: s.getAllSessionTokensDangerously() };
}

test("create: a v5 access token signed by a dynamic key, a V2 refresh token, the session row", async () => {
  const uid = newUser();
  const s = await Session.createNewSessionWithoutRequestResponse("public", uid, { role: "admin" }, { n: 1 });
  assert.deepEqual(calls.take(), [
    { call: "GET /user/id", query: { userId: uid.getAsString() } },
    {
      call: "POST /public/recipe/session",
      body: {
        userId: uid.getAsString(),
        userDataInJWT: { role: "admin", iss: ISS },
        userDataInDatabase: { n: 1 },
        useDynamicSigningKey: true,
        enableAntiCsrf: false,
      },
    },
  ]);
  const t = s.getAllSessionTokensDangerously();
  assert.match(t.refreshToken, /^[A-Za-z0-9+/=]+\.[0-9a-f]{64}\.V2$/);
  assert.equal(t.antiCsrfToken, undefined);
  const { header, payload } = decodeJwt(t.accessToken);
  assert.deepEqual(Object.keys(header).sort(), ["alg", "kid", "typ", "version"]);
  assert.equal(header.alg, "RS256");
  assert.equal(header.typ, "JWT");
  assert.equal(header.version, "5");
  assert.match(header.kid, /^d-\d{13}$/);
  assert.deepEqual(payload, {
    sub: uid.getAsString(),
    rsub: uid.getAsString(),
    tId: "public",
    exp: payload.iat + 60,
    iat: payload.iat,
    sessionHandle: s.getHandle(),
    refreshTokenHash1: sha256hex(t.refreshToken),
    parentRefreshTokenHash1: null,
    antiCsrfToken: null,
    iss: ISS,
    role: "admin",
  });
  assert.ok(Math.abs(payload.iat * 1000 - Date.now()) < 5000);
  const info = await Session.getSessionInformation(s.getHandle());
  assert.deepEqual(calls.takeNames(), ["GET /recipe/session"]);
  assert.equal(info.sessionHandle, s.getHandle());
  assert.equal(info.userId, uid.getAsString());
  assert.equal(info.recipeUserId.getAsString(), uid.getAsString());
  assert.equal(info.tenantId, "public");
  assert.deepEqual(info.sessionDataInDatabase, { n: 1 });
  assert.deepEqual(info.customClaimsInAccessTokenPayload, { role: "admin", iss: ISS });
  assert.equal(info.expiry - info.timeCreated, 144000 * 60 * 1000, "refresh_token_validity 100 days");
});

test("verify locally through the JWKS: no core call; a forged token is TRY_REFRESH_TOKEN", async () => {
  const { s, uid, tokens } = await create(undefined, { role: "admin" });
  const v = await Session.getSessionWithoutRequestResponse(tokens.accessToken);
  assert.equal(v.getHandle(), s.getHandle());
  assert.equal(v.getUserId(), uid.getAsString());
  assert.equal(v.getTenantId(), "public");
  assert.equal(v.getAccessTokenPayload().role, "admin");
  assert.equal(v.getAllSessionTokensDangerously().accessAndFrontTokenUpdated, false);
  assert.deepEqual(calls.take(), [], "answered from the JWKS alone");

  const [h, p, sig] = tokens.accessToken.split(".");
  const claims = JSON.parse(Buffer.from(p, "base64url"));
  const forgedPayload = Buffer.from(JSON.stringify({ ...claims, role: "root" })).toString("base64url");
  await rejectsWith(
    Session.getSessionWithoutRequestResponse(`${h}.${forgedPayload}.${sig}`),
    Session.Error.TRY_REFRESH_TOKEN,
  );
  const unknownKid = Buffer.from(JSON.stringify({ ...decodeJwt(tokens.accessToken).header, kid: "d-1" })).toString(
    "base64url",
  );
  await rejectsWith(
    Session.getSessionWithoutRequestResponse(`${unknownKid}.${p}.${sig}`),
    Session.Error.TRY_REFRESH_TOKEN,
  );
  assert.deepEqual(calls.take(), [], "signature failures never reach the core");
});

test("verify with a database check: the core answers; a revoked session is UNAUTHORISED there only", async () => {
  const { s, tokens } = await create(undefined, { role: "admin" });
  const v = await Session.getSessionWithoutRequestResponse(tokens.accessToken, undefined, { checkDatabase: true });
  assert.deepEqual(calls.take(), [
    {
      call: "POST /recipe/session/verify",
      body: { accessToken: tokens.accessToken, doAntiCsrfCheck: true, enableAntiCsrf: false, checkDatabase: true },
    },
  ]);
  assert.equal(v.getHandle(), s.getHandle());
  assert.equal(v.getAllSessionTokensDangerously().accessAndFrontTokenUpdated, false, "nothing changed: no new token");

  assert.equal(await Session.revokeSession(s.getHandle()), true);
  calls.take();
  await rejectsWith(
    Session.getSessionWithoutRequestResponse(tokens.accessToken, undefined, { checkDatabase: true }),
    Session.Error.UNAUTHORISED,
  );
  assert.deepEqual(calls.takeNames(), ["POST /recipe/session/verify"]);
  const local = await Session.getSessionWithoutRequestResponse(tokens.accessToken);
  assert.equal(local.getHandle(), s.getHandle(), "a stateless check cannot see the revocation");
  assert.deepEqual(calls.take(), []);
});

test("refresh: a child token pair; its first access token promotes it through the core", async () => {
  const { s, tokens: t0 } = await create(undefined, { role: "admin" }, { k: 1 });
  const r1 = await Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true);
  assert.deepEqual(calls.take(), [
    {
      call: "POST /recipe/session/refresh",
      body: { refreshToken: t0.refreshToken, enableAntiCsrf: false, useDynamicSigningKey: true },
    },
  ]);
  const t1 = r1.getAllSessionTokensDangerously();
  assert.equal(r1.getHandle(), s.getHandle());
  assert.notEqual(t1.refreshToken, t0.refreshToken);
  const c1 = decodeJwt(t1.accessToken).payload;
  assert.equal(c1.refreshTokenHash1, sha256hex(t1.refreshToken));
  assert.equal(c1.parentRefreshTokenHash1, sha256hex(t0.refreshToken));
  assert.equal(c1.role, "admin");
  assert.equal(c1.exp - c1.iat, 60);

  // A parent hash in the token makes node ask the core, which promotes the child and mints a
  // token without parent; that one is then verified locally.
  const v1 = await Session.getSessionWithoutRequestResponse(t1.accessToken);
  assert.deepEqual(calls.takeNames(), ["POST /recipe/session/verify"]);
  const promoted = v1.getAllSessionTokensDangerously();
  assert.equal(promoted.accessAndFrontTokenUpdated, true);
  const c1b = decodeJwt(promoted.accessToken).payload;
  assert.equal(c1b.parentRefreshTokenHash1, null);
  assert.equal(c1b.refreshTokenHash1, c1.refreshTokenHash1);
  assert.equal(c1b.sessionHandle, s.getHandle());
  const v2 = await Session.getSessionWithoutRequestResponse(promoted.accessToken);
  assert.equal(v2.getAllSessionTokensDangerously().accessAndFrontTokenUpdated, false);
  assert.deepEqual(calls.take(), []);

  // The promoted child refreshes; session data survives.
  const r2 = await Session.refreshSessionWithoutRequestResponse(t1.refreshToken, true);
  assert.equal(r2.getHandle(), s.getHandle());
  assert.deepEqual((await Session.getSessionInformation(s.getHandle())).sessionDataInDatabase, { k: 1 });
});

test("theft: refresh RT0→RT1, use RT1's access token (promotes), then RT0 again → TOKEN_THEFT_DETECTED", async () => {
  const { s, uid, tokens: t0 } = await create();
  const r1 = await Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true);
  const t1 = r1.getAllSessionTokensDangerously();
  const v1 = await Session.getSessionWithoutRequestResponse(t1.accessToken);
  assert.equal(v1.getAllSessionTokensDangerously().accessAndFrontTokenUpdated, true);
  await sleep(1_100); // past the grace window
  calls.take();
  const e = await rejectsWith(
    Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true),
    Session.Error.TOKEN_THEFT_DETECTED,
  );
  assert.equal(e.payload.sessionHandle, s.getHandle());
  assert.equal(e.payload.userId, uid.getAsString());
  assert.equal(e.payload.recipeUserId.getAsString(), uid.getAsString());
  assert.deepEqual(calls.takeNames(), ["POST /recipe/session/refresh"]);
  // Tessera revokes the session when it detects theft: the legitimate holder is logged out too.
  assert.equal(await Session.getSessionInformation(s.getHandle()), undefined);
  await rejectsWith(Session.refreshSessionWithoutRequestResponse(t1.refreshToken, true), Session.Error.UNAUTHORISED);
  await rejectsWith(
    Session.getSessionWithoutRequestResponse(t1.accessToken, undefined, { checkDatabase: true }),
    Session.Error.UNAUTHORISED,
  );
});

test("theft: a grandparent refresh token (RT0 after RT1 and RT2 were used) is TOKEN_THEFT_DETECTED", async () => {
  const { s, tokens: t0 } = await create();
  const t1 = (await Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true)).getAllSessionTokensDangerously();
  const t2 = (await Session.refreshSessionWithoutRequestResponse(t1.refreshToken, true)).getAllSessionTokensDangerously();
  assert.ok(t2.refreshToken);
  await sleep(1_100); // RT0 is the previous token: theft once the window has passed
  const e = await rejectsWith(
    Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true),
    Session.Error.TOKEN_THEFT_DETECTED,
  );
  assert.equal(e.payload.sessionHandle, s.getHandle());
});

test("tabs: refreshing twice with the current token is no theft and answers one child (grace window); it stays usable, the parent is theft after the window", async () => {
  const { s, tokens: t0 } = await create();
  const a = (await Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true)).getAllSessionTokensDangerously();
  const b = (await Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true)).getAllSessionTokensDangerously();
  // Lineage v2: with a grace window children are derived from their parent, so both tabs get
  // the same child (no siblings); with grace 0 they would differ.
  assert.equal(a.refreshToken, b.refreshToken);
  // Neither child was used, so the parent is still current: a retry is fine.
  const c = (await Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true)).getAllSessionTokensDangerously();
  assert.ok(c.refreshToken);
  // Child a is used (promoted); tab b's copy keeps refreshing …
  await Session.getSessionWithoutRequestResponse(a.accessToken);
  const fromB = await Session.refreshSessionWithoutRequestResponse(b.refreshToken, true);
  assert.equal(fromB.getHandle(), s.getHandle());
  // … and once the window has passed, their parent (whose successor was promoted) is theft.
  await sleep(1_100);
  await rejectsWith(Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true), Session.Error.TOKEN_THEFT_DETECTED);
});

test("list and revoke: getAllSessionHandlesForUser, revokeSession, revokeMultipleSessions, revokeAllSessionsForUser", async () => {
  const uid = newUser();
  const sessions = [];
  for (let i = 0; i < 4; i++) sessions.push((await create(uid)).s.getHandle());
  const other = (await create()).s.getHandle();
  const handles = await Session.getAllSessionHandlesForUser(uid.getAsString());
  assert.deepEqual(calls.take(), [
    {
      call: "GET /recipe/session/user",
      query: { userId: uid.getAsString(), fetchSessionsForAllLinkedAccounts: "true", fetchAcrossAllTenants: "true" },
    },
  ]);
  assert.deepEqual([...handles].sort(), [...sessions].sort());
  assert.deepEqual(await Session.getAllSessionHandlesForUser(`nobody-${Date.now()}`), []);
  calls.take();

  assert.equal(await Session.revokeSession(sessions[0]), true);
  assert.deepEqual(calls.take(), [{ call: "POST /recipe/session/remove", body: { sessionHandles: [sessions[0]] } }]);
  assert.equal(await Session.revokeSession(sessions[0]), false, "already gone");
  assert.equal(await Session.getSessionInformation(sessions[0]), undefined);

  const multi = await Session.revokeMultipleSessions([sessions[1], "no-such-handle"]);
  assert.deepEqual(multi, [sessions[1]]);

  calls.take();
  const revoked = await Session.revokeAllSessionsForUser(uid.getAsString());
  assert.deepEqual(calls.take(), [
    {
      call: "POST /recipe/session/remove",
      body: { userId: uid.getAsString(), revokeSessionsForLinkedAccounts: true, revokeAcrossAllTenants: true },
    },
  ]);
  assert.deepEqual([...revoked].sort(), [sessions[2], sessions[3]].sort());
  assert.deepEqual(await Session.getAllSessionHandlesForUser(uid.getAsString()), []);
  assert.deepEqual(await Session.revokeAllSessionsForUser(uid.getAsString()), []);
  assert.notEqual(await Session.getSessionInformation(other), undefined, "other users keep their sessions");
});

test("session data: updateSessionDataInDatabase replaces it; unknown handles give false", async () => {
  const { s } = await create(undefined, {}, { a: 1, nested: { x: [1, 2] } });
  assert.equal(await Session.updateSessionDataInDatabase(s.getHandle(), { k: "v", n: null }), true);
  assert.deepEqual(calls.take(), [
    { call: "PUT /recipe/session/data", body: { sessionHandle: s.getHandle(), userDataInDatabase: { k: "v", n: null } } },
  ]);
  assert.deepEqual((await Session.getSessionInformation(s.getHandle())).sessionDataInDatabase, { k: "v", n: null });
  assert.equal(await Session.updateSessionDataInDatabase("no-such-handle", {}), false);
  await Session.revokeSession(s.getHandle());
  assert.equal(await Session.updateSessionDataInDatabase(s.getHandle(), { k: 2 }), false);
});

test("payload by handle: mergeIntoAccessTokenPayload stores claims; a database-checked verify reissues the token", async () => {
  const { s, tokens } = await create(undefined, { a: 1, drop: true });
  assert.equal(await Session.mergeIntoAccessTokenPayload(s.getHandle(), { team: "x", drop: null }), true);
  assert.deepEqual(calls.take(), [
    { call: "GET /recipe/session", query: { sessionHandle: s.getHandle() } },
    { call: "PUT /recipe/jwt/data", body: { sessionHandle: s.getHandle(), userDataInJWT: { a: 1, iss: ISS, team: "x" } } },
  ]);
  const info = await Session.getSessionInformation(s.getHandle());
  assert.deepEqual(info.customClaimsInAccessTokenPayload, { a: 1, iss: ISS, team: "x" });
  // The token in hand is unchanged (no token is minted) …
  const local = await Session.getSessionWithoutRequestResponse(tokens.accessToken);
  assert.equal(local.getAccessTokenPayload().team, undefined);
  // … until a database-checked verify sees the stored payload differ and mints a new one.
  const checked = await Session.getSessionWithoutRequestResponse(tokens.accessToken, undefined, { checkDatabase: true });
  const updated = checked.getAllSessionTokensDangerously();
  assert.equal(updated.accessAndFrontTokenUpdated, true);
  const claims = decodeJwt(updated.accessToken).payload;
  assert.equal(claims.team, "x");
  assert.equal(claims.a, 1);
  assert.equal("drop" in claims, false);
  assert.equal(await Session.mergeIntoAccessTokenPayload("no-such-handle", { x: 1 }), false);
});

test("regenerate: session.mergeIntoAccessTokenPayload mints a token with the same expiry and lineage", async () => {
  const { s, tokens } = await create(undefined, { a: 1, drop: "me" });
  const before = decodeJwt(tokens.accessToken).payload;
  await s.mergeIntoAccessTokenPayload({ plan: "pro", drop: null });
  assert.deepEqual(calls.take(), [
    {
      call: "POST /recipe/session/regenerate",
      body: { accessToken: tokens.accessToken, userDataInJWT: { iss: ISS, a: 1, plan: "pro" } },
    },
  ]);
  const fresh = s.getAllSessionTokensDangerously();
  assert.equal(fresh.accessAndFrontTokenUpdated, true);
  assert.notEqual(fresh.accessToken, tokens.accessToken);
  const { drop, ...kept } = before;
  assert.equal(drop, "me");
  assert.deepEqual(s.getAccessTokenPayload(), { ...kept, plan: "pro", iat: s.getAccessTokenPayload().iat });
  const after = decodeJwt(fresh.accessToken).payload;
  assert.equal(after.exp, before.exp, "regenerate keeps the expiry");
  assert.equal(after.refreshTokenHash1, before.refreshTokenHash1);
  assert.equal(after.parentRefreshTokenHash1, null);
  assert.equal(after.sessionHandle, s.getHandle());
  assert.equal("drop" in after, false);
  const v = await Session.getSessionWithoutRequestResponse(fresh.accessToken);
  assert.equal(v.getAccessTokenPayload().plan, "pro");
  assert.deepEqual((await Session.getSessionInformation(s.getHandle())).customClaimsInAccessTokenPayload, {
    iss: ISS,
    a: 1,
    plan: "pro",
  });
  // A revoked session cannot be regenerated.
  await Session.revokeSession(s.getHandle());
  await rejectsWith(s.mergeIntoAccessTokenPayload({ more: 1 }), Session.Error.UNAUTHORISED);
});

test("JWT recipe: createJWT signs with the static key listed by getJWKS", async () => {
  const r = await Session.createJWT({ hello: "world" }, 60);
  assert.equal(r.status, "OK");
  const { header, payload } = decodeJwt(r.jwt);
  assert.equal(header.alg, "RS256");
  assert.equal(header.typ, "JWT");
  assert.match(header.kid, /^s-/);
  assert.equal(payload.hello, "world");
  assert.equal(payload.iss, ISS, "jwksDomain: apiDomain + apiBasePath");
  assert.equal(payload.exp - payload.iat, 60);
  const jwks = await Session.getJWKS();
  assert.ok(jwks.keys.some((k) => k.kid === header.kid));
  assert.ok(jwks.keys.some((k) => k.kid.startsWith("d-")));
  // Access-token (and JWT-recipe) keys only: Tessera's anonymous-token key is published apart,
  // so a gateway checking signatures against this set is never handed an anonymous token
  // (SEC2-L3).
  for (const k of jwks.keys) {
    assert.deepEqual(Object.keys(k).sort(), ["alg", "e", "kid", "kty", "n", "use"]);
    assert.equal(k.alg, "RS256");
    assert.equal(k.kty, "RSA");
    assert.equal(k.use, "sig");
    assert.match(k.kid, /^[ds]-/);
  }
  const anonymous = await coreApi(core.url, appId, "GET", "/.well-known/anonymous-jwks.json");
  assert.equal(anonymous.keys.length, 1);
  const [a] = anonymous.keys;
  assert.deepEqual(Object.keys(a).sort(), ["alg", "crv", "kid", "kty", "use", "x"]);
  assert.match(a.kid, /^a-/);
  assert.equal(a.alg, "EdDSA");
  assert.equal(a.kty, "OKP");
  assert.equal(a.crv, "Ed25519");
  assert.ok(jwks.validityInSeconds > 0);
});
