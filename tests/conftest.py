import base64

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client

from accounts.tokens import token_issue
from core import auth
from core.enums import UserKind
from tests.factories import PASSWORD, UserFactory

HOW_TO_RUN = "start PostgreSQL and Redis on 127.0.0.1 (or set DATABASE_URL/REDIS_URL) to run it"


def pytest_collection_modifyitems(config, items):
    missing = set()
    if connection.vendor != "postgresql":
        missing.add("postgres")
    if not settings.REDIS_URL:
        missing.add("redis")
    for item in items:
        for marker in missing & {m.name for m in item.iter_markers()}:
            item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {HOW_TO_RUN}"))


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    auth._local_verdicts.clear()
    yield


class ApiClient(Client):
    """A test client that speaks JSON to ``/api/v1`` and can carry credentials."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.credentials: dict[str, str] = {}

    def _url(self, path: str) -> str:
        return path if path.startswith("/api/") else f"/api/v1{path}"

    def get(self, path, data=None, **extra):
        return super().get(self._url(path), data, **self.credentials, **extra)

    def post(self, path, data=None, content_type="application/json", **extra):
        return super().post(
            self._url(path), data, content_type=content_type, **self.credentials, **extra
        )

    def put(self, path, data=None, content_type="application/json", **extra):
        return super().put(
            self._url(path), data, content_type=content_type, **self.credentials, **extra
        )

    def delete(self, path, data=None, **extra):
        return super().delete(self._url(path), data, **self.credentials, **extra)

    def patch(self, path, data=None, content_type="application/json", **extra):
        return super().patch(
            self._url(path), data, content_type=content_type, **self.credentials, **extra
        )

    def bearer(self, user) -> "ApiClient":
        token = token_issue(user=user, token_type="access").token
        self.credentials = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        return self

    def basic(self, login: str, password: str = PASSWORD) -> "ApiClient":
        encoded = base64.b64encode(f"{login}:{password}".encode()).decode()
        self.credentials = {"HTTP_AUTHORIZATION": f"Basic {encoded}"}
        return self


@pytest.fixture
def api():
    return ApiClient()


@pytest.fixture
def make_user(db):
    return UserFactory


@pytest.fixture
def client_as(db):
    """``client_as(UserKind.STAFF)`` → (client with a Bearer token, its user)."""

    def make(kind: str = UserKind.ADMIN, **fields):
        user = UserFactory(kind=kind, **fields)
        return ApiClient().bearer(user), user

    return make


@pytest.fixture
def admin_client(client_as):
    return client_as(UserKind.ADMIN)[0]
