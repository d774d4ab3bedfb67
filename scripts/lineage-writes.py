#!/usr/bin/env python3
"""Counts the session-row writes (UPDATE + DELETE on session_info, from PostgreSQL's
pg_stat_user_tables) that lineage scenarios cause on a `tessera serve` binary, with a 2 s
rotation grace window:

  scripts/lineage-writes.py target/debug/tessera

1. 50 concurrent refreshes with the session's head token;
2. a database-checked verify of each of their 50 access tokens, in random order;
3. 20 chained refreshes (each with the token the previous one returned).

PostgreSQL at postgres://postgres@127.0.0.1:5432/test; the schema is dropped at the end. The
statistics are flushed lazily, so each stage waits 11 s before reading them.
"""
import json, subprocess, sys, time, uuid, urllib.request, random
from concurrent.futures import ThreadPoolExecutor
BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/tessera"; URL = "postgres://postgres@127.0.0.1:5432/test"
schema = "tessera_srv_writes_" + uuid.uuid4().hex[:8]
p = subprocess.Popen([BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "warn",
    "--database-url", URL, "--database-schema", schema, "--refresh-token-rotation-grace-period", "2"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
base = p.stdout.readline().split()[3].rstrip("/")
def post(path, body):
    r = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(r) as f: return json.load(f)
    except urllib.error.HTTPError as e: return json.load(e)
def writes():
    time.sleep(11)
    out = subprocess.run(["psql", URL, "-Atc", f"select n_tup_upd + n_tup_del from pg_stat_user_tables where schemaname = '{schema}' and relname = 'session_info'"], capture_output=True, text=True).stdout.strip()
    return int(out or 0)
rb = lambda rt: {"refreshToken": rt, "enableAntiCsrf": False, "useDynamicSigningKey": True}
vb = lambda at: {"accessToken": at, "doAntiCsrfCheck": False, "enableAntiCsrf": False, "checkDatabase": True}
try:
    c = post("/public/recipe/session", {"userId": "w", "userDataInJWT": {}, "userDataInDatabase": {}, "enableAntiCsrf": False, "useDynamicSigningKey": True})
    rt = c["refreshToken"]["token"]
    w0 = writes()
    with ThreadPoolExecutor(50) as ex: storm = list(ex.map(lambda _: post("/recipe/session/refresh", rb(rt)), range(50)))
    assert all(s["status"] == "OK" for s in storm), storm[0]
    w1 = writes()
    order = list(range(50)); random.shuffle(order)
    ver = [post("/recipe/session/verify", vb(storm[i]["accessToken"]["token"])) for i in order]
    assert all(v["status"] == "OK" for v in ver)
    w2 = writes()
    # A chain of 20 sequential refreshes, each with the token the previous one returned.
    rt = storm[order[-1]]["refreshToken"]["token"]
    for _ in range(20):
        r = post("/recipe/session/refresh", rb(rt)); assert r["status"] == "OK", r; rt = r["refreshToken"]["token"]
    w3 = writes()
    print(f"{BIN}: 50 concurrent refreshes with the head: {w1-w0} writes; 50 verifies of their access tokens: {w2-w1} writes; 20 chained refreshes: {w3-w2} writes")
finally:
    p.kill(); p.wait()
    subprocess.run(["psql", URL, "-qc", f"drop schema if exists {schema} cascade"], capture_output=True)
