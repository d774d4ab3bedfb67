// Drives the real supertokens-node 24 SDK against a running `tessera serve`.
//
// TESSERA_URL=http://127.0.0.1:3567 uses a server you started; otherwise TESSERA_BIN (default
// ../../../target/debug/tessera) is started on a free port with a temporary SQLite file, or on
// PostgreSQL when TESSERA_DATABASE_URL is set.
// Run: npm ci && npm test

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { randomUUID } from "node:crypto";
import supertokens from "supertokens-node";
import Session from "supertokens-node/recipe/session/index.js";

const here = dirname(fileURLToPath(import.meta.url));
let server;
let baseUrl = process.env.TESSERA_URL;

async function startServer() {
  const bin = process.env.TESSERA_BIN ?? resolve(here, "../../../target/debug/tessera");
  const dir = mkdtempSync(join(tmpdir(), "tessera-node-"));
  // TESSERA_DATABASE_URL runs the same suite on PostgreSQL, in a schema of its own.
  const pg = process.env.TESSERA_DATABASE_URL;
  const storeArgs = pg
    ? ["--database-url", pg, "--database-schema", `tessera_test_${randomUUID().replaceAll("-", "")}`]
    : ["--sqlite-path", join(dir, "t.db")];
  server = spawn(bin, ["serve", "--port", "0", ...storeArgs], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, LOG_LEVEL: "warn", API_KEYS: "", POSTGRESQL_CONNECTION_URI: "" },
  });
  const lines = createInterface({ input: server.stdout });
  const line = await new Promise((ok, fail) => {
    server.once("exit", (code) => fail(new Error(`tessera exited with ${code}`)));
    lines.once("line", ok);
  });
  const m = /listening on (http:\/\/\S+)/.exec(line);
  assert.ok(m, `unexpected first line: ${line}`);
  return m[1];
}

// An isolated app with short token lifetimes, as the SDK test suites make them.
async function createApp(coreConfig) {
  const appId = `t-${randomUUID()}`;
  const r = await fetch(`${baseUrl}/recipe/multitenancy/app/v2`, {
    method: "PUT",
    headers: { "content-type": "application/json", "cdi-version": "5.4" },
    body: JSON.stringify({ appId, coreConfig }),
  });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: "OK", createdNew: true });
  return appId;
}

let appId;

before(async () => {
  if (!baseUrl) baseUrl = await startServer();
  appId = await createApp({ access_token_validity: 60 });
  supertokens.init({
    supertokens: { connectionURI: `${baseUrl}/appid-${appId}` },
    appInfo: {
      appName: "compat",
      apiDomain: "http://localhost:3001",
      websiteDomain: "http://localhost:3000",
    },
    recipeList: [Session.init({ antiCsrf: "NONE" })],
  });
});

after(async () => {
  const r = await fetch(`${baseUrl}/recipe/multitenancy/app/remove`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ appId }),
  });
  assert.deepEqual(await r.json(), { status: "OK", didExist: true });
  if (server) server.kill("SIGTERM");
});

const user = () => supertokens.convertToRecipeUserId(`user-${randomUUID()}`);

test("create, verify locally through the JWKS, read the session", async () => {
  const uid = user();
  const s = await Session.createNewSessionWithoutRequestResponse("public", uid, { role: "admin" }, { n: 1 });
  const tokens = s.getAllSessionTokensDangerously();
  assert.ok(tokens.accessToken && tokens.refreshToken);
  const v = await Session.getSessionWithoutRequestResponse(tokens.accessToken);
  assert.equal(v.getUserId(), uid.getAsString());
  assert.equal(v.getAccessTokenPayload().role, "admin");
  assert.equal(v.getTenantId(), "public");
  const info = await Session.getSessionInformation(s.getHandle());
  assert.equal(info.userId, uid.getAsString());
  assert.deepEqual(info.sessionDataInDatabase, { n: 1 });
  assert.ok(info.expiry > info.timeCreated);
  const checked = await Session.getSessionWithoutRequestResponse(tokens.accessToken, undefined, {
    checkDatabase: true,
  });
  assert.equal(checked.getHandle(), s.getHandle());
});

