"""OpenAPI, docs and the first administrator (api-contract.md, Meta and Authentication)."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from core.enums import Status, UserKind
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db

USER_PATHS = {
    "/api/v1/health": {"get"},
    "/api/v1/users/login": {"post"},
    "/api/v1/users/login/refresh": {"post"},
    "/api/v1/users/register": {"post"},
    "/api/v1/users/me": {"get", "put"},
    "/api/v1/users": {"get", "post"},
    "/api/v1/users/{uid}": {"get", "put", "delete"},
}


def test_openapi_is_valid_json_with_the_paths(api):
    response = api.get("/api/v1/openapi.json")

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    for path, methods in USER_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), (path, set(schema["paths"][path]))


def test_openapi_documents_both_security_schemes(api):
    schema = api.get("/api/v1/openapi.json").json()

    schemes = schema["components"]["securitySchemes"]
    kinds = {(s["type"], s.get("scheme")) for s in schemes.values()}
    assert ("http", "bearer") in kinds
    assert ("http", "basic") in kinds
    assert "security" not in schema["paths"]["/api/v1/users/login"]["post"]
    assert schema["paths"]["/api/v1/users/me"]["get"]["security"]


def test_openapi_documents_the_pagination_parameters(api):
    schema = api.get("/api/v1/openapi.json").json()

    names = {p["name"] for p in schema["paths"]["/api/v1/users"]["get"]["parameters"]}
    assert {"page", "page_size", "search", "ordering"} <= names


def test_openapi_with_trailing_slash(api):
    response = api.get("/api/v1/openapi.json/")
    assert response.status_code == 200
    assert "paths" in response.json()


def test_docs_are_html(api):
    response = api.get("/api/v1/docs")

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<html" in html.lower()
    assert "openapi.json" in html


# createsuperuser --------------------------------------------------------------


def test_createsuperuser_noinput_makes_a_super_admin(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PHONE", "+8801700000001")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "First-Admin-Pass-1")

    call_command("createsuperuser", interactive=False, verbosity=0)

    user = User.objects.get(phone="+8801700000001")
    assert user.kind == UserKind.SUPER_ADMIN
    assert user.status == Status.ACTIVE
    assert user.email == "root@example.com"
    assert user.is_staff and user.is_superuser
    assert user.check_password("First-Admin-Pass-1")

    login = ApiClient().post(
        "/users/login", {"phone": "root@example.com", "password": "First-Admin-Pass-1"}
    )
    assert login.status_code == 200, login.content
    assert login.json()["user"]["kind"] == "SUPER_ADMIN"
    token = login.json()["access_token"]
    create = ApiClient().post(
        "/users",
        {"phone": "+8801700000002", "kind": "SUPER_ADMIN"},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert create.status_code == 201, create.content


def test_createsuperuser_refuses_a_taken_phone(monkeypatch, make_user):
    existing = make_user(kind=UserKind.OTHER)
    monkeypatch.setenv("DJANGO_SUPERUSER_PHONE", existing.phone)
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "First-Admin-Pass-1")

    with pytest.raises(CommandError):
        call_command("createsuperuser", interactive=False, verbosity=0)

    existing.refresh_from_db()
    assert existing.kind == UserKind.OTHER
