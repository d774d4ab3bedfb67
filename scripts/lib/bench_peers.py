#!/usr/bin/env python3
"""The measuring half of scripts/bench-peers.sh (which installs and builds, then runs this).

Rules, in the order a run applies them:
1. Every server is started fresh for each measurement, pinned to core 0 with taskset; wrk runs
   pinned to core 1 (-t1, the same connections, warm-up and duration for every peer). Only
   127.0.0.1 is ever addressed.
2. Every process started is recorded and stopped by its PID (SIGTERM, then SIGKILL after 5 s),
   whatever happens: normal end, error or signal.
3. Before a measurement, one request with the method, path, headers and body wrk will send is
   checked by hand (status, body, and for creation and guest rows the session cookie answered).
4. Every response of every wrk run is checked (status 200 and the peer's success marker in the
   body); one socket error, timeout, other status or missing marker fails the whole run.
5. Request shape: within a group every request has the same path length (shorter paths get a
   query string the servers ignore), the same extra header (`st-auth-mode: cookie`) and at most
   one session cookie (Better Auth's cookie-cache row needs two; it says so).
6. Rounds are interleaved (every row once per round, the starting row rotating) and each figure
   is the median over the rounds; ratios are medians divided by the bare-axum median of the
   same run.
7. Output: a Markdown report and a gnuplot bar chart; the report is then parsed back and the
   run fails if any row lacks a figure.
8. Scale for session creation: with the Tessera create row, every round also measures the raw
   RSA-2048 signing rate of core 0 (`bench-app --mode sign`, one thread, the measured duration,
   nothing else of the benchmark running), and the create row is reported as a ratio to it too
   (issue 16: create ≥ 0.75 × raw sign; a create signs one access token).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SERVER_CORE = "0"
WRK_CORE = "1"
STOP_GRACE_S = 5.0
WRK_TIMEOUT_S = 30  # longer than any run: a slow answer is measured, a lost one is an error
IDLE_TIMEOUT_S = 60.0  # the longest wait for a server to finish the warm-up's abandoned requests
START_TIMEOUT_S = 60.0
BUSY_PCT = 10.0  # other processes' mean CPU share above which the figures are called provisional
COMMON_HEADERS = {"st-auth-mode": "cookie"}
BA_EMAIL = "bench@example.com"  # created by bench/peers/node/better-auth.mjs at start
BA_PASSWORD = "bench-password-0123456789"

# ---------------------------------------------------------------------------------------------
# Processes (rule 2)


class Processes:
    """Every process this run started, stopped by PID."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        out = open(log, "wb")
        proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *argv], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd)
        out.close()
        self.running.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running = []


PROCS = Processes()


def wait_listening(proc: subprocess.Popen, log: Path) -> str:
    """The URL from the `listening on http://…` line the process prints when ready."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
        if m:
            return m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args} did not start within {START_TIMEOUT_S:.0f} s")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent not idle (all cores)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system, all threads) the processes have used."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_idle(pids: list[int]) -> None:
    """Returns once the processes used at most one clock tick in 200 ms (or after a minute)."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while time.monotonic() < deadline:
        before = process_cpu_s(pids)
        time.sleep(0.2)
        if process_cpu_s(pids) - before < 1.5 / os.sysconf("SC_CLK_TCK"):
            return


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the processes (VmRSS, summed)."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# ---------------------------------------------------------------------------------------------
# HTTP by hand (setup and the pre-check of rule 3)


@dataclass
class Answer:
    status: int
    body: str
    set_cookies: list[str]


def call(url: str, method: str, path: str, headers: dict[str, str], body: str = "") -> Answer:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body.encode() if body else None, headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read().decode(errors="replace"),
                      resp.headers.get_all("Set-Cookie") or [])
    finally:
        conn.close()


def cookie_pair(answer: Answer, name: str) -> str:
    """`name=value` from the answer's Set-Cookie headers."""
    for header in answer.set_cookies:
        pair = header.split(";", 1)[0].strip()
        if pair.startswith(name + "="):
            return pair
    raise RuntimeError(f"no {name} cookie in the answer ({answer.status}: {answer.body[:200]})")


# ---------------------------------------------------------------------------------------------
# What is measured


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    expect: str  # substring of every successful body
    sets_cookie: str | None = None  # creation and guest rows: the session cookie answered


@dataclass
class Shape:
    """What a row sends: the same request every time (wrk sends it unchanged)."""
    method: str
    path: str  # before padding (rule 5)
    expect: str  # substring of every successful body
    sign_in: Callable[[str], str] | None = None  # server URL -> Cookie (a session to verify)
    floor_cookie: bool = False  # send Tessera's cookie, which the server ignores
    body: str = ""
    answers_cookie: str | None = None  # creation and guest rows: the session cookie answered


