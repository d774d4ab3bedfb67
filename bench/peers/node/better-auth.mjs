// The Better Auth peer (scripts/bench-peers.sh): Better Auth on SQLite (better-sqlite3) behind
// node:http through its own Node adapter, email-and-password sign-in and the anonymous plugin,
// as its documentation sets them up. SQLite gets the settings Tessera's own store uses (WAL,
// synchronous=NORMAL) so that the comparison is between session systems, not SQLite settings;
// rate limiting is off (a load test from one address would only measure the limiter).
//
// Environment: PORT (0 = any free port), DB (SQLite file), COOKIE_CACHE=1 (Better Auth's
// signed session-data cookie: get-session answers from the cookie while it is fresh),
// FAST_PASSWORD=1 (the documented password hook with SHA-256 instead of scrypt, so that a
// sign-in measures the session write rather than the deliberate key stretching).
// Routes: /api/auth/* (Better Auth), GET /hello (bare node:http, the node baseline).
// Prints "listening on http://127.0.0.1:<port>" once the bench user exists.

import http from "node:http";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { anonymous } from "better-auth/plugins/anonymous";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";

export const EMAIL = "bench@example.com";
export const PASSWORD = "bench-password-0123456789";

const db = new Database(process.env.DB ?? "better-auth.db");
db.pragma("journal_mode = WAL");
db.pragma("synchronous = NORMAL");

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const fastPassword = {
  hash: async (password) => sha256(password),
  verify: async ({ hash, password }) => timingSafeEqual(Buffer.from(hash), Buffer.from(sha256(password))),
};

let handler = null;
const server = http.createServer((req, res) => {
  if (req.url.startsWith("/api/auth/")) return handler(req, res);
  if (req.method === "GET" && req.url.startsWith("/hello")) return res.end("hello");
  res.statusCode = 404;
  res.end();
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", async () => {
  const baseURL = `http://127.0.0.1:${server.address().port}`;
  const options = {
    baseURL,
    secret: randomBytes(32).toString("hex"),
    database: db,
    emailAndPassword: {
      enabled: true,
      ...(process.env.FAST_PASSWORD === "1" ? { password: fastPassword } : {}),
    },
    session: process.env.COOKIE_CACHE === "1" ? { cookieCache: { enabled: true, maxAge: 300 } } : {},
    plugins: [anonymous()],
    rateLimit: { enabled: false },
    telemetry: { enabled: false },
  };
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
  const auth = betterAuth(options);
  await auth.api.signUpEmail({ body: { email: EMAIL, password: PASSWORD, name: "Bench" } });
  handler = toNodeHandler(auth);
  console.log(`listening on ${baseURL}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
