// Dynamic signing-key rotation seen from supertokens-node 24. The app rotates every 0.001 h
// (I = 3.6 s); the server scales the publish-before-sign overlap to a quarter of that
// (O = 0.9 s). Rules checked (SuperTokens core §9.2):
//  - a new key is due once the newest is older than I − O, and is published in the JWKS;
//  - it signs only once it is O old, unless the previous key's interval I is over;
//  - tokens signed by the previous key keep verifying (keys verify for I + 2V);
//  - node, which caches the JWKS, fetches it again when it meets the new kid.
// Timing assertions compare the kid's creation time (server clock, same machine) with times
// taken around each request, so they hold however slow the machine is.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Session from "supertokens-node/recipe/session/index.js";
import {
  startCore,
  createApp,
  removeApp,
  initSdk,
  newUser,
  decodeJwt,
  fetchJwks,
  sleep,
} from "./helper.mjs";

const INTERVAL_MS = 3600;
const OVERLAP_MS = 900;
let core;
let appId;

before(async () => {
  core = await startCore();
  appId = await createApp(core.url, {
    access_token_validity: 60,
    access_token_dynamic_signing_key_update_interval: 0.001,
  });
  initSdk({ coreUrl: core.url, appId, recipeList: [Session.init({ antiCsrf: "NONE" })] });
});

after(async () => {
  if (appId) await removeApp(core.url, appId);
  if (core) await core.stop();
});

const kidOf = (token) => decodeJwt(token).header.kid;
const createdAt = (kid) => Number(/^d-(\d+)$/.exec(kid)[1]);

const dynamicKids = (jwks) => jwks.kids.filter((k) => k.startsWith("d-"));

test("rotation with a 3.6 s interval: new kid published first, old tokens still verify", async () => {
  const s1 = await Session.createNewSessionWithoutRequestResponse("public", newUser(), {}, {});
  const t1 = s1.getAllSessionTokensDangerously();
  const kid1 = kidOf(t1.accessToken);
  const kid1At = createdAt(kid1);
  assert.equal((await Session.getSessionWithoutRequestResponse(t1.accessToken)).getHandle(), s1.getHandle());
  const first = await fetchJwks(core.url, appId);
  assert.ok(dynamicKids(first).includes(kid1));
  assert.ok(first.maxAge <= 3, `max-age ${first.maxAge} is the time until the next key is due`);

  // Watch the JWKS until the key after kid1 is published (on a slow machine it may already be).
  let kid2;
  const deadline = Date.now() + INTERVAL_MS + 10_000;
  for (let jwks = first; ; jwks = await fetchJwks(core.url, appId)) {
    const kids = dynamicKids(jwks);
    const times = kids.map(createdAt);
    assert.deepEqual(times, [...times].sort((a, b) => b - a), "dynamic keys are listed newest first");
    assert.ok(kids.includes(kid1), "the old key stays published");
    kid2 = kids.filter((k) => createdAt(k) > kid1At).pop();
    if (kid2) break;
    assert.ok(Date.now() < deadline, "no new key published within the interval + 10 s");
    await sleep(100);
  }
  const kid2At = createdAt(kid2);
  assert.ok(kid2At - kid1At >= INTERVAL_MS - OVERLAP_MS, `new key after ${kid2At - kid1At} ms, not before I − O`);

  // Until the new key is O old (or the old key's interval ends), the old key keeps signing;
  // then the new one does. Server and test read the same clock.
  const switchAt = Math.min(kid2At + OVERLAP_MS, kid1At + INTERVAL_MS);
  let s2;
  while (!s2) {
    assert.ok(Date.now() < deadline, "the new key never signed");
    const sent = Date.now();
    const s = await Session.createNewSessionWithoutRequestResponse("public", newUser(), {}, {});
    const received = Date.now();
    const kid = kidOf(s.getAllSessionTokensDangerously().accessToken);
    if (kid === kid1) {
      assert.ok(sent < switchAt, `old key signed ${sent - switchAt} ms after it should have stopped`);
      await sleep(100);
    } else {
      assert.ok(createdAt(kid) >= kid2At, `${kid} signed, older than ${kid2}`);
      assert.ok(received >= switchAt, `new key signed ${switchAt - received} ms before its overlap ended`);
      s2 = s;
    }
  }

  // Node has the old JWKS cached; the unknown kid makes it fetch again.
  const t2 = s2.getAllSessionTokensDangerously();
  const v2 = await Session.getSessionWithoutRequestResponse(t2.accessToken);
  assert.equal(v2.getHandle(), s2.getHandle());
  // Tokens signed by the old key still verify (keys verify for I + 2V), locally and with the
  // database.
  assert.equal((await Session.getSessionWithoutRequestResponse(t1.accessToken)).getHandle(), s1.getHandle());
  const checked = await Session.getSessionWithoutRequestResponse(t1.accessToken, undefined, { checkDatabase: true });
  assert.equal(checked.getHandle(), s1.getHandle());
  assert.equal(checked.getAllSessionTokensDangerously().accessAndFrontTokenUpdated, false);
  // A refresh of the old session signs with a new key.
  const r1 = await Session.refreshSessionWithoutRequestResponse(t1.refreshToken, true);
  const refreshedKid = kidOf(r1.getAllSessionTokensDangerously().accessToken);
  assert.ok(createdAt(refreshedKid) >= kid2At, `${refreshedKid} signed the refresh`);
  const jwks = await Session.getJWKS();
  assert.ok(jwks.keys.some((k) => k.kid === kid1) && jwks.keys.some((k) => k.kid === kid2));
});