@dataclass
class Row:
    key: str
    group: str
    label: str
    short: str  # the chart's label
    start: Callable[["Context", Path], list[tuple[subprocess.Popen, str]]]
    shape: Shape
    note: str = ""
    min_seconds: int = 0  # measured at least this long (a slow peer: enough answers to count)


@dataclass
class Context:
    bins: Path
    node_dir: Path
    work: Path
    tessera_cookie: str = ""  # the bytes the bare baselines receive (ignored by them)


def request(ctx: Context, row: Row, url: str) -> Request:
    shape = row.shape
    extra = GROUP_PATHS[row.group] - len(shape.path)  # rule 5: a query string nobody reads
    path = shape.path if extra <= 0 else shape.path + "?" + "x" * (extra - 1)
    cookie = shape.sign_in(url) if shape.sign_in else None
    if shape.floor_cookie:
        cookie = ctx.tessera_cookie
    return Request(shape.method, path, headers(cookie, json_body=bool(shape.body)), shape.body,
                   shape.expect, shape.answers_cookie)


def headers(cookie: str | None = None, json_body: bool = False) -> dict[str, str]:
    h = dict(COMMON_HEADERS)
    if cookie:
        h["Cookie"] = cookie
    if json_body:
        h["Content-Type"] = "application/json"
    return h


def sign_in(name: str, path: str = "/login", body: str = "", also: str | None = None
            ) -> Callable[[str], str]:
    """Signs in at the running server; its session cookie(s) as a Cookie header value."""
    def run(url: str) -> str:
        answer = call(url, "POST", path, headers(json_body=bool(body)), body)
        if answer.status != 200:
            raise RuntimeError(f"sign-in at {url}{path}: {answer.status} {answer.body[:200]}")
        return "; ".join(cookie_pair(answer, n) for n in (name, also) if n)
    return run


def node_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BETTER_AUTH", "NODE_OPTIONS"))}
    env.update(NODE_ENV="production", **extra)
    return env


Started = list[tuple[subprocess.Popen, str]]  # the processes of one peer, the measured one first


def start_bench_app(*flags: str) -> Callable[[Context, Path], Started]:
    def start(ctx: Context, run: Path) -> Started:
        log = run / "bench-app.log"
        proc = PROCS.start([str(ctx.bins / "bench-app"), "--port", "0", "--db",
                            str(run / "tessera.db"), *flags], log)
        return [(proc, wait_listening(proc, log))]
    return start


def start_tower(ctx: Context, run: Path) -> Started:
    log = run / "tower.log"
    proc = PROCS.start([str(ctx.bins / "peer-tower-sessions"), "--port", "0", "--db",
                        str(run / "tower.db")], log)
    return [(proc, wait_listening(proc, log))]


def start_better_auth(**env: str) -> Callable[[Context, Path], Started]:
    def start(ctx: Context, run: Path) -> Started:
        log = run / "better-auth.log"
        proc = PROCS.start(["node", "better-auth.mjs"], log, cwd=ctx.node_dir,
                           env=node_env(PORT="0", DB=str(run / "better-auth.db"), **env))
        return [(proc, wait_listening(proc, log))]
    return start


def start_express(ctx: Context, run: Path) -> Started:
    """express + supertokens-node in front of a fresh `tessera serve` on SQLite."""
    core_log = run / "tessera-serve.log"
    # Only the flags configure the core: none of the variables it would read are passed on.
    core_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    core_env["LOG_LEVEL"] = "error"
    core = PROCS.start([str(ctx.bins / "tessera"), "serve", "--host", "127.0.0.1", "--port", "0",
                        "--sqlite-path", str(run / "core.db")], core_log, env=core_env)
    core_url = wait_listening(core, core_log)
    log = run / "express.log"
    proc = PROCS.start(["node", "express-supertokens.mjs"], log, cwd=ctx.node_dir,
                       env=node_env(PORT="0", CORE_URL=core_url))
    return [(proc, wait_listening(proc, log)), (core, core_url)]


def start_express_alone(ctx: Context, run: Path) -> Started:
    """The same express app with no core behind it, for its plain route (never calls the core)."""
    log = run / "express.log"
    proc = PROCS.start(["node", "express-supertokens.mjs"], log, cwd=ctx.node_dir,
                       env=node_env(PORT="0", CORE_URL="http://127.0.0.1:9"))
    return [(proc, wait_listening(proc, log))]


BA_SIGN_IN = json.dumps({"email": BA_EMAIL, "password": BA_PASSWORD})
BA_TOKEN = "better-auth.session_token"
BA_PASSWORD_SIGN_IN = sign_in(BA_TOKEN, "/api/auth/sign-in/email", BA_SIGN_IN)
TESSERA_SIGN_IN = sign_in("sAccessToken")


