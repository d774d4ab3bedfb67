"""Starts `tessera serve`, creates an isolated app and initialises supertokens-python for it.

TESSERA_BIN (default <repo>/target/debug/tessera) is started on a free port with a temporary
SQLite file, or on PostgreSQL in a fresh schema when TESSERA_DATABASE_URL is set.
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import httpx
import pytest

from supertokens_python import InputAppInfo, SupertokensConfig, init
from supertokens_python.querier import Querier
from supertokens_python.recipe import session

REPO = Path(__file__).resolve().parents[3]
ISS = "http://localhost:3001/auth"


def _server_env() -> Dict[str, str]:
    """The caller's environment minus anything the server would read as configuration."""
    env = dict(os.environ)
    for key in list(env):
        if (
            (key.startswith("TESSERA_") and key != "TESSERA_LOG")
            or key.startswith("SUPERTOKENS_")
            or key.startswith("POSTGRESQL_")
            or key
            in (
                "API_KEYS",
                "ACCESS_TOKEN_VALIDITY",
                "REFRESH_TOKEN_VALIDITY",
                "BASE_PATH",
                "ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL",
                "REFRESH_TOKEN_ROTATION_GRACE_PERIOD",
            )
        ):
            del env[key]
    env["LOG_LEVEL"] = "error"
    return env


@pytest.fixture(scope="session")
def core_url() -> Iterator[str]:
    binary = os.environ.get("TESSERA_BIN") or str(REPO / "target" / "debug" / "tessera")
    tmp = tempfile.mkdtemp(prefix="tessera-python-")
    pg = os.environ.get("TESSERA_DATABASE_URL")
    if pg:
        store = ["--database-url", pg, "--database-schema", f"tessera_test_{uuid.uuid4().hex}"]
    else:
        store = ["--sqlite-path", os.path.join(tmp, "t.db")]
    proc = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", "0", *store],
        stdout=subprocess.PIPE,
        env=_server_env(),
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)  # a server that never prints is killed
    watchdog.start()
    try:
        line = proc.stdout.readline() if proc.stdout else ""
    finally:
        watchdog.cancel()
    try:
        match = re.search(r"listening on (http://\S+)", line)
        assert match, f"tessera ({binary}) did not start: {line!r} (exit {proc.poll()})"
        expected_store = r"\(store: PostgreSQL .*schema tessera_test_" if pg else r"\(store: SQLite file "
        assert re.search(expected_store, line), line
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def app_id(core_url: str) -> Iterator[str]:
    app = f"t-{uuid.uuid4()}"
    headers = {"cdi-version": "5.4"}
    r = httpx.put(
        f"{core_url}/recipe/multitenancy/app/v2",
        json={
            "appId": app,
            "coreConfig": {"access_token_validity": 60, "refresh_token_rotation_grace_period": 1},
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "OK", "createdNew": True}
    init(
        app_info=InputAppInfo(
            app_name="compat",
            api_domain="http://localhost:3001",
            website_domain="http://localhost:3000",
            api_base_path="/auth",
        ),
        framework="fastapi",
        mode="asgi",
        supertokens_config=SupertokensConfig(connection_uri=f"{core_url}/appid-{app}"),
        recipe_list=[session.init(anti_csrf="NONE")],
        telemetry=False,
    )
    yield app
    r = httpx.post(f"{core_url}/recipe/multitenancy/app/remove", json={"appId": app}, headers=headers)
    assert r.json() == {"status": "OK", "didExist": True}


class CoreCalls:
    """Records the SDK's requests to the core as (METHOD, path) with the app prefix removed."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str, Any]] = []

    def take(self) -> List[Tuple[str, str]]:
        out = [(m, p) for m, p, _ in self.calls if p != "/apiversion"]
        self.calls.clear()
        return out

    def take_with_bodies(self) -> List[Tuple[str, str, Any]]:
        out = [c for c in self.calls if c[1] != "/apiversion"]
        self.calls.clear()
        return out


@pytest.fixture()
def core_calls(app_id: str, monkeypatch: pytest.MonkeyPatch) -> CoreCalls:
    recorder = CoreCalls()
    original = Querier.api_request

    async def recording(self: Querier, url: str, method: str, attempts: int, *args: Any, **kwargs: Any):
        path = re.sub(r"^/appid-[^/]+", "", httpx.URL(url).path)
        recorder.calls.append((method, path, kwargs.get("json")))
        return await original(self, url, method, attempts, *args, **kwargs)

    monkeypatch.setattr(Querier, "api_request", recording)
    return recorder
