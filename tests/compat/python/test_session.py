"""supertokens-python (CDI 5.4) against `tessera serve`: create, verify (locally through the
JWKS and with a database check), refresh with promotion, and token theft."""

import base64
import hashlib
import json
import time
import uuid
from typing import Any, Dict, Optional, Tuple

import pytest

from supertokens_python.recipe.session.exceptions import (
    TokenTheftError,
    TryRefreshTokenError,
    UnauthorisedError,
)
from supertokens_python.recipe.session.syncio import (
    create_new_session_without_request_response,
    get_all_session_handles_for_user,
    get_session_information,
    get_session_without_request_response,
    refresh_session_without_request_response,
    revoke_session,
)
from supertokens_python.types import RecipeUserId

from conftest import ISS, CoreCalls


def decode(token: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    def part(p: str) -> Dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))

    header, payload = token.split(".")[:2]
    return part(header), part(payload)


def sha256hex(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def new_user() -> RecipeUserId:
    return RecipeUserId(f"user-{uuid.uuid4()}")


def create(payload: Optional[Dict[str, Any]] = None, data: Optional[Dict[str, Any]] = None):
    uid = new_user()
    s = create_new_session_without_request_response("public", uid, payload or {}, data or {})
    return s, uid, s.get_all_session_tokens_dangerously()


def test_create(core_calls: CoreCalls) -> None:
    uid = new_user()
    s = create_new_session_without_request_response("public", uid, {"role": "admin"}, {"n": 1})
    assert core_calls.take_with_bodies() == [
        ("GET", "/user/id", None),
        (
            "POST",
            "/public/recipe/session",
            {
                "userId": uid.get_as_string(),
                "userDataInJWT": {"role": "admin", "iss": ISS},
                "userDataInDatabase": {"n": 1},
                "useDynamicSigningKey": True,
                "enableAntiCsrf": False,
            },
        ),
    ]
    tokens = s.get_all_session_tokens_dangerously()
    header, claims = decode(tokens["accessToken"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["version"] == "5"
    assert header["kid"].startswith("d-")
    assert claims == {
        "sub": uid.get_as_string(),
        "rsub": uid.get_as_string(),
        "tId": "public",
        "iat": claims["iat"],
        "exp": claims["iat"] + 60,
        "sessionHandle": s.get_handle(),
        "refreshTokenHash1": sha256hex(tokens["refreshToken"]),
        "parentRefreshTokenHash1": None,
        "antiCsrfToken": None,
        "iss": ISS,
        "role": "admin",
    }
    assert abs(claims["iat"] - time.time()) < 5
    assert tokens["refreshToken"].endswith(".V2")
    info = get_session_information(s.get_handle())
    assert info is not None
    assert info.user_id == uid.get_as_string()
    assert info.recipe_user_id.get_as_string() == uid.get_as_string()
    assert info.tenant_id == "public"
    assert info.session_data_in_database == {"n": 1}
    assert info.custom_claims_in_access_token_payload == {"role": "admin", "iss": ISS}
    assert info.expiry - info.time_created == 144000 * 60 * 1000


def test_verify_locally_through_the_jwks(core_calls: CoreCalls) -> None:
    s, uid, tokens = create({"role": "admin"})
    core_calls.take()
    v = get_session_without_request_response(tokens["accessToken"])
    assert v is not None
    assert v.get_handle() == s.get_handle()
    assert v.get_user_id() == uid.get_as_string()
    assert v.get_access_token_payload()["role"] == "admin"
    assert v.get_all_session_tokens_dangerously()["accessAndFrontTokenUpdated"] is False
    assert core_calls.take() == [], "answered from the JWKS alone"
    h, p, sig = tokens["accessToken"].split(".")
    _, claims = decode(tokens["accessToken"])
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "role": "root"}).encode()).decode().rstrip("=")
    with pytest.raises(TryRefreshTokenError):
        get_session_without_request_response(f"{h}.{forged}.{sig}")
    assert core_calls.take() == []