def rows() -> list[Row]:
    v, c, g = "verified", "create", "guest"
    hello = Shape("GET", "/hello", "hello", floor_cookie=True)  # the floors
    return [
        # Verified request: GET with a session cookie.
        Row("axum", v, "bare axum (floor)", "bare axum",
            start_bench_app("--mode", "bare"), hello,
            "ignores the cookie (Tessera's, same bytes as the tessera-axum rows)"),
        Row("tessera", v, "Tessera: tessera-axum `Session`, cache on", "Tessera, cache on",
            start_bench_app("--mode", "session"),
            Shape("GET", "/hello", "hello", TESSERA_SIGN_IN),
            "the layer once around the router (`tessera.wrap(router)`)"),
        Row("tessera-route", v, "Tessera: tessera-axum `Session`, cache on, layer per route",
            "Tessera, per route", start_bench_app("--mode", "session", "--per-route"),
            Shape("GET", "/hello", "hello", TESSERA_SIGN_IN),
            "`router.layer(tessera.layer())`: axum boxes and clones the layer per request"),
        Row("tessera-nocache", v, "Tessera: tessera-axum `Session`, cache off",
            "Tessera, cache off", start_bench_app("--mode", "session", "--no-cache"),
            Shape("GET", "/hello", "hello", TESSERA_SIGN_IN),
            "every request pays the RS256 signature check"),
        Row("tower", v, "tower-sessions 0.14 + SQLite store", "tower-sessions", start_tower,
            Shape("GET", "/hello", "hello", sign_in("id")), "one SQLite read per request"),
        Row("better-auth", v, "Better Auth 1.7 `get-session`, SQLite", "Better Auth",
            start_better_auth(),
            Shape("GET", "/api/auth/get-session", '"session":{', BA_PASSWORD_SIGN_IN),
            "one SQLite read (session joined with user) per request"),
        Row("better-auth-cache", v, "Better Auth 1.7 `get-session`, cookie cache on",
            "Better Auth, cookie cache", start_better_auth(COOKIE_CACHE="1"),
            Shape("GET", "/api/auth/get-session", '"session":{',
                  sign_in(BA_TOKEN, "/api/auth/sign-in/email", BA_SIGN_IN,
                          also="better-auth.session_data")),
            "two cookies: the session token and the signed session data it answers from"),
        Row("supertokens", v,
            "express + supertokens-node 24 `verifySession` (core: tessera serve)",
            "supertokens-node", start_express,
            Shape("GET", "/session", "hello", TESSERA_SIGN_IN),
            "JWT checked in node against the core's JWKS; RSS is node + tessera serve"),
        Row("express", v, "bare express 5 (node floor)", "bare express", start_express_alone,
            hello, "the supertokens-node app's plain route (its middleware looks at every "
                   "request)"),
        Row("node", v, "bare node:http (node floor)", "bare node:http", start_better_auth(),
            hello, "the Better Auth process, its plain route"),
        # Session creation: one new session per request, nothing sent that identifies one.
        Row("tessera-create", c, "Tessera: tessera-axum `SignIn::create`, SQLite",
            "Tessera create", start_bench_app("--mode", "session"),
            Shape("POST", "/login", "ok", answers_cookie="sAccessToken"),
            "RS256-signed access token, refresh token, one row"),
        Row("tower-create", c, "tower-sessions 0.14: `insert`, SQLite", "tower-sessions insert",
            start_tower, Shape("POST", "/login", "ok", answers_cookie="id"),
            "random id, one row"),
        Row("better-auth-create", c, "Better Auth 1.7 email sign-in (scrypt), SQLite",
            "Better Auth sign-in (scrypt)", start_better_auth(),
            Shape("POST", "/api/auth/sign-in/email", '"token":', body=BA_SIGN_IN,
                  answers_cookie=BA_TOKEN),
            "as shipped: the password check is scrypt, most of the cost; measured for at least "
            "10 s (5 s gives too few answers)", min_seconds=10),
        Row("better-auth-create-fast", c,
            "Better Auth 1.7 email sign-in (SHA-256 password hook), SQLite",
            "Better Auth sign-in (SHA-256)", start_better_auth(FAST_PASSWORD="1"),
            Shape("POST", "/api/auth/sign-in/email", '"token":', body=BA_SIGN_IN,
                  answers_cookie=BA_TOKEN),
            "the documented password hook set to SHA-256: the session write without key "
            "stretching"),
        Row("supertokens-create", c,
            "express + supertokens-node 24 `createNewSession` (core: tessera serve)",
            "supertokens-node create", start_express,
            Shape("POST", "/login", "ok", answers_cookie="sAccessToken"),
            "one HTTP call from node to the core per session; RSS is node + tessera serve"),
        # Guest visitor: a first visit, an anonymous session minted.
        Row("tessera-guest", g, "Tessera: first visit, anonymous token minted (no database)",
            "Tessera guest mint", start_bench_app("--mode", "anonymous"),
            Shape("GET", "/hello", "hello", answers_cookie="__Host-sAnonymousToken"),
            "Ed25519-signed anonymous token in a cookie; nothing stored"),
        Row("better-auth-guest", g, "Better Auth 1.7 anonymous plugin sign-in, SQLite",
            "Better Auth anonymous", start_better_auth(),
            Shape("POST", "/api/auth/sign-in/anonymous", '"token":', body="{}",
                  answers_cookie=BA_TOKEN),
            "a user row and a session row per guest"),
    ]


