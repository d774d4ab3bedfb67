// supertokens-node 24 with useDynamicAccessTokenSigningKey: false against `tessera serve`:
// access tokens are signed by the app's static key (kid "s-…"), which the JWKS publishes, and
// a session made with a dynamic key is moved to the static key by its next refresh.

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
  coreApi,
  fetchJwks,
  rejectsWith,
} from "./helper.mjs";

let core;
let appId;
let calls;

before(async () => {
  core = await startCore();
  appId = await createApp(core.url, { access_token_validity: 60 });
  calls = recordCoreCalls(core.url);
  initSdk({
    coreUrl: core.url,
    appId,
    recipeList: [Session.init({ antiCsrf: "NONE", useDynamicAccessTokenSigningKey: false })],
  });
});

after(async () => {
  if (appId) await removeApp(core.url, appId);
  if (core) await core.stop();
});

test("static-key sessions: kid s-…, published in the JWKS, kept across refresh and promotion", async () => {
  const uid = newUser();
  const s = await Session.createNewSessionWithoutRequestResponse("public", uid, { role: "r" }, {});
  const create = calls.take().find((c) => c.call === "POST /public/recipe/session");
  assert.equal(create.body.useDynamicSigningKey, false);
  const t0 = s.getAllSessionTokensDangerously();
  const kid = decodeJwt(t0.accessToken).header.kid;
  assert.match(kid, /^s-/);
  const jwks = await fetchJwks(core.url, appId);
  assert.ok(jwks.kids.includes(kid), `${kid} in ${jwks.kids}`);
  assert.equal(jwks.kids.filter((k) => k.startsWith("s-")).length, 1);
  assert.equal(jwks.kids.filter((k) => k.startsWith("d-")).length, 1);

  const v = await Session.getSessionWithoutRequestResponse(t0.accessToken);
  assert.equal(v.getHandle(), s.getHandle());
  assert.deepEqual(calls.take(), [], "verified locally");

  const r1 = await Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true);
  assert.equal(calls.take()[0].body.useDynamicSigningKey, false);
  const t1 = r1.getAllSessionTokensDangerously();
  assert.equal(decodeJwt(t1.accessToken).header.kid, kid);
  // The promotion mints with the session's stored key type.
  const promoted = (await Session.getSessionWithoutRequestResponse(t1.accessToken)).getAllSessionTokensDangerously();
  assert.equal(promoted.accessAndFrontTokenUpdated, true);
  assert.equal(decodeJwt(promoted.accessToken).header.kid, kid);
  // So does regenerate.
  await r1.mergeIntoAccessTokenPayload({ x: 1 });
  assert.equal(decodeJwt(r1.getAllSessionTokensDangerously().accessToken).header.kid, kid);
});

test("a dynamic-key token is refused by a static-key backend until the refresh switches the session", async () => {
  const uid = newUser();
  // Another backend (configured for dynamic keys) created this session through the core.
  const created = await coreApi(core.url, appId, "POST", "/public/recipe/session", {
    userId: uid.getAsString(),
    userDataInJWT: {},
    userDataInDatabase: {},
    enableAntiCsrf: false,
    useDynamicSigningKey: true,
  });
  assert.equal(created.status, "OK");
  assert.match(decodeJwt(created.accessToken.token).header.kid, /^d-/);
  calls.take();
  await rejectsWith(
    Session.getSessionWithoutRequestResponse(created.accessToken.token),
    Session.Error.TRY_REFRESH_TOKEN,
  );
  assert.deepEqual(calls.take(), [], "the kid prefix is checked locally");
  const r = await Session.refreshSessionWithoutRequestResponse(created.refreshToken.token, true);
  const t = r.getAllSessionTokensDangerously();
  assert.match(decodeJwt(t.accessToken).header.kid, /^s-/);
  const v = await Session.getSessionWithoutRequestResponse(t.accessToken);
  assert.equal(v.getHandle(), created.session.handle);
  assert.match(decodeJwt(v.getAllSessionTokensDangerously().accessToken).header.kid, /^s-/);
});