def test_verify_with_database_check(core_calls: CoreCalls) -> None:
    s, _, tokens = create()
    core_calls.take()
    v = get_session_without_request_response(tokens["accessToken"], check_database=True)
    assert v is not None and v.get_handle() == s.get_handle()
    calls = core_calls.take_with_bodies()
    assert [(m, p) for m, p, _ in calls] == [("POST", "/recipe/session/verify")]
    assert calls[0][2]["checkDatabase"] is True
    assert v.get_all_session_tokens_dangerously()["accessAndFrontTokenUpdated"] is False
    assert revoke_session(s.get_handle()) is True
    with pytest.raises(UnauthorisedError):
        get_session_without_request_response(tokens["accessToken"], check_database=True)
    local = get_session_without_request_response(tokens["accessToken"])
    assert local is not None and local.get_handle() == s.get_handle(), "a local check cannot see revocation"


def test_refresh_and_promotion(core_calls: CoreCalls) -> None:
    s, uid, t0 = create({"role": "admin"}, {"k": 1})
    core_calls.take()
    r1 = refresh_session_without_request_response(t0["refreshToken"], disable_anti_csrf=True)
    calls = core_calls.take_with_bodies()
    assert calls == [
        (
            "POST",
            "/recipe/session/refresh",
            {"refreshToken": t0["refreshToken"], "enableAntiCsrf": False, "useDynamicSigningKey": True},
        )
    ]
    t1 = r1.get_all_session_tokens_dangerously()
    assert r1.get_handle() == s.get_handle()
    assert t1["refreshToken"] != t0["refreshToken"]
    _, c1 = decode(t1["accessToken"])
    assert c1["parentRefreshTokenHash1"] == sha256hex(t0["refreshToken"])
    assert c1["refreshTokenHash1"] == sha256hex(t1["refreshToken"])
    assert c1["role"] == "admin"
    v1 = get_session_without_request_response(t1["accessToken"])
    assert v1 is not None
    assert core_calls.take() == [("POST", "/recipe/session/verify")], "first use of a child goes to the core"
    promoted = v1.get_all_session_tokens_dangerously()
    assert promoted["accessAndFrontTokenUpdated"] is True
    _, c1b = decode(promoted["accessToken"])
    assert c1b["parentRefreshTokenHash1"] is None
    assert c1b["refreshTokenHash1"] == c1["refreshTokenHash1"]
    v2 = get_session_without_request_response(promoted["accessToken"])
    assert v2 is not None and v2.get_all_session_tokens_dangerously()["accessAndFrontTokenUpdated"] is False
    assert core_calls.take() == []
    r2 = refresh_session_without_request_response(t1["refreshToken"], disable_anti_csrf=True)
    assert r2.get_handle() == s.get_handle()
    assert get_all_session_handles_for_user(uid.get_as_string()) == [s.get_handle()]


def test_token_theft() -> None:
    s, uid, t0 = create()
    t1 = refresh_session_without_request_response(t0["refreshToken"], True).get_all_session_tokens_dangerously()
    used = get_session_without_request_response(t1["accessToken"])  # promotes RT1
    assert used is not None and used.get_all_session_tokens_dangerously()["accessAndFrontTokenUpdated"] is True
    time.sleep(1.1)  # past the app's 1 s grace window
    with pytest.raises(TokenTheftError) as theft:
        refresh_session_without_request_response(t0["refreshToken"], True)
    assert theft.value.session_handle == s.get_handle()
    assert theft.value.user_id == uid.get_as_string()
    assert theft.value.recipe_user_id.get_as_string() == uid.get_as_string()
    assert get_session_information(s.get_handle()) is None, "tessera revokes the session on theft"
    with pytest.raises(UnauthorisedError):
        refresh_session_without_request_response(t1["refreshToken"], True)


def test_sibling_within_grace_is_not_theft() -> None:
    s, _, t0 = create()
    a = refresh_session_without_request_response(t0["refreshToken"], True).get_all_session_tokens_dangerously()
    b = refresh_session_without_request_response(t0["refreshToken"], True).get_all_session_tokens_dangerously()
    assert get_session_without_request_response(a["accessToken"]) is not None  # promotes a
    assert refresh_session_without_request_response(b["refreshToken"], True).get_handle() == s.get_handle()
    time.sleep(1.1)  # after the window the parent is theft
    with pytest.raises(TokenTheftError):
        refresh_session_without_request_response(t0["refreshToken"], True)