GROUP_PATHS = {  # the longest path of each group (rule 5)
    "verified": len("/api/auth/get-session"),
    "create": len("/api/auth/sign-in/email"),
    "guest": len("/api/auth/sign-in/anonymous"),
}

GROUP_TITLES = {
    "verified": "Verified request (GET with a session cookie)",
    "create": "Session creation on SQLite (one new session per request)",
    "guest": "Guest visitor (first visit: an anonymous session per request)",
}

# ---------------------------------------------------------------------------------------------
# wrk (rule 4)


def lua_str(s: str) -> str:
    out = []
    for ch in s.encode():
        if ch in (0x22, 0x5C) or ch < 0x20 or ch > 0x7E:
            out.append(f"\\{ch:03d}")
        else:
            out.append(chr(ch))
    return '"' + "".join(out) + '"'


def wrk_script(req: Request, path: Path) -> None:
    lines = [f"wrk.method = {lua_str(req.method)}", f"wrk.path = {lua_str(req.path)}"]
    for name, value in req.headers.items():
        lines.append(f"wrk.headers[{lua_str(name)}] = {lua_str(value)}")
    if req.body:
        lines.append(f"wrk.body = {lua_str(req.body)}")
    lines.append(f"local expect = {lua_str(req.expect)}")
    lines.append("""
local threads = {}
function setup(thread) table.insert(threads, thread) end
bad, sample = 0, ""
function response(status, headers, body)
  if status ~= 200 or not string.find(body, expect, 1, true) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body, 1, 200) end
  end
end
function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    if first == "" then first = t:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d "
    .. "bad=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    bad_total, latency:percentile(50), latency:percentile(99)))
  if first ~= "" then io.write("FIRST_BAD " .. first .. "\\n") end
end
""")
    path.write_text("\n".join(lines))


def request_bytes(req: Request, url: str) -> int:
    host = url.removeprefix("http://")
    head = f"{req.method} {req.path} HTTP/1.1\r\nHost: {host}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    if req.body:
        head += f"Content-Length: {len(req.body.encode())}\r\n"
    return len((head + "\r\n").encode()) + len(req.body.encode())


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    wall_s: float
    cpu_s: float  # used by wrk itself


def run_wrk(url: str, script: Path, seconds: int, connections: int,
            allow_none: bool = False) -> Figures:
    """One bounded wrk run; fails on any error, and on no answer at all unless allowed."""
    argv = ["taskset", "-c", WRK_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            "--timeout", f"{WRK_TIMEOUT_S}s", "-s", str(script), url]
    log = script.with_suffix(".out")
    with open(log, "wb") as sink:
        began = time.monotonic()
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        PROCS.running.append(proc)  # stopped with the servers if this run is interrupted
        # wait4 for wrk's own CPU time. wrk stops itself after `seconds`; the timer is the bound
        # if it did not.
        usage = wait_bounded(proc, seconds + 60)
        wall = time.monotonic() - began
    out = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}")
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    f = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    errors = f["connect"] + f["read"] + f["write"] + f["timeout"] + f["status"] + f["bad"]
    if errors or (f["requests"] == 0 and not allow_none):
        first = re.search(r"^FIRST_BAD (.*)$", out, re.M)
        raise RuntimeError(f"{url}: {errors} failed requests of {f['requests']} "
                           f"({m.group(1)}); first bad answer: {first.group(1) if first else '-'}")
    return Figures(f["requests"] / max(f["duration_us"] / 1e6, 1e-6), f["p50_us"] / 1000,
                   f["p99_us"] / 1000, f["requests"], wall, usage.ru_utime + usage.ru_stime)


# ---------------------------------------------------------------------------------------------
# One measurement


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    idle_rss_mib: float
    rss_mib: float
    requests: int
    request_bytes: int
    others_pct: float  # CPU used by other processes during the measured run, % of the machine
    wrk_pct: float  # wrk's own CPU use, % of its core: near 100 means wrk, not the server, limits


def precheck(row: Row, url: str, req: Request) -> None:
    answer = call(url, req.method, req.path, req.headers, req.body)
    if answer.status != 200 or req.expect not in answer.body:
        raise RuntimeError(f"{row.key}: the request wrk will send got {answer.status} "
                           f"{answer.body[:200]!r}, expected 200 with {req.expect!r}")
    if req.sets_cookie:
        cookie_pair(answer, req.sets_cookie)


