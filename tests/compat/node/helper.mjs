// Shared by the *.test.mjs files: starts `tessera serve`, creates isolated apps, records the
// SDK's calls to the core, and a few token helpers. Each test file runs in its own process
// (node --test), so each gets its own server and its own supertokens.init.
//
// TESSERA_URL=http://127.0.0.1:3567 uses a server you started (no API keys); otherwise
// TESSERA_BIN (default ../../../target/debug/tessera) is started on a free port with a
// temporary SQLite file, or on PostgreSQL (in a fresh schema) when TESSERA_DATABASE_URL is set.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import supertokens from "supertokens-node";

const here = dirname(fileURLToPath(import.meta.url));
// The tests' own requests use this, so recordCoreCalls sees only the SDK's.
const nativeFetch = globalThis.fetch;

// The server reads SuperTokens-docker and TESSERA_* variables; none of the caller's may leak in
// (TESSERA_LOG, a log filter, may).
function serverEnv() {
  const env = { ...process.env, LOG_LEVEL: "error" };
  for (const key of Object.keys(env)) {
    const prefixed = ["TESSERA_", "SUPERTOKENS_", "POSTGRESQL_"].some((p) => key.startsWith(p));
    if (prefixed && key !== "TESSERA_LOG") delete env[key];
  }
  for (const key of [
    "API_KEYS",
    "ACCESS_TOKEN_VALIDITY",
    "REFRESH_TOKEN_VALIDITY",
    "BASE_PATH",
    "ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL",
    "REFRESH_TOKEN_ROTATION_GRACE_PERIOD",
  ]) {
    delete env[key];
  }
  return env;
}

/** Starts (or reuses, with TESSERA_URL) a core; returns `{ url, stop }`. */
export async function startCore() {
  if (process.env.TESSERA_URL) {
    return { url: process.env.TESSERA_URL.replace(/\/$/, ""), stop: async () => {} };
  }
  const bin = process.env.TESSERA_BIN ?? resolve(here, "../../../target/debug/tessera");
  const dir = mkdtempSync(join(tmpdir(), "tessera-node-"));
  const pg = process.env.TESSERA_DATABASE_URL;
  const storeArgs = pg
    ? ["--database-url", pg, "--database-schema", `tessera_test_${randomUUID().replaceAll("-", "")}`]
    : ["--sqlite-path", join(dir, "t.db")];
  const child = spawn(bin, ["serve", "--host", "127.0.0.1", "--port", "0", ...storeArgs], {
    stdio: ["ignore", "pipe", "inherit"],
    env: serverEnv(),
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const exited = new Promise((ok) => child.once("exit", ok));
  const lines = createInterface({ input: child.stdout });
  const line = await new Promise((ok, fail) => {
    child.once("exit", (code) => fail(new Error(`tessera (${bin}) exited with ${code}`)));
    child.once("error", fail);
    lines.once("line", ok);
  });
  const m = /listening on (http:\/\/\S+)/.exec(line);
  assert.ok(m, `unexpected first line from tessera: ${line}`);
  assert.match(line, pg ? /\(store: PostgreSQL .*schema tessera_test_/ : /\(store: SQLite file /);
  return {
    url: m[1],
    stop: async () => {
      process.removeListener("exit", killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Creates an app with its own keys and settings; returns its id. */
export async function createApp(coreUrl, coreConfig) {
  const appId = `t-${randomUUID()}`;
  const r = await nativeFetch(`${coreUrl}/recipe/multitenancy/app/v2`, {
    method: "PUT",
    headers: { "content-type": "application/json", "cdi-version": "5.4" },
    body: JSON.stringify({ appId, coreConfig }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  assert.deepEqual(await r.json(), { status: "OK", createdNew: true });
  return appId;
}

export async function removeApp(coreUrl, appId) {
  const r = await nativeFetch(`${coreUrl}/recipe/multitenancy/app/remove`, {
    method: "POST",
    headers: { "content-type": "application/json", "cdi-version": "5.4" },
    body: JSON.stringify({ appId }),
  });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: "OK", didExist: true });
}

/** supertokens.init against one app of the core. */
export function initSdk({ coreUrl, appId, recipeList, apiDomain = "http://localhost:3001" }) {
  supertokens.init({
    supertokens: { connectionURI: `${coreUrl}/appid-${appId}` },
    appInfo: {
      appName: "compat",
      apiDomain,
      websiteDomain: apiDomain,
      apiBasePath: "/auth",
    },
    recipeList,
  });
}

/**
 * Records every request the SDK's querier sends to the core (it uses the global fetch; jose's
 * JWKS fetch does not, and is not recorded). `take()` returns `{ call: "METHOD /path", body?,
 * query? }` (app prefix removed, /apiversion skipped) and clears the record; `takeNames()` only
 * the "METHOD /path" strings.
 */
export function recordCoreCalls(coreUrl) {
  const calls = [];
  const original = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input.url ?? String(input);
    if (url.startsWith(coreUrl)) {
      const parsed = new URL(url);
      const path = parsed.pathname.replace(/^\/appid-[^/]+/, "");
      if (path !== "/apiversion") {
        const entry = { call: `${init?.method ?? "GET"} ${path}` };
        if (typeof init?.body === "string") entry.body = JSON.parse(init.body);
        if (parsed.search) entry.query = Object.fromEntries(parsed.searchParams);
        calls.push(entry);
      }
    }
    return original(input, init);
  };
  return {
    take() {
      return calls.splice(0, calls.length);
    },
    takeNames() {
      return calls.splice(0, calls.length).map((c) => c.call);
    },
  };
}

export const newUser = () => supertokens.convertToRecipeUserId(`user-${randomUUID()}`);

/** `{ header, payload }` of a JWT, unverified. */
export function decodeJwt(token) {
  const [header, payload] = token
    .split(".")
    .slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8")));
  return { header, payload };
}

export const sha256hex = (s) => createHash("sha256").update(s).digest("hex");

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Calls the core's HTTP API for an app directly (as another backend would). */
export async function coreApi(coreUrl, appId, method, path, body) {
  const r = await nativeFetch(`${coreUrl}/appid-${appId}${path}`, {
    method,
    headers: { "content-type": "application/json", "cdi-version": "5.4" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(r.status, 200, `${method} ${path}: ${r.status} ${await r.clone().text()}`);
  return r.json();
}

/** The JWKS as the core publishes it: `{ kids, maxAge }`. */
export async function fetchJwks(coreUrl, appId) {
  const r = await nativeFetch(`${coreUrl}/appid-${appId}/.well-known/jwks.json`);
  assert.equal(r.status, 200);
  const cache = r.headers.get("cache-control");
  const m = /^max-age=(\d+), must-revalidate$/.exec(cache);
  assert.ok(m, `Cache-Control: ${cache}`);
  const body = await r.json();
  assert.deepEqual(Object.keys(body), ["keys"]);
  return { kids: body.keys.map((k) => k.kid), maxAge: Number(m[1]), keys: body.keys };
}

/** Asserts that `promise` rejects with a SuperTokens session error of `type`; returns it. */
export async function rejectsWith(promise, type) {
  let error;
  await assert.rejects(promise, (e) => {
    error = e;
    assert.equal(e.type, type, `expected ${type}, got ${e.type}: ${e.message}`);
    return true;
  });
  return error;
}
