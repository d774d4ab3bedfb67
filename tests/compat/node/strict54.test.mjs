// supertokens-node 24 against `tessera serve` with refresh_token_rotation_grace_period 0: the
// strict CDI 5.4 rules of the reference core (issue 10, P2 with grace 0). Without a window,
// children are random, and a token whose successor was used is theft at once.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Session from "supertokens-node/recipe/session/index.js";
import { startCore, createApp, removeApp, initSdk, newUser, rejectsWith } from "./helper.mjs";

let core;
let appId;

before(async () => {
  core = await startCore();
  appId = await createApp(core.url, { access_token_validity: 60, refresh_token_rotation_grace_period: 0 });
  initSdk({ coreUrl: core.url, appId, recipeList: [Session.init({ antiCsrf: "NONE" })] });
});

after(async () => {
  if (appId) await removeApp(core.url, appId);
  if (core) await core.stop();
});

async function create() {
  const s = await Session.createNewSessionWithoutRequestResponse("public", newUser(), {}, {});
  return { s, tokens: s.getAllSessionTokensDangerously() };
}

const refresh = async (token) =>
  (await Session.refreshSessionWithoutRequestResponse(token, true)).getAllSessionTokensDangerously();

test("grace 0: two refreshes with the current token answer two different children; the parent stays current", async () => {
  const { tokens: t0 } = await create();
  const a = await refresh(t0.refreshToken);
  const b = await refresh(t0.refreshToken);
  assert.notEqual(a.refreshToken, b.refreshToken, "children are random without a window");
  // Neither child was used: the parent is still current.
  assert.ok((await refresh(t0.refreshToken)).refreshToken);
});

test("grace 0: once a child is used, its parent is TOKEN_THEFT_DETECTED at once and the session is revoked", async () => {
  const { s, tokens: t0 } = await create();
  const t1 = await refresh(t0.refreshToken);
  // The child's access token carries its parent's hash: the SDK asks the core, which promotes.
  const v = await Session.getSessionWithoutRequestResponse(t1.accessToken);
  assert.equal(v.getAllSessionTokensDangerously().accessAndFrontTokenUpdated, true);
  await rejectsWith(Session.refreshSessionWithoutRequestResponse(t0.refreshToken, true), Session.Error.TOKEN_THEFT_DETECTED);
  assert.equal(await Session.getSessionInformation(s.getHandle()), undefined);
  await rejectsWith(Session.refreshSessionWithoutRequestResponse(t1.refreshToken, true), Session.Error.UNAUTHORISED);
});

test("grace 0: the sibling of a used child is TOKEN_THEFT_DETECTED at once (no window to adopt it)", async () => {
  const { s, tokens: t0 } = await create();
  const a = await refresh(t0.refreshToken);
  const b = await refresh(t0.refreshToken);
  // Child a is used: promoted.
  const promoted = await refresh(a.refreshToken);
  assert.ok(promoted.refreshToken);
  await rejectsWith(Session.refreshSessionWithoutRequestResponse(b.refreshToken, true), Session.Error.TOKEN_THEFT_DETECTED);
  assert.equal(await Session.getSessionInformation(s.getHandle()), undefined);
});