def measure(ctx: Context, row: Row, args: argparse.Namespace, n: int) -> Sample:
    run = ctx.work / f"{n:03d}-{row.key}"
    run.mkdir()
    try:
        started = row.start(ctx, run)
        url = started[0][1]
        pids = [p.pid for p, _ in started]
        req = request(ctx, row, url)
        precheck(row, url, req)
        script = run / "wrk.lua"
        wrk_script(req, script)
        idle = rss_kib(pids)
        if args.warmup:
            run_wrk(url, script, args.warmup, args.connections, allow_none=True)
            # Requests in flight when the warm-up's wrk stopped are still being served (a
            # backlog of scrypt sign-ins takes seconds): measure only once the server is idle.
            wait_idle(pids)
        # A run in which no answer came back (scrypt on a busy core) is repeated, longer, at
        # most twice: a slow peer gets measured, a dead one still fails the run.
        seconds = max(args.duration, row.min_seconds)
        for attempt in range(3):
            busy, ours = machine_busy_s(), process_cpu_s(pids)
            fig = run_wrk(url, script, seconds, args.connections, allow_none=attempt < 2)
            if fig.requests:
                break
            wait_idle(pids)
            seconds *= 2
        busy, ours = machine_busy_s() - busy, process_cpu_s(pids) - ours + fig.cpu_s
        loaded = rss_kib(pids)
        others = max(0.0, busy - ours) / (fig.wall_s * (os.cpu_count() or 1)) * 100
        return Sample(fig.rps, fig.p50_ms, fig.p99_ms, idle / 1024, loaded / 1024, fig.requests,
                      request_bytes(req, url), others, fig.cpu_s / fig.wall_s * 100)
    finally:
        PROCS.stop_all()
        shutil.rmtree(run, ignore_errors=True)


def tessera_cookie(ctx: Context) -> str:
    run = ctx.work / "cookie"
    run.mkdir()
    try:
        url = start_bench_app("--mode", "session")(ctx, run)[0][1]
        return TESSERA_SIGN_IN(url)
    finally:
        PROCS.stop_all()
        shutil.rmtree(run, ignore_errors=True)


SIGN_KEY = "rsa-sign"  # the raw-signing samples (rule 8), beside the rows' in `results`
SIGN_LABEL = "raw RSA-2048 sign, one thread on core 0 (no server; for scale)"


def measure_sign(ctx: Context, args: argparse.Namespace) -> Sample:
    """Rule 8: `bench-app --mode sign` on core 0 for the measured duration; signatures/s."""
    log = ctx.work / "sign.log"
    seconds = max(args.duration, 1)
    busy = machine_busy_s()
    try:
        proc = PROCS.start([str(ctx.bins / "bench-app"), "--mode", "sign", "--seconds",
                            str(seconds)], log)  # pinned to core 0 by PROCS
        usage = wait_bounded(proc, seconds + 60)  # it stops itself; this is the bound
    finally:
        PROCS.stop_all()
    out = log.read_text(errors="replace")
    m = re.search(r"^signed (\d+) in ([0-9.]+) s$", out, re.M)
    if proc.returncode != 0 or not m or int(m.group(1)) == 0:
        raise RuntimeError(f"bench-app --mode sign failed ({proc.returncode}):\n{out[-2000:]}")
    took = float(m.group(2))
    ours = usage.ru_utime + usage.ru_stime
    others = max(0.0, machine_busy_s() - busy - ours) / (took * (os.cpu_count() or 1)) * 100
    return Sample(int(m.group(1)) / took, 0.0, 0.0, 0.0, 0.0, int(m.group(1)), 0, others, 0.0)


# ---------------------------------------------------------------------------------------------
# Report (rule 7)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def machine() -> dict[str, str]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "rustc": version(["rustc", "--version"]),
        "node": version(["node", "--version"]),
        "wrk": version(["wrk", "-v"]).split(" [")[0],
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def fmt_ratio(x: float) -> str:
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3f}" if x >= 0.01 else f"1/{1 / x:,.0f}"


