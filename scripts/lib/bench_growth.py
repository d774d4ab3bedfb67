#!/usr/bin/env python3
"""The measuring half of scripts/bench-growth.sh: how Tessera's cost grows with the sessions stored.

Rules, in the order a run applies them:
1. One store per backend and size (a SQLite file; a PostgreSQL schema of its own, created and
   dropped by the run). `tessera serve` creates the tables (its migrations) and one real session
   through the API; that row is the template of the fill.
2. The fill is bulk SQL, not the API: N rows in `session_info` shaped like the engine's (UUID v4
   handles, 64-hex hash column, the template's session data and JWT payload, the engine's
   refresh-token lifetime), each with its `tessera_session_device` row, as `create` writes them.
   PostgreSQL: `generate_series` in one statement per table, then `VACUUM ANALYZE` (autovacuum
   would have analysed a table this size). SQLite: a recursive CTE in one transaction, no
   ANALYZE (the engine never runs one). Rows 2k and 2k+1 differ only in expiry (the odd ones
   two days later), so a clean-up "two days early" removes half of them, spread over the table.
3. A measurement starts `tessera serve` on one store (core 0; wrk on core 1; PostgreSQL itself
   is not pinned), creates SETUP real sessions through the API for verify and SETUP for
   refresh, then runs wrk (scripts/lib/session_load.lua): verify with checkDatabase (a 1 s
   warm-up first), refresh (each token used once, its successor next), create. Every answer is
   checked; one failure fails the run. Afterwards the server is stopped by PID and every row
   the measurement added is deleted, so each size stays N (+ SETUP×2 while measuring).
4. Rounds are interleaved (every store once per round) and each figure is the median over
   rounds. The 1-minute load average is recorded with every measurement.
5. The clean-up at the largest size: `bench-cleanup` (examples/src/bin/bench-cleanup.rs) runs the
   store's own batched DELETE in the engine's loop with `now` two days before the odd rows
   expire (half the rows), timing every statement, while a probe writer updates a live session
   every 5 ms.
6. Output: a Markdown section between markers in the report file, line charts (gnuplot PNG),
   the raw samples as JSON; the section is parsed back and the run fails if a figure is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peers as bp  # noqa: E402  (the process list, readiness, HTTP by hand, machine facts)

LUA = Path(__file__).resolve().parent / "session_load.lua"
DAY_MS = 86_400_000
MARK = "growth"
# Variables `tessera serve` would read: dropped so only the flags configure it.
SERVER_ENV_DROP = [
    "API_KEYS", "POSTGRESQL_CONNECTION_URI", "POSTGRESQL_TABLE_SCHEMA", "TESSERA_CONFIG",
    "TESSERA_SQLITE_PATH", "ACCESS_TOKEN_VALIDITY", "REFRESH_TOKEN_VALIDITY", "BASE_PATH",
    "ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL", "REFRESH_TOKEN_ROTATION_GRACE_PERIOD",
    "SUPERTOKENS_MAX_CDI_VERSION", "SUPERTOKENS_MIN_CDI_VERSION", "TESSERA_LOG",
    "TESSERA_STATIC_SIGNING_KEY", "SUPERTOKENS_HOST", "SUPERTOKENS_PORT", "LOG_LEVEL",
]
CREATE_BODY = ('{{"userId":"{user}","enableAntiCsrf":false,"userDataInJWT":{{"role":"user"}},'
               '"userDataInDatabase":{{}}}}')
CDI = {"content-type": "application/json", "cdi-version": "5.4"}


def log(msg: str) -> None:
    print(f"== [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# ---------------------------------------------------------------------------------------------
# Stores (rules 1 and 2)


class Store:
    kind = ""
    label = ""

    def server_flags(self) -> list[str]:
        raise NotImplementedError

    def sql(self, text: str) -> str:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class PgStore(Store):
    kind, label = "postgres", "PostgreSQL"

    def __init__(self, url: str, tag: str) -> None:
        self.url = url
        self.schema = f"tessera_growth_{uuid.uuid4().hex[:8]}_{tag}"

    def server_flags(self) -> list[str]:
        return ["--database-url", self.url, "--database-schema", self.schema]

    def sql(self, text: str) -> str:
        script = f'SET search_path TO "{self.schema}";\n{text}'
        out = subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-Atq", "-X"],
                             input=script, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()[:2000]}")
        return out.stdout.strip()

    def drop(self) -> None:
        subprocess.run(["psql", self.url, "-Atq", "-X", "-c",
                        f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'],
                       capture_output=True, timeout=300)

    def cleanup_flags(self) -> list[str]:
        return ["--postgres", self.url, "--schema", self.schema]

    def fill(self, n: int, now_ms: int, validity_ms: int) -> None:
        self.sql(f"""
