// The supertokens-node peer (scripts/bench-peers.sh, scripts/bench-sdk.sh): an express app with
// supertokens-node 24's verifySession in front of `tessera serve` (CORE_URL), as the
// SuperTokens documentation sets it up. Routes:
//   GET  /hello    bare express (the node baseline)
//   GET  /session  the same handler behind verifySession (access token checked locally against
//                  the core's JWKS, no core call per request)
//   POST /login    creates a session through the core (cookie transfer)
// PORT=0 picks a free port; prints "listening on http://127.0.0.1:<port>" when ready.

import express from "express";
import supertokens from "supertokens-node";
import Session from "supertokens-node/recipe/session/index.js";
import { middleware, errorHandler } from "supertokens-node/framework/express/index.js";
import { verifySession } from "supertokens-node/recipe/session/framework/express/index.js";

const port = Number(process.env.PORT ?? 8095);
const core = process.env.CORE_URL ?? "http://127.0.0.1:3567";
supertokens.init({
  framework: "express",
  supertokens: { connectionURI: core },
  appInfo: {
    appName: "bench",
    apiDomain: "http://localhost",
    websiteDomain: "http://localhost",
  },
  recipeList: [Session.init({ antiCsrf: "NONE", getTokenTransferMethod: () => "cookie" })],
});

const app = express();
app.use(middleware());
app.get("/hello", (_req, res) => res.send("hello"));
app.get("/session", verifySession(), (_req, res) => res.send("hello"));
app.post("/login", async (req, res) => {
  await Session.createNewSession(req, res, "public", supertokens.convertToRecipeUserId("bench-user"));
  res.send("ok");
});
app.use(errorHandler());
const server = app.listen(port, "127.0.0.1", () =>
  console.log(`listening on http://127.0.0.1:${server.address().port}`),
);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