def report(results: dict[str, list[Sample]], table: list[Row], meta: dict, chart: str) -> str:
    floor = results["axum"]
    f_rps = median([s.rps for s in floor])
    f_p50 = median([s.p50_ms for s in floor])
    f_p99 = median([s.p99_ms for s in floor])
    f_rss = median([s.rss_mib for s in floor])
    m = meta["machine"]
    lines = [
        "# Benchmarks: Tessera beside its peers",
        "",
        f"Generated by `scripts/bench-peers.sh` on {meta['date']}"
        + (" — **SMOKE run: figures meaningless**" if meta["smoke"] else "") + ".",
        "Every figure is the median of interleaved rounds from one run on one machine; ratios are "
        "to bare axum (the floor) from the same run. Rerun it on yours: the ratios travel better "
        "than the absolute figures.",
        "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}; load average "
        f"(1/5/15 min) {meta['load_start']} at the start, {meta['load_end']} at the end (the "
        f"benchmark itself keeps both cores busy). Other processes used "
        f"{meta['others_mean']:.0f}% of the machine's CPU on average during the measured runs "
        f"(at most {meta['others_max']:.0f}%)"
        + (" — **the machine was shared and busy: treat the figures as provisional**"
           if meta["busy"] else "") + ".",
        f"- Load: each server on core 0, `wrk -t1 -c{meta['connections']}` on core 1 "
        f"(`taskset`), 127.0.0.1 only; {meta['warmup']} s warm-up then {meta['duration']} s "
        f"measured per peer and round; {meta['rounds']} interleaved rounds; every server "
        "started fresh per measurement; every response checked (status and body), none failed.",
        f"- Tools: {m['rustc']} ({meta['build']} build), node {m['node']}, {m['wrk']}. wrk used "
        f"{median([x.wrk_pct for x in floor]):.0f}% of its core while driving bare axum (below "
        "100%: the server set the pace, not wrk, which also checks every response).",
        "- Same request shape within a group: same path length (a query string nobody reads pads "
        "the shorter paths), the same extra header, one session cookie (exception noted).",
        "- SQLite everywhere with Tessera's own settings: WAL journal, `synchronous=NORMAL`.",
        "- RSS: resident memory of the server process(es) after the measured load (idle: after "
        "start-up and sign-in, before any load). Others' CPU: the share of the machine's CPU "
        "that processes outside the benchmark used during the row's measured runs (median); "
        "figures from rows where it is high are the least trustworthy.",
        "- Every sample of every round: `benchmarks.json` beside this file.",
        "",
        f"![requests per second, log scale]({chart})",
        "",
    ]
    for group in ("verified", "create", "guest"):
        lines += [f"## {GROUP_TITLES[group]}", "",
                  "| peer | requests/s | × bare axum | p50 ms | × bare | p99 ms | × bare "
                  "| RSS MiB | × bare | idle RSS MiB | req/s over rounds | request bytes "
                  "| others' CPU |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        notes = []
        for row in table:
            if row.group != group and not (row.key == "axum" and group != "verified"):
                continue
            s = results[row.key]
            rps, p50 = median([x.rps for x in s]), median([x.p50_ms for x in s])
            p99, rss = median([x.p99_ms for x in s]), median([x.rss_mib for x in s])
            idle = median([x.idle_rss_mib for x in s])
            spread = f"{fmt_rps(min(x.rps for x in s))}–{fmt_rps(max(x.rps for x in s))}"
            label = row.label if row.group == group else f"{row.label}, GET (for scale)"
            lines.append(
                f"| {label} | {fmt_rps(rps)} | {fmt_ratio(rps / f_rps)} | {p50:.2f} | "
                f"{fmt_ratio(p50 / f_p50)} | {p99:.2f} | {fmt_ratio(p99 / f_p99)} | {rss:.1f} | "
                f"{fmt_ratio(rss / f_rss)} | {idle:.1f} | {spread} | {s[0].request_bytes} | "
                f"{median([x.others_pct for x in s]):.0f}% |")
            if row.note and row.group == group:
                notes.append(f"- {row.label}: {row.note}.")
        if group == "create" and SIGN_KEY in results:
            s = results[SIGN_KEY]
            sign = median([x.rps for x in s])
            spread = f"{fmt_rps(min(x.rps for x in s))}–{fmt_rps(max(x.rps for x in s))}"
            lines.append(f"| {SIGN_LABEL} | {fmt_rps(sign)} | {fmt_ratio(sign / f_rps)} | – | – "
                         f"| – | – | – | – | – | {spread} | – | "
                         f"{median([x.others_pct for x in s]):.0f}% |")
            if "tessera-create" in results:
                create = median([x.rps for x in results["tessera-create"]])
                notes.append(f"- Tessera create ÷ raw RSA-2048 sign (same run, same core): "
                             f"**{fmt_ratio(create / sign)}** (issue 16 asks for ≥ 0.75; a create "
                             "signs one access token, and here also crosses HTTP and the layer). "
                             "The ratio moves with the CPU's RSA speed, since the rest of a create "
                             "(the refresh token's PBKDF2, the row, HTTP) does not scale with it: "
                             "the slower the sign, the higher the ratio. CPU per sign, per create "
                             "and per PBKDF2 on this machine: `cargo bench -p tessera --bench "
                             "create_cpu` and `cargo bench -p tessera --bench engine -- sign`.")
            notes.append(f"- {SIGN_LABEL}: signatures/s of `bench-app --mode sign` (aws-lc, "
                         "400-byte message), one per round, pinned like the servers.")
        lines += [""] + notes + [""]
    lines += targets(results, f_rps)
    lines += [
        "## The peers",
        "",
        "Pinned to exact versions (`bench/peers/`): bare axum and tessera-axum are "
        "`examples/src/bin/bench-app.rs`; tower-sessions =0.14.0 with tower-sessions-sqlx-store "
        "=0.15.0 (`bench/peers/tower-sessions`); Better Auth 1.7.29 on better-sqlite3 12.11.1 "
        "and express 5.3.0 with supertokens-node 24.0.3 (`bench/peers/node`, from its "
        "package-lock.json). What each row does per request is in the notes under its table.",
        "",
        "Rerun: `scripts/bench-peers.sh` (`ROUNDS`, `DURATION`, `WARMUP`, `CONNECTIONS` "
        "override the defaults; `SMOKE=1` only checks that every peer answers).",
        "",
    ]
    return "\n".join(lines)


def targets(results: dict[str, list[Sample]], floor_rps: float) -> list[str]:
    """Issue 16's targets that this run measures, met or not."""
    def rps(key: str) -> float | None:
        return median([x.rps for x in results[key]]) if key in results else None
    checks = []
    if (t := rps("tessera")) is not None:
        checks.append(("verified request, cache on ≥ 0.9 × bare axum",
                       f"{t / floor_rps:.3f} ×", t / floor_rps >= 0.9))
        if (st := rps("supertokens")) is not None:
            checks.append(("verified request, cache on ≥ 25 × express + supertokens-node",
                           f"{t / st:.1f} ×", t / st >= 25))
    if (t := rps("tessera-guest")) is not None:
        checks.append(("first-visit anonymous mints ≥ 20,000/s", f"{t:,.0f}/s", t >= 20_000))
    if (t := rps("tessera-create")) is not None:
        checks.append(("session create on SQLite ≥ 3,000/s (here through HTTP and the layer)",
                       f"{t:,.0f}/s", t >= 3_000))
        if (sign := rps(SIGN_KEY)) is not None:
            checks.append(("session create on SQLite ≥ 0.75 × raw RSA-2048 sign (here through "
                           "HTTP and the layer)", f"{t / sign:.3f} × ({sign:,.0f} signs/s)",
                           t / sign >= 0.75))
    if "tessera" in results:
        idle = median([x.idle_rss_mib for x in results["tessera"]])
        checks.append(("RSS idle ≤ 20 MB (tessera-axum app)", f"{idle:.1f} MiB",
                       idle * 1.048576 <= 20))
    if not checks:
        return []
    out = ["## Against issue 16's targets", "", "| target | this run | met |", "|---|--:|:-:|"]
    out += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in checks]
    return out + [""]