INSERT INTO session_info (app_id, tenant_id, session_handle, user_id, refresh_token_hash_2,
    session_data, expires_at, created_at_time, jwt_user_payload, use_static_key)
SELECT 'public', 'public', gen_random_uuid()::text, 'bulk-user-' || (i / 2),
    md5(random()::text) || md5(random()::text), t.session_data,
    {now_ms + validity_ms} + (i % 2) * {2 * DAY_MS}, {now_ms} - (i % {DAY_MS}),
    t.jwt_user_payload, false
FROM generate_series(1, {n}) AS i,
    (SELECT session_data, jwt_user_payload FROM session_info
     WHERE user_id = 'growth-template' LIMIT 1) AS t;
INSERT INTO tessera_session_device (app_id, tenant_id, session_handle, user_agent, ip,
    created_at_time, last_active_at, signed_in_at)
SELECT app_id, tenant_id, session_handle, NULL, NULL, created_at_time, created_at_time,
    created_at_time
FROM session_info WHERE user_id <> 'growth-template';
VACUUM ANALYZE session_info;
VACUUM ANALYZE tessera_session_device;
""")


class SqliteFile(Store):
    kind, label = "sqlite", "SQLite"

    def __init__(self, work: Path, tag: str) -> None:
        self.path = work / f"growth-{tag}.db"

    def server_flags(self) -> list[str]:
        return ["--sqlite-path", str(self.path)]

    def sql(self, text: str) -> str:
        import sqlite3
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA foreign_keys = ON")
            rows = []
            for stmt in [s for s in text.split(";\n") if s.strip()]:
                rows += con.execute(stmt).fetchall()
            return "\n".join("|".join(str(c) for c in r) for r in rows)
        finally:
            con.close()

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def cleanup_flags(self) -> list[str]:
        return ["--sqlite", str(self.path)]

    def fill(self, n: int, now_ms: int, validity_ms: int) -> None:
        h = "lower(hex(randomblob({})))"
        handle = (f"{h.format(4)} || '-' || {h.format(2)} || '-4' || substr({h.format(2)}, 2) "
                  f"|| '-' || substr('89ab', 1 + abs(random()) % 4, 1) || "
                  f"substr({h.format(2)}, 2) || '-' || {h.format(6)}")
        self.sql(f"""PRAGMA synchronous = OFF;
PRAGMA cache_size = -1048576;
BEGIN;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
INSERT INTO session_info (app_id, tenant_id, session_handle, user_id, refresh_token_hash_2,
    session_data, expires_at, created_at_time, jwt_user_payload, use_static_key)
SELECT 'public', 'public', {handle}, 'bulk-user-' || (i / 2), {h.format(32)}, t.session_data,
    {now_ms + validity_ms} + (i % 2) * {2 * DAY_MS}, {now_ms} - (i % {DAY_MS}),
    t.jwt_user_payload, 0
FROM s, (SELECT session_data, jwt_user_payload FROM session_info
         WHERE user_id = 'growth-template' LIMIT 1) AS t;
INSERT INTO tessera_session_device (app_id, tenant_id, session_handle, user_agent, ip,
    created_at_time, last_active_at, signed_in_at)
SELECT app_id, tenant_id, session_handle, NULL, NULL, created_at_time, created_at_time,
    created_at_time
FROM session_info WHERE user_id <> 'growth-template';
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE)""")


# ---------------------------------------------------------------------------------------------
# The server and the API (rule 3)


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_DROP}
    return env


def start_server(binary: Path, store: Store, log_path: Path, pin: bool = True,
                 ) -> tuple[object, str]:
    argv = [str(binary), "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "error",
            *store.server_flags()]
    if pin:
        proc = bp.PROCS.start(argv, log_path, env=server_env())
    else:
        out = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=server_env())
        out.close()
        bp.PROCS.running.append(proc)
    url = bp.wait_listening(proc, log_path)
    return proc, url


def stop(proc) -> None:
    """SIGTERM, then SIGKILL after the grace time; forgotten by the process list."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=bp.STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in bp.PROCS.running:
        bp.PROCS.running.remove(proc)


def create_session(url: str, user: str) -> tuple[str, str]:
    answer = bp.call(url, "POST", "/public/recipe/session", CDI, CREATE_BODY.format(user=user))
    if answer.status != 200 or '"status":"OK"' not in answer.body:
        raise RuntimeError(f"create {user}: {answer.status} {answer.body[:200]}")
    body = json.loads(answer.body)
    return body["accessToken"]["token"], body["refreshToken"]["token"]


