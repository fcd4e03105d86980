"""Transport and error conventions (api-contract.md, Transport and Writes and errors)."""

import uuid

import pytest

from accounts.models import User
from core.enums import UserKind
from tests.accounts.shapes import ME_KEYS, TOKEN_PAIR_KEYS, USER_DETAIL_KEYS
from tests.conftest import ApiClient
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NOT_FOUND = {"detail": "Not found."}


def assert_json(response):
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()


# 404 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/v1/nothing/here/either",
        "/api/v1/users/me/extra",
        "/api/v2/users",
        "/api/",
        "/api",
        "/api/v1/",
        "/api/v1",
        "/api/v1//",
        "/api/v1/users/login//extra/",
    ],
)
def test_unknown_path_under_api_is_404_json(api, path):
    response = api.get(path)

    assert response.status_code == 404, response.content
    assert assert_json(response) == NOT_FOUND


def test_unknown_path_is_404_even_when_authenticated(admin_client):
    response = admin_client.get("/nothing-here")
    assert response.status_code == 404, response.content
    assert assert_json(response) == NOT_FOUND


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1", "/api/v1/"])
def test_unknown_path_is_404_for_writes_too_never_a_redirect(api, path):
    response = api.post(path, {"a": 1})
    assert response.status_code == 404, response.content
    assert assert_json(response) == NOT_FOUND


def test_unknown_uid_is_404(admin_client):
    response = admin_client.get(f"/users/{uuid.uuid4()}")
    assert response.status_code == 404, response.content
    assert assert_json(response) == NOT_FOUND


@pytest.mark.parametrize("bad", ["not-a-uuid", "12", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
def test_malformed_uid_in_path_is_404(admin_client, bad):
    response = admin_client.get(f"/users/{bad}")
    assert response.status_code == 404, response.content
    assert assert_json(response) == NOT_FOUND


# 405 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/users/login"),
        ("delete", "/users/login"),
        ("get", "/users/login/refresh"),
        ("get", "/users/register"),
        ("patch", "/users/me"),
        ("delete", "/users/me"),
        ("post", "/health"),
    ],
)
def test_wrong_method_is_405_json_detail(admin_client, method, path):
    response = getattr(admin_client, method)(path)

    assert response.status_code == 405, response.content
    body = assert_json(response)
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str) and body["detail"]


def test_405_keeps_the_allow_header(api):
    response = api.get("/users/login")
    assert response.status_code == 405
    assert "POST" in response["Allow"]


# Trailing slash --------------------------------------------------------------


def test_post_with_trailing_slash_is_the_same_answer_without_redirect(api, make_user):
    user = make_user()
    credentials = {"phone": user.phone, "password": PASSWORD}

    plain = api.post("/api/v1/users/login", credentials)
    slashed = api.post("/api/v1/users/login/", credentials)

    assert plain.status_code == slashed.status_code == 200, slashed.content
    assert set(slashed.json()) == set(plain.json()) == TOKEN_PAIR_KEYS
    assert slashed.json()["user"] == plain.json()["user"]


def test_post_errors_with_trailing_slash_are_the_same(api, make_user):
    user = make_user()
    for body in ({"phone": user.phone, "password": "wrong"}, {"password": "x"}):
        plain = api.post("/api/v1/users/login", body)
        slashed = api.post("/api/v1/users/login/", body)
        assert (slashed.status_code, slashed.json()) == (plain.status_code, plain.json())


def test_get_with_trailing_slash_is_the_same_answer(client_as):
    client, user = client_as(UserKind.ADMIN)

    for path in ("/api/v1/users/me", "/api/v1/users", f"/api/v1/users/{user.uid}"):
        plain = client.get(path)
        slashed = client.get(path + "/")
        assert plain.status_code == slashed.status_code == 200, (path, slashed.content)
        assert slashed.json() == plain.json()