def parse_report(text: str, table: list[Row]) -> int:
    """Rows of figures in the report; fails unless every peer has one with every number."""
    found = 0
    for row in table:
        label = re.escape(row.label)
        m = re.search(rf"^\| {label} \|(.*)\|$", text, re.M)
        if not m:
            raise RuntimeError(f"report: no row for {row.label!r}")
        cells = [c.strip() for c in m.group(1).split("|")]
        numbers = [cells[i] for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 10)]
        for cell in numbers:
            num, _, den = cell.replace(",", "").partition("/")
            value = float(num) / float(den or 1)
            if not value > 0:
                raise RuntimeError(f"report: {row.label!r} has {cell!r}")
        found += 1
    if any(r.key == "tessera-create" for r in table):
        m = re.search(rf"^\| {re.escape(SIGN_LABEL)} \| ([0-9,.]+) \|", text, re.M)
        if not m or not float(m.group(1).replace(",", "")) > 0:
            raise RuntimeError(f"report: no figure for {SIGN_LABEL!r}")
    return found


def wait_bounded(proc, bound_s: float):
    """Waits for `proc` (killed after `bound_s` if it has not stopped itself), sets its
    `returncode` and returns its resource usage (its own CPU time, from wait4)."""
    guard = threading.Timer(bound_s, proc.kill)
    guard.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        guard.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage


def kept_sections(path: Path) -> str:
    """The sections other scripts own in the report (`<!-- name:begin -->` … `<!-- name:end -->`,
    e.g. bench-growth.sh's), carried over when this script rewrites it."""
    old = path.read_text() if path.exists() else ""
    found = re.finditer(r"<!-- ([\w-]+):begin.*?<!-- \1:end -->", old, re.S)
    return "".join("\n" + m.group(0) + "\n" for m in found)