def create_sessions(url: str, prefix: str, n: int) -> list[tuple[str, str]]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda i: create_session(url, f"{prefix}-{i}"), range(n)))


@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


def run_wrk(url: str, mode: str, seconds: int, connections: int, threads: int = 1,
            tokens: Path | None = None, pin: bool = True, ports: list[int] | None = None,
            ) -> Figures:
    """One bounded wrk run with session_load.lua; fails on any error. A run in which no answer
    came back at all (a server stalled on a busy machine's disk) is repeated, twice as long, at
    most twice: a slow server gets measured, a dead one still fails the run. (A refresh token
    sent again is the same rotation: its successor was never used.)"""
    for attempt in range(3):
        try:
            return wrk_once(url, mode, seconds * 2**attempt, connections, threads, tokens, pin,
                            ports, allow_none=attempt < 2)
        except NoAnswer:
            log(f"{mode}: no answer within {seconds * 2**attempt} s; again, longer")
    raise AssertionError("unreachable")


class NoAnswer(Exception):
    pass


def wrk_once(url: str, mode: str, seconds: int, connections: int, threads: int,
             tokens: Path | None, pin: bool, ports: list[int] | None,
             allow_none: bool) -> Figures:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
            "-s", str(LUA), url, "--", mode, str(threads)]
    if tokens:
        argv.append(str(tokens))
    if pin:
        argv = ["taskset", "-c", bp.WRK_CORE, *argv]
    env = dict(os.environ)
    env["TESSERA_WRK_PORTS"] = ",".join(map(str, ports or []))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    bp.PROCS.running.append(proc)
    guard = threading.Timer(seconds + 60, proc.kill)
    guard.start()
    try:
        out, _ = proc.communicate()
    finally:
        guard.cancel()
        if proc in bp.PROCS.running:
            bp.PROCS.running.remove(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}")
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    f = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    errors = f["connect"] + f["read"] + f["write"] + f["timeout"] + f["status"] + f["bad"]
    if f["requests"] == 0 and not errors and allow_none:
        raise NoAnswer()
    if errors or f["requests"] == 0:
        first = re.search(r"^FIRST_BAD (.*)$", out, re.M)
        raise RuntimeError(f"{mode} on {url}: {errors} failed requests of {f['requests']} "
                           f"({m.group(1)}); first bad answer: {first.group(1) if first else '-'}")
    return Figures(f["requests"] / max(f["duration_us"] / 1e6, 1e-6), f["p50_us"] / 1000,
                   f["p99_us"] / 1000, f["requests"])


# ---------------------------------------------------------------------------------------------
# One measurement


@dataclass
class Sample:
    store: str
    size: int
    rows: int
    create_rps: float
    refresh_rps: float
    verify_rps: float
    verify_p50_ms: float
    verify_p99_ms: float
    create_p99_ms: float
    refresh_p99_ms: float
    load1: float


def measure(args: argparse.Namespace, binary: Path, store: Store, size: int, work: Path,
            n: int) -> Sample:
    run = work / f"{n:03d}"
    run.mkdir()
    proc = None
    try:
        proc, url = start_server(binary, store, run / "server.log")
        sessions = create_sessions(url, "growth-setup", 2 * args.setup)
        access, refresh = run / "access.txt", run / "refresh.txt"
        access.write_text("\n".join(a for a, _ in sessions[:args.setup]) + "\n")
        refresh.write_text("\n".join(r for _, r in sessions[args.setup:]) + "\n")
        rows = int(store.sql("SELECT count(*) FROM session_info"))
        loads = [load1()]
        if args.warmup:
            run_wrk(url, "verify", args.warmup, args.connections, tokens=access)
        verify = run_wrk(url, "verify", args.duration, args.connections, tokens=access)
        loads.append(load1())
        refreshed = run_wrk(url, "refresh", args.duration, args.connections, tokens=refresh)
        loads.append(load1())
        created = run_wrk(url, "create", args.duration, args.connections)
        loads.append(load1())
        return Sample(store.kind, size, rows, created.rps, refreshed.rps, verify.rps,
                      verify.p50_ms, verify.p99_ms, created.p99_ms, refreshed.p99_ms,
                      statistics.mean(loads))
    finally:
        if proc is not None:
            stop(proc)
        store.sql("DELETE FROM session_info WHERE user_id LIKE 'growth-create-%' "
                  "OR user_id LIKE 'growth-setup-%'")
        shutil.rmtree(run, ignore_errors=True)