def test_put_and_delete_with_trailing_slash(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    target = make_user(kind=UserKind.STAFF)

    updated = client.put(f"/api/v1/users/{target.uid}/", {"phone": target.phone, "last_name": "S"})
    assert updated.status_code == 200, updated.content
    assert set(updated.json()) == USER_DETAIL_KEYS
    assert updated.json()["last_name"] == "S"

    deleted = client.delete(f"/api/v1/users/{target.uid}/")
    assert deleted.status_code == 204, deleted.content


def test_refresh_with_trailing_slash(api, make_user):
    user = make_user()
    tokens = api.post("/users/login", {"phone": user.phone, "password": PASSWORD}).json()

    response = api.post("/api/v1/users/login/refresh/", {"refresh_token": tokens["refresh_token"]})

    assert response.status_code == 200, response.content


def test_health_with_trailing_slash(api):
    response = api.get("/api/v1/health/")
    assert response.status_code == 200, response.content


# JSON in and out, and no 500s -----------------------------------------------


def test_responses_are_json(admin_client):
    for response in (admin_client.get("/users/me"), admin_client.get("/users")):
        assert response.status_code == 200
        assert_json(response)


def test_me_shape_through_basic_and_bearer_is_the_same(make_user):
    user = make_user()
    by_basic = ApiClient().basic(user.phone).get("/users/me").json()
    by_bearer = ApiClient().bearer(user).get("/users/me").json()
    assert set(by_basic) == ME_KEYS
    assert by_basic == by_bearer


def test_text_fields_are_empty_strings_never_null(admin_client):
    response = admin_client.post("/users", {"phone": "+8801811000077"})

    assert response.status_code == 201, response.content
    body = response.json()
    for field in ("first_name", "last_name", "email"):
        assert body[field] == ""


def test_broken_json_on_an_authenticated_write_is_400_detail(admin_client):
    response = admin_client.post("/users", '{"phone": "+88017', content_type="application/json")

    assert response.status_code == 400, response.content
    body = assert_json(response)
    assert set(body) == {"detail"}


@pytest.mark.parametrize(
    "payload",
    [
        [],
        [1, 2],
        "a string",
        123,
        None,
        {"phone": None},
        {"phone": {"nested": True}},
        {"phone": ["+8801811000078"]},
        {"phone": "+8801811000078", "gender": None},
        {"phone": "+8801811000078", "first_name": 12},
        {"phone": "+8801811000078", "is_staff": [1]},
        {"phone": "+8801811000078", "password": 123456789},
        {"phone": "\u0000"},
        {"phone": "+8801811000078", "email": "x" * 300 + "@example.com"},
    ],
)
def test_odd_payloads_are_400_never_500(admin_client, payload):
    import json

    response = admin_client.post("/users", json.dumps(payload))

    assert response.status_code == 400, response.content
    assert isinstance(assert_json(response), dict)


@pytest.mark.parametrize(
    "query",
    [
        {"page": "9" * 30},
        {"page_size": "9" * 30},
        {"ordering": ""},
        {"ordering": ","},
        {"search": "%"},
        {"search": "_"},
        {"kind": ""},
    ],
)
def test_odd_query_parameters_never_500(admin_client, query):
    response = admin_client.get("/users", query)
    assert response.status_code in (200, 400, 404), response.content
    assert isinstance(assert_json(response), dict)


NUL = "\u0000"


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_null_character_in_a_body_string_is_400(admin_client, field):
    response = admin_client.post("/users", {"phone": "+8801811000080", field: f"a{NUL}b"})

    assert response.status_code == 400, response.content
    assert assert_json(response) == {field: ["Null characters are not allowed."]}
    assert not User.objects.filter(phone="+8801811000080").exists()


@pytest.mark.parametrize("path", ["/users", "/customers", "/payments"])
def test_null_character_in_a_query_without_credentials_is_still_401(api, path):
    response = api.get(path, {"search": f"a{NUL}b"})

    assert response.status_code == 401, response.content
    assert "WWW-Authenticate" in response


def test_null_character_in_a_public_list_query_is_400(api):
    response = api.get("/packages", {"search": f"a{NUL}b"})

    assert response.status_code == 400, response.content
    assert assert_json(response) == {"search": ["Null characters are not allowed."]}


@pytest.mark.parametrize("path, param", [("/customers", "name"),
                                         ("/payments", "customer_name")])
def test_null_character_in_a_list_filter_is_400_on_it(admin_client, path, param):
    response = admin_client.get(path, {param: f"a{NUL}b"})

    assert response.status_code == 400, response.content
    assert assert_json(response) == {param: ["Null characters are not allowed."]}


def test_null_character_in_search_is_400(admin_client):
    response = admin_client.get("/users", {"search": f"a{NUL}b"})

    assert response.status_code == 400, response.content
    assert assert_json(response) == {"search": ["Null characters are not allowed."]}


@pytest.mark.parametrize("login", [f"a{NUL}@example.com", f"+880{NUL}17"])
def test_null_character_in_login_is_400_on_the_field(api, db, login):
    response = api.post("/users/login", {"phone": login, "password": "x"})
    assert response.status_code == 400, response.content
    assert assert_json(response) == {"phone": ["Null characters are not allowed."]}


@pytest.mark.parametrize("login", [f"a{NUL}@example.com", f"+880{NUL}17"])
def test_null_character_in_basic_login_is_401(api, db, login):
    response = ApiClient().basic(login, "x").get("/users/me")
    assert response.status_code == 401, response.content
    assert set(assert_json(response)) == {"detail"}


def test_unsupported_content_type_is_not_500(admin_client):
    response = admin_client.post(
        "/users", "phone=%2B8801811000079", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400, response.content


# CORS ------------------------------------------------------------------------


def test_cors_allows_the_configured_origin(api, settings):
    origin = settings.CORS_ALLOWED_ORIGINS[0]

    response = api.options(
        "/api/v1/users/login",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == origin
    assert "authorization" in response["Access-Control-Allow-Headers"].lower()


def test_cors_refuses_other_origins(api):
    response = api.get("/api/v1/health", HTTP_ORIGIN="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize("body, kind", [("[]", "list"), ('"text"', "str"), ("42", "int")])
def test_a_body_that_is_not_an_object_is_400_non_field(admin_client, body, kind):
    response = admin_client.post("/users", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert assert_json(response) == {
        "non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]
    }


# Django's own limits --------------------------------------------------------------


def test_a_body_over_the_upload_limit_is_413_json(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = {"phone": "+8801711000001", "password": "x" * 2_000}

    response = api.post("/users/login", body)

    assert response.status_code == 413, response.content
    assert assert_json(response) == {"detail": "The request body is too large."}


def test_too_many_query_parameters_is_400_json(admin_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5

    response = admin_client.get("/users?" + "&".join(f"p{n}=1" for n in range(6)))

    assert response.status_code == 400, response.content
    assert assert_json(response) == {"detail": "Bad request."}


def test_search_takes_at_most_ten_words(admin_client):
    ten = admin_client.get("/users", {"search": " ".join(["a"] * 10)})
    eleven = admin_client.get("/users", {"search": " ".join(["a"] * 11)})

    assert ten.status_code == 200, ten.content
    assert eleven.status_code == 400, eleven.content
    assert assert_json(eleven) == {"search": ["Use at most 10 words."]}


# Errors inside a list field --------------------------------------------------


def test_an_error_inside_a_list_is_keyed_by_the_field_then_the_index(admin_client):
    response = admin_client.post("/customers/bills/generate", {"customer_ids": [1, "x", "y"]})

    assert response.status_code == 400, response.content
    assert response.json() == {
        "customer_ids": {
            "1": ["A valid integer is required."],
            "2": ["A valid integer is required."],
        }
    }


def test_a_list_field_that_is_not_a_list_is_keyed_by_the_field(admin_client):
    response = admin_client.post("/customers/bills/generate", {"customer_ids": "x"})

    assert response.status_code == 400, response.content
    assert response.json() == {"customer_ids": ["Expected a list of items."]}


# Timestamps ------------------------------------------------------------------


def test_task_timestamps_are_in_the_business_timezone(
    client_as, django_capture_on_commit_callbacks
):
    from datetime import datetime

    from django.utils import timezone

    from tests.billing.factories import CustomerFactory, PackageFactory

    client, _ = client_as(UserKind.ADMIN)
    CustomerFactory(package=PackageFactory(), username="tz-check", is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.post(
            "/customers/status/toggle", {"username": "tz-check", "is_active": True}
        )
    assert accepted.status_code == 200, accepted.content

    body = client.get(f"/tasks/{accepted.json()['task_id']}").json()

    confirmed = datetime.fromisoformat(body["result"]["confirmed_at"])
    zone = timezone.get_default_timezone()
    assert confirmed.utcoffset() == timezone.now().astimezone(zone).utcoffset()
    assert body["result"]["confirmed_at"].endswith("+06:00")  # Asia/Dhaka, the default


# HEAD ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/users", "/users/me", "/packages", "/dashboard", "/health",
                                  "/users/", "/nothing-here"])
def test_head_answers_like_get_without_a_body(admin_client, path):
    get = admin_client.get(path)
    head = admin_client.generic("HEAD", admin_client._url(path), **admin_client.credentials)

    assert head.status_code == get.status_code, head.content
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]
    assert int(head["Content-Length"]) == len(get.content)


def test_head_needs_the_same_credentials_as_get(api):
    response = api.generic("HEAD", "/api/v1/users")
    assert response.status_code == 401
    assert response.content == b""
    assert "WWW-Authenticate" in response


def test_head_on_a_route_without_get_is_405(api):
    response = api.generic("HEAD", "/api/v1/users/login")
    assert response.status_code == 405
    assert response.content == b""