def chart(results: dict[str, list[Sample]], table: list[Row], out: Path, work: Path) -> None:
    data = work / "chart.dat"
    with open(data, "w") as f:
        x, previous = 0, None
        for row in table:
            x += 1 if previous in (None, row.group) else 2  # a gap between groups
            previous = row.group
            rps = median([s.rps for s in results[row.key]])
            group = ("verified", "create", "guest").index(row.group)
            f.write(f'{x} {rps:.1f} {group} "{row.short}"\n')
    gp = work / "chart.gp"
    gp.write_text(f"""
set terminal pngcairo size 1400,680 font "sans,10"
set output "{out}"
set title "Requests per second (median, log scale). Blue: verified request; orange: session \\
creation; green: guest first visit"
set logscale y
set yrange [0.1:*]
set grid ytics
set style fill solid 0.85 border -1
set boxwidth 0.75
set xtics rotate by 35 right nomirror
set bmargin 12
set lmargin 10
set key off
set ylabel "requests/s"
set palette defined (0 "#3b6fb6", 1 "#e08a2c", 2 "#3f9b4a")
set cbrange [0:2]
unset colorbox
plot "{data}" using 1:2:3:xtic(4) with boxes lc palette, \\
     "{data}" using 1:2:($2 >= 10 ? sprintf("%.0f", $2) : sprintf("%.1f", $2)) \\
         with labels offset 0,0.7 font "sans,8"
""")
    subprocess.run(["gnuplot", str(gp)], check=True, timeout=60)
    if not out.exists() or out.stat().st_size < 1000:
        raise RuntimeError("gnuplot wrote no chart")


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bins", type=Path, required=True,
                    help="directory with bench-app, tessera, peer-tower-sessions")
    ap.add_argument("--node-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="directory for benchmarks.md/.png")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated row keys (bare axum is always run)")
    args = ap.parse_args()
    if not (1 <= args.duration <= 30 and 0 <= args.warmup <= 10 and 1 <= args.rounds <= 10
            and 1 <= args.connections <= 256):
        ap.error("DURATION 1..30, WARMUP 0..10, ROUNDS 1..10, CONNECTIONS 1..256")
    if (os.cpu_count() or 1) < 2:
        ap.error("needs two cores: servers on core 0, wrk on core 1")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    table = rows()
    if args.only:
        keep = set(args.only.split(",")) | {"axum"}
        table = [r for r in table if r.key in keep]
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-peers."))
    ctx = Context(bins=args.bins.resolve(), node_dir=args.node_dir.resolve(), work=work)
    load_start = loadavg()
    results: dict[str, list[Sample]] = {r.key: [] for r in table}
    try:
        ctx.tessera_cookie = tessera_cookie(ctx)
        n = 0
        for rnd in range(args.rounds):
            order = table[rnd % len(table):] + table[:rnd % len(table)]
            for row in order:
                n += 1
                s = measure(ctx, row, args, n)
                results[row.key].append(s)
                print(f"round {rnd + 1}/{args.rounds}  {row.key:24} {s.rps:>10,.0f} req/s  "
                      f"p50 {s.p50_ms:7.2f} ms  p99 {s.p99_ms:7.2f} ms  RSS {s.rss_mib:6.1f} MiB"
                      f"  (wrk CPU {s.wrk_pct:.0f}%, others' CPU {s.others_pct:.0f}%)", flush=True)
                if row.key == "tessera-create":  # rule 8: right after it, the same core
                    s = measure_sign(ctx, args)
                    results.setdefault(SIGN_KEY, []).append(s)
                    print(f"round {rnd + 1}/{args.rounds}  {SIGN_KEY:24} {s.rps:>10,.0f} signs/s"
                          f"  (others' CPU {s.others_pct:.0f}%)", flush=True)
        load_end = loadavg()
        others = [x.others_pct for s in results.values() for x in s]
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "smoke": args.smoke,
            "machine": machine(), "load_start": load_start, "load_end": load_end,
            "others_mean": statistics.mean(others), "others_max": max(others),
            "busy": statistics.mean(others) > BUSY_PCT,
            "connections": args.connections, "warmup": args.warmup, "duration": args.duration,
            "rounds": args.rounds, "build": args.bins.resolve().name,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        chart(results, table, args.out / "benchmarks.png", work)
        text = report(results, table, meta, "benchmarks.png")
        (args.out / "benchmarks.md").write_text(text + kept_sections(args.out / "benchmarks.md"))
        raw = {"meta": meta, "samples": {k: [vars(x) for x in v] for k, v in results.items()}}
        (args.out / "benchmarks.json").write_text(json.dumps(raw, indent=1) + "\n")
        found = parse_report((args.out / "benchmarks.md").read_text(), table)
        if not args.smoke:
            print("\n" + text)
        print(f"{found} peers answered every request without an error; the report parses "
              f"({args.out / 'benchmarks.md'}, chart {args.out / 'benchmarks.png'})")
        return 0
    finally:
        PROCS.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