def prepare(args: argparse.Namespace, binary: Path, store: Store, size: int, work: Path) -> None:
    """Tables by the server's migrations, the template session by the API, then the bulk fill."""
    log_path = work / f"prepare-{store.kind}-{size}.log"
    proc, url = start_server(binary, store, log_path)
    try:
        create_session(url, "growth-template")
    finally:
        stop(proc)
    row = store.sql("SELECT created_at_time, expires_at - created_at_time FROM session_info "
                    "WHERE user_id = 'growth-template'")
    now_ms, validity_ms = (int(x) for x in row.split("|"))
    began = time.monotonic()
    store.fill(size, now_ms, validity_ms)
    took = time.monotonic() - began
    count = int(store.sql("SELECT count(*) FROM session_info"))
    devices = int(store.sql("SELECT count(*) FROM tessera_session_device"))
    if count != size + 1 or devices != size + 1:
        raise RuntimeError(f"{store.label} {size}: filled {count} sessions, {devices} devices")
    store.fill_s = took  # type: ignore[attr-defined]
    store.now_ms, store.validity_ms = now_ms, validity_ms  # type: ignore[attr-defined]
    log(f"{store.label}: {size:,} sessions filled in {took:.1f} s")


# ---------------------------------------------------------------------------------------------
# The clean-up at the largest size (rule 5)


@dataclass
class Cleanup:
    store: str
    rows: int
    batches: int
    wall_s: float
    batch_ms: list[float] = field(default_factory=list)
    probe_before_ms: list[float] = field(default_factory=list)
    probe_during_ms: list[float] = field(default_factory=list)
    load1: float = 0.0


def measure_cleanup(cleanup_bin: Path, store: Store) -> Cleanup:
    probe = store.sql("SELECT session_handle FROM session_info WHERE user_id LIKE 'bulk-user-%' "
                      f"AND expires_at > {store.now_ms + store.validity_ms} LIMIT 1")  # type: ignore
    # Two days before the odd rows expire: every even row (and the template) has expired.
    now = store.now_ms + store.validity_ms + DAY_MS  # type: ignore[attr-defined]
    argv = [str(cleanup_bin), *store.cleanup_flags(), "--now-ms", str(now),
            "--probe-handle", probe]
    before = load1()
    out = subprocess.run(["taskset", "-c", bp.SERVER_CORE, *argv], capture_output=True,
                         text=True, timeout=1800, env=server_env())
    if out.returncode != 0:
        raise RuntimeError(f"bench-cleanup failed: {out.stderr[-2000:]}")
    c = Cleanup(store.kind, 0, 0, 0.0, load1=(before + load1()) / 2)
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["BATCH"]:
            c.batch_ms.append(int(parts[3]) / 1000)
        elif parts[:1] == ["PROBE"]:
            (c.probe_before_ms if parts[1] == "before" else c.probe_during_ms).append(
                int(parts[2]) / 1000)
        elif parts[:1] == ["TOTAL"]:
            f = {k: int(v) for k, v in (kv.split("=") for kv in parts[1:])}
            c.rows, c.batches, c.wall_s = f["rows"], f["batches"], f["wall_us"] / 1e6
    if not c.batches or not c.batch_ms:
        raise RuntimeError(f"bench-cleanup printed no result:\n{out.stdout[-2000:]}")
    left = int(store.sql("SELECT count(*) FROM session_info"))
    log(f"{store.label}: clean-up removed {c.rows:,} sessions in {c.batches} statements, "
        f"{c.wall_s:.1f} s; {left:,} left")
    return c


# ---------------------------------------------------------------------------------------------
# Report (rule 6)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def size_label(n: int) -> str:
    return f"{n // 1_000_000} M" if n >= 1_000_000 and n % 1_000_000 == 0 else \
        f"{n // 1000} k" if n % 1000 == 0 else str(n)