test("refresh promotes on first use, and replaying an old refresh token is theft", async () => {
  const s1 = await Session.createNewSessionWithoutRequestResponse("public", user(), {}, {});
  const t1 = s1.getAllSessionTokensDangerously();
  const s2 = await Session.refreshSessionWithoutRequestResponse(t1.refreshToken, true);
  const t2 = s2.getAllSessionTokensDangerously();
  assert.notEqual(t2.refreshToken, t1.refreshToken);
  // The first access token after a refresh carries a parent hash: node asks the core, which
  // promotes and hands back a new access token.
  const v2 = await Session.getSessionWithoutRequestResponse(t2.accessToken);
  assert.equal(v2.getHandle(), s1.getHandle());
  assert.equal(v2.getAllSessionTokensDangerously().accessAndFrontTokenUpdated, true);
  const s3 = await Session.refreshSessionWithoutRequestResponse(t2.refreshToken, true);
  assert.ok(s3.getAllSessionTokensDangerously().refreshToken);
  await assert.rejects(
    Session.refreshSessionWithoutRequestResponse(t1.refreshToken, true),
    (e) => {
      assert.equal(e.type, Session.Error.TOKEN_THEFT_DETECTED);
      assert.equal(e.payload.sessionHandle, s1.getHandle());
      return true;
    },
  );
});

test("revoke by handle and by user", async () => {
  const uid = user();
  const a = await Session.createNewSessionWithoutRequestResponse("public", uid, {}, {});
  const b = await Session.createNewSessionWithoutRequestResponse("public", uid, {}, {});
  const handles = await Session.getAllSessionHandlesForUser(uid.getAsString());
  assert.deepEqual([...handles].sort(), [a.getHandle(), b.getHandle()].sort());
  assert.equal(await Session.revokeSession(a.getHandle()), true);
  assert.equal(await Session.revokeSession(a.getHandle()), false);
  await assert.rejects(
    Session.getSessionWithoutRequestResponse(a.getAllSessionTokensDangerously().accessToken, undefined, {
      checkDatabase: true,
    }),
    (e) => e.type === Session.Error.UNAUTHORISED,
  );
  const revoked = await Session.revokeAllSessionsForUser(uid.getAsString());
  assert.deepEqual(revoked, [b.getHandle()]);
  assert.equal(await Session.getSessionInformation(b.getHandle()), undefined);
});

test("regenerate, payload and data updates", async () => {
  const s = await Session.createNewSessionWithoutRequestResponse("public", user(), { a: 1 }, {});
  await s.mergeIntoAccessTokenPayload({ plan: "pro" });
  assert.equal(s.getAccessTokenPayload().plan, "pro");
  assert.equal(s.getAccessTokenPayload().a, 1);
  const fresh = s.getAllSessionTokensDangerously().accessToken;
  const v = await Session.getSessionWithoutRequestResponse(fresh);
  assert.equal(v.getAccessTokenPayload().plan, "pro");
  assert.equal(await Session.mergeIntoAccessTokenPayload(s.getHandle(), { team: "x" }), true);
  assert.equal((await Session.getSessionInformation(s.getHandle())).customClaimsInAccessTokenPayload.team, "x");
  assert.equal(await Session.updateSessionDataInDatabase(s.getHandle(), { k: "v" }), true);
  assert.deepEqual((await Session.getSessionInformation(s.getHandle())).sessionDataInDatabase, { k: "v" });
  assert.equal(await Session.updateSessionDataInDatabase("nope", {}), false);
});

test("JWT recipe: createJWT and getJWKS", async () => {
  const r = await Session.createJWT({ hello: "world" }, 60);
  assert.equal(r.status, "OK");
  const [h, p] = r.jwt.split(".").slice(0, 2).map((x) => JSON.parse(Buffer.from(x, "base64url")));
  assert.equal(h.alg, "RS256");
  assert.equal(p.hello, "world");
  assert.equal(p.exp - p.iat, 60);
  const jwks = await Session.getJWKS();
  assert.ok(jwks.keys.some((k) => k.kid === h.kid));
  assert.ok(jwks.validityInSeconds > 0);
});