def med(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def charts(results: dict, cleanups: list[Cleanup], stores: list[str], sizes: list[int],
           img: Path, work: Path) -> list[str]:
    img.mkdir(parents=True, exist_ok=True)
    names = []
    data = work / "growth.dat"
    with open(data, "w") as f:
        for kind in stores:
            f.write(f"# {kind}\n")
            for size in sizes:
                s = results[(kind, size)]
                f.write(f"{size} {med(s, 'create_rps'):.1f} {med(s, 'refresh_rps'):.1f} "
                        f"{med(s, 'verify_rps'):.1f} {med(s, 'verify_p50_ms'):.3f} "
                        f"{med(s, 'verify_p99_ms'):.3f}\n")
            f.write("\n\n")
    label = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    common = """set terminal pngcairo size 1000,560 font "sans,10"
set logscale x
set grid
set key outside right
set xlabel "live sessions in the store (log scale)"
set format x "%.0s%c"
""" + f"set xrange [{sizes[0] / 2}:{sizes[-1] * 2}]\n"
    styles = {"sqlite": "lw 2 pt 7", "postgres": "lw 2 pt 5 dt 2"}
    t = img / "growth-throughput.png"
    plots = []
    for i, kind in enumerate(stores):
        for col, what in ((2, "create"), (3, "refresh"), (4, "verify (checkDatabase)")):
            plots.append(f'"{data}" index {i} using 1:{col} with linespoints {styles[kind]} '
                         f'title "{label[kind]} {what}"')
    (work / "t.gp").write_text(common + f"""set output "{t}"
set title "Requests per second against live sessions in the store (median of rounds)"
set ylabel "requests/s"
set yrange [0:*]
plot {", ".join(plots)}
""")
    v = img / "growth-verify-latency.png"
    plots = []
    for i, kind in enumerate(stores):
        plots.append(f'"{data}" index {i} using 1:6 with linespoints {styles[kind]} '
                     f'title "{label[kind]} p99"')
        plots.append(f'"{data}" index {i} using 1:5 with linespoints {styles[kind]} '
                     f'title "{label[kind]} p50"')
    (work / "v.gp").write_text(common + f"""set output "{v}"
set title "Verify with checkDatabase: latency against live sessions (median of rounds)"
set ylabel "ms"
set yrange [0:*]
plot {", ".join(plots)}
""")
    scripts = [work / "t.gp", work / "v.gp"]
    names += [t.name, v.name]
    if cleanups:
        cdata = work / "cleanup.dat"
        with open(cdata, "w") as f:
            for c in cleanups:
                f.write(f"# {c.store}\n")
                for i, ms in enumerate(c.batch_ms, 1):
                    f.write(f"{i} {ms:.3f}\n")
                f.write("\n\n")
        cl = img / "growth-cleanup.png"
        plots = [f'"{cdata}" index {i} using 1:2 with lines lw 1.5 title '
                 f'"{label[c.store]}: {c.rows:,} rows, {c.wall_s:.1f} s"'
                 for i, c in enumerate(cleanups)]
        (work / "c.gp").write_text(f"""set terminal pngcairo size 1000,560 font "sans,10"
set output "{cl}"
set grid
set key outside right
set title "Expired-session clean-up: time of each DELETE statement (up to 1,000 rows each)"
set xlabel "statement number"
set xrange [0:{max(c.batches for c in cleanups) + 1}]
set ylabel "ms"
set yrange [0:*]
plot {", ".join(plots)}
""")
        scripts.append(work / "c.gp")
        names.append(cl.name)
    for gp in scripts:
        subprocess.run(["gnuplot", str(gp)], check=True, timeout=60)
    for name in names:
        p = img / name
        if not p.exists() or p.stat().st_size < 1000:
            raise RuntimeError(f"gnuplot wrote no chart {p}")
    return names


def report(results: dict, cleanups: list[Cleanup], stores: list[str], sizes: list[int],
           meta: dict, chart_names: list[str], img_rel: str) -> str:
    label = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    m = meta["machine"]
    lines = [
        f"<!-- {MARK}:begin (written by scripts/bench-growth.sh; kept by bench-peers.sh) -->",
        "## How cost grows with the sessions stored",
        "",
        f"Generated by `scripts/bench-growth.sh` on {meta['date']}"
        + (" — **SMOKE run: figures meaningless**" if meta["smoke"] else "") + ".",
        "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, {meta['postgres']}; "
        f"load average (1/5/15 min) {meta['load_start']} at the start, {meta['load_end']} at "
        "the end; the 1-minute load during each measurement is in the table. "
        + ("**Taken under load: other processes shared the cores"
           + (f" ({meta['load_note']})" if meta["load_note"] else "")
           + ", so the absolute figures are low and noisy; the ratios between sizes, measured "
           "in interleaved rounds, are the point.** " if meta["busy"] else "")
        + "Rerun on a quiet machine: `scripts/bench-growth.sh`.",
        f"- Stores: for each backend and size a store of its own, filled in bulk with SQL (not "
        "through the API) with rows shaped like the engine's — `session_info` and "
        "`tessera_session_device` rows, UUID v4 handles, the JWT payload and session data of a "
        "real session — then, for each measurement, "
        f"{2 * meta['setup']} real sessions created through the API ({meta['setup']} for "
        f"verify, {meta['setup']} for refresh) and removed afterwards with every session the "
        "create run added. PostgreSQL: `generate_series`, then `VACUUM ANALYZE`; SQLite: a "
        "recursive CTE in one transaction (WAL, `synchronous=NORMAL` as the engine sets).",
        f"- Load: `tessera serve` ({meta['build']} build) on core 0, "
        f"`wrk -t1 -c{meta['connections']}` on core 1 (`taskset`), 127.0.0.1 only; PostgreSQL "
        "is not pinned (it runs wherever the kernel puts it). "
        f"Per measurement: verify with `checkDatabase: true` ({meta['warmup']} s warm-up, then "
        f"{meta['duration']} s), refresh ({meta['duration']} s; every request a valid "
        f"rotation), create ({meta['duration']} s). {meta['rounds']} interleaved rounds, "
        "medians; every response checked (HTTP 200 and `\"status\":\"OK\"`), none failed.",
        "- The verified and refreshed sessions are the few hundred real ones: their primary-key "
        "lookups walk the full-size index (handles are random), while their rows sit together "
        "at the end of the table — the index depth and cache footprint grow with the store, "
        "the hot rows do not scatter.",
        "",
    ]
    lines += [f"![{n}]({img_rel}/{n})" for n in chart_names[:2]] + [""]
    lines += ["| store | live sessions | create/s | refresh/s | verify (DB) req/s | "
              "verify p50 ms | p50 × smallest | verify p99 ms | p99 × smallest | "
              "rows while measured | fill s | load (1 min) |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    ratios, ratios50 = {}, {}
    for kind in stores:
        base = med(results[(kind, sizes[0])], "verify_p99_ms")
        base50 = med(results[(kind, sizes[0])], "verify_p50_ms")
        for size in sizes:
            s = results[(kind, size)]
            p99, p50 = med(s, "verify_p99_ms"), med(s, "verify_p50_ms")
            ratios[(kind, size)], ratios50[(kind, size)] = p99 / base, p50 / base50
            lines.append(
                f"| {label[kind]} | {size:,} | {fmt(med(s, 'create_rps'))} | "
                f"{fmt(med(s, 'refresh_rps'))} | {fmt(med(s, 'verify_rps'))} | "
                f"{p50:.2f} | {ratios50[(kind, size)]:.2f} | {p99:.2f} | "
                f"{ratios[(kind, size)]:.2f} | "
                f"{s[0].rows:,} | {meta['fill_s'][f'{kind}-{size}']:.1f} | "
                f"{statistics.mean(x.load1 for x in s):.1f} |")
    lines.append("")
    big, small = sizes[-1], sizes[0]
    lines += [f"Issue 16's target — verify with `checkDatabase` p99 at {size_label(big)} within "
              f"1.5 × its p99 at {size_label(small)}:", ""]
    for kind in stores:
        r = ratios[(kind, big)]
        lines.append(f"- {label[kind]}: {med(results[(kind, big)], 'verify_p99_ms'):.2f} ms / "
                     f"{med(results[(kind, small)], 'verify_p99_ms'):.2f} ms = **{r:.2f} ×** — "
                     + ("met" if r <= 1.5 else "**not met**")
                     + f" (p50: {ratios50[(kind, big)]:.2f} ×; p99 over rounds "
                     + ", ".join(f"{x.verify_p99_ms:.1f}" for x in results[(kind, big)])
                     + " ms at " + size_label(big) + ", "
                     + ", ".join(f"{x.verify_p99_ms:.1f}" for x in results[(kind, small)])
                     + " ms at " + size_label(small) + ")")
    lines += ["", "The p99 of one 5 s run moves with whatever else the machine is doing (a "
              "descheduled server thread holds every queued request), which the spread over "
              "rounds above shows; the p50 is the steadier sign of what the store's size "
              "costs. On a shared machine read the p99 ratio with its spread.", ""]
    if cleanups:
        lines += [
            f"### Expired-session clean-up at {size_label(big)}", "",
            f"![statement times]({img_rel}/{chart_names[-1]})", "",
            f"Half of the {big:,} bulk rows expired (every other row, so they are spread over "
            "the table and its indexes). `bench-cleanup` (examples/src/bin/bench-cleanup.rs) "
            "runs the store's own `delete_expired_sessions` — the statement "
            "`SessionEngine::cleanup` runs — in the engine's loop (batches of the store's "
            "`cleanup_batch()`: 250 rows on SQLite, `SQLITE_CLEANUP_BATCH`, 1,000 on PostgreSQL, "
            "`CLEANUP_BATCH`; a pause as long as the statement between batches, at least 2 ms), "
            "timing each statement, with the device rows removed by the foreign key's cascade. "
            "A probe writer updates a live session's data every 5 ms, 1 s before and then during "
            "the clean-up. On SQLite a statement holds the database's only write lock for its "
            "whole run (and the store's one writer connection: the probe queues behind it), so "
            "the longest statement is the longest write-lock hold; on PostgreSQL "
            "a statement locks only the rows it deletes, so the probe there shows contention, "
            "not a lock wait.", "",
            "| store | rows deleted | statements | total s | statement p50 ms | p99 ms | "
            "longest (write-lock hold) ms | probe write p99 / max ms, before | during | "
            "load (1 min) |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for c in cleanups:
            lines.append(
                f"| {label[c.store]} | {c.rows:,} | {c.batches:,} | {c.wall_s:.2f} | "
                f"{pct(c.batch_ms, 50):.1f} | {pct(c.batch_ms, 99):.1f} | {max(c.batch_ms):.1f} | "
                f"{pct(c.probe_before_ms, 99):.1f} / {max(c.probe_before_ms or [0]):.1f} | "
                f"{pct(c.probe_during_ms, 99):.1f} / {max(c.probe_during_ms or [0]):.1f} | "
                f"{c.load1:.1f} |")
        lines.append("")
    lines += [f"Raw samples: `{meta['json']}`. Rerun: `scripts/bench-growth.sh` (`SIZES`, "
              "`ROUNDS`, `DURATION`, `CONNECTIONS`, `STORES` override the defaults; `SMOKE=1` "
              "checks only that every measurement answered and the section parses).", "",
              f"<!-- {MARK}:end -->"]
    return "\n".join(lines)


def replace_section(path: Path, mark: str, section: str) -> None:
    """Puts `section` between the file's `<!-- mark:begin … -->`/`<!-- mark:end -->` markers,
    or appends it."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"<!-- {re.escape(mark)}:begin.*?<!-- {re.escape(mark)}:end -->",
                         re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text.rstrip("\n") + "\n")


def parse_section(text: str, stores: list[str], sizes: list[int]) -> int:
    """Rows of the growth table with every figure present (rule 6)."""
    m = re.search(rf"<!-- {MARK}:begin.*?<!-- {MARK}:end -->", text, re.S)
    if not m:
        raise RuntimeError("no growth section in the report")
    rows = [line for line in m.group(0).splitlines()
            if re.match(r"^\| (SQLite|PostgreSQL) \| [\d,]+ \|", line)]
    good = 0
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 12 and all(re.match(r"^[\d,.]+$", c) for c in cells[1:]):
            good += 1
    if good != len(stores) * len(sizes):
        raise RuntimeError(f"the growth table has {good} complete rows, expected "
                           f"{len(stores) * len(sizes)}")
    return good


# ---------------------------------------------------------------------------------------------


def compact_json(raw: dict) -> str:
    """Indented JSON with every list of numbers on one line (the clean-up's timings)."""
    text = json.dumps(raw, indent=1)
    return re.sub(r"\[([\d.,\s-]+)\]", lambda m: "[" + re.sub(r"\s+", "", m.group(1)) + "]",
                  text) + "\n"


def postgres_version(url: str) -> str:
    out = subprocess.run(["psql", url, "-Atq", "-X", "-c", "SHOW server_version"],
                         capture_output=True, text=True, timeout=30)
    return f"PostgreSQL {out.stdout.strip().split()[0]}" if out.returncode == 0 else "PostgreSQL ?"


def render(args: argparse.Namespace) -> int:
    """Redraws the section and charts from a run's raw samples (no measurement)."""
    raw = json.loads(args.render.read_text())
    meta = raw["meta"]
    samples = [Sample(**s) for s in raw["samples"]]
    cleanups = [Cleanup(**c) for c in raw["cleanup"]]
    stores = list(dict.fromkeys(s.store for s in samples))
    sizes = sorted({s.size for s in samples})
    results: dict = {}
    for s in samples:
        results.setdefault((s.store, s.size), []).append(s)
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-growth."))
    try:
        img_rel = os.path.relpath(args.img.resolve(), args.out.resolve().parent)
        names = charts(results, cleanups, stores, sizes, args.img, work)
        replace_section(args.out, MARK, report(results, cleanups, stores, sizes, meta, names,
                                               img_rel))
        parse_section(args.out.read_text(), stores, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bins", type=Path, required=True, help="directory with tessera, bench-cleanup")
    ap.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/test")
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--setup", type=int, default=256, help="real sessions for verify and refresh")
    ap.add_argument("--out", type=Path, required=True, help="the Markdown report to update")
    ap.add_argument("--img", type=Path, required=True, help="directory for the charts")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--no-cleanup", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--render", type=Path, help="only redraw the report from this raw JSON")
    args = ap.parse_args()
    if args.render:
        return render(args)
    stores = [s for s in args.stores.split(",") if s]
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    if not stores or set(stores) - {"sqlite", "postgres"} or not sizes:
        ap.error("STORES: sqlite and/or postgres; SIZES: at least one")
    if not (1 <= args.duration <= 30 and 0 <= args.warmup <= 10 and 1 <= args.rounds <= 10
            and 1 <= args.connections <= 256 and args.connections <= args.setup <= 5000
            and all(1000 <= s <= 10_000_000 for s in sizes)):
        ap.error("DURATION 1..30, WARMUP 0..10, ROUNDS 1..10, CONNECTIONS 1..256 and at most "
                 "SETUP (≤ 5000), SIZES 1000..10000000")
    if (os.cpu_count() or 1) < 2:
        ap.error("needs two cores: the server on core 0, wrk on core 1")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    binary, cleanup_bin = args.bins / "tessera", args.bins / "bench-cleanup"
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-growth."))
    free_gb = shutil.disk_usage(work).free / 2**30
    need_gb = sum(sizes) * len(stores) * 700 / 2**30 + 1  # ~0.5 KiB a session with its indexes
    if free_gb < need_gb:
        raise SystemExit(f"{free_gb:.1f} GiB free under {work}; the stores need about "
                         f"{need_gb:.1f} GiB")
    log(f"{free_gb:.0f} GiB free under {work}; load {bp.loadavg()}")
    made: dict[tuple[str, int], Store] = {}
    load_start = bp.loadavg()
    try:
        for kind in stores:
            for size in sizes:
                tag = size_label(size).replace(" ", "").lower()
                store = PgStore(args.postgres, tag) if kind == "postgres" else SqliteFile(work, tag)
                made[(kind, size)] = store
                prepare(args, binary, store, size, work)
        results: dict[tuple[str, int], list[Sample]] = {k: [] for k in made}
        order = list(made)
        n = 0
        for rnd in range(args.rounds):
            turn = order[rnd % len(order):] + order[:rnd % len(order)]
            for key in turn:
                n += 1
                s = measure(args, binary, made[key], key[1], work, n)
                results[key].append(s)
                log(f"round {rnd + 1}/{args.rounds} {made[key].label:10} {key[1]:>9,}: "
                    f"create {s.create_rps:7,.0f}/s  refresh {s.refresh_rps:7,.0f}/s  verify "
                    f"{s.verify_rps:7,.0f}/s p50 {s.verify_p50_ms:6.2f} p99 "
                    f"{s.verify_p99_ms:6.2f} ms  (load {s.load1:.1f})")
        cleanups = []
        if not args.no_cleanup:
            for kind in stores:
                cleanups.append(measure_cleanup(cleanup_bin, made[(kind, sizes[-1])]))
        load_end = bp.loadavg()
        loads = [s.load1 for v in results.values() for s in v]
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "smoke": args.smoke,
            "machine": bp.machine(), "postgres": postgres_version(args.postgres),
            "load_start": load_start, "load_end": load_end,
            # Busy beyond its own server, wrk and PostgreSQL (up to ~3 runnable between them).
            "busy": statistics.mean(loads) > 3.0, "setup": args.setup,
            "connections": args.connections, "warmup": args.warmup, "duration": args.duration,
            "rounds": args.rounds, "build": args.bins.resolve().name,
            "fill_s": {f"{k}-{s}": st.fill_s for (k, s), st in made.items()},  # type: ignore
            "json": args.json.name, "load_note": os.environ.get("LOAD_NOTE", ""),
        }
        img_rel = os.path.relpath(args.img.resolve(), args.out.resolve().parent)
        names = charts(results, cleanups, stores, sizes, args.img, work)
        section = report(results, cleanups, stores, sizes, meta, names, img_rel)
        replace_section(args.out, MARK, section)
        raw = {"meta": meta,
               "samples": [vars(s) for v in results.values() for s in v],
               "cleanup": [vars(c) for c in cleanups]}
        args.json.write_text(compact_json(raw))
        found = parse_section(args.out.read_text(), stores, sizes)
        if not args.smoke:
            print("\n" + section)
        print(f"{found} store sizes answered every request; the section parses ({args.out}, "
              f"charts in {args.img})")
        return 0
    finally:
        bp.PROCS.stop_all()
        for store in made.values():
            store.drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
