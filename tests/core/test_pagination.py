"""Lists: page-number pagination, ``?search=`` and ``?ordering=`` (api-contract.md, Lists).

``GET /users`` is the list under test; every list shares the same code.
"""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from core.enums import UserKind
from tests.accounts.shapes import PAGE_KEYS
from tests.conftest import ApiClient
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

INVALID_PAGE = {"detail": "Invalid page."}


@pytest.fixture
def admin(db):
    return UserFactory(kind=UserKind.ADMIN)


@pytest.fixture
def client(admin):
    return ApiClient().bearer(admin)


def make_users(count: int, **fields) -> list[User]:
    return UserFactory.create_batch(count, **fields)


def split(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


def local(url: str) -> str:
    """The path and query of an absolute ``next``/``previous`` URL, to follow it."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "testserver"), url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_default_page_size_is_20(client):
    make_users(24)  # 25 with the admin

    body = client.get("/users").json()

    assert set(body) == PAGE_KEYS
    assert body["count"] == 25
    assert len(body["results"]) == 20
    assert body["previous"] is None
    assert body["next"] == "http://testserver/api/v1/users?page=2"


def test_second_and_last_page(client):
    make_users(24)

    body = client.get("/users", {"page": 2}).json()

    assert body["count"] == 25
    assert len(body["results"]) == 5
    assert body["next"] is None
    assert body["previous"] == "http://testserver/api/v1/users"


def test_pages_cover_every_row_once_newest_first(client, admin):
    users = make_users(6)
    seen = []
    url = "/users?page_size=4"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"] and local(body["next"])
    assert seen == [u.id for u in reversed(users)] + [admin.id]


def test_page_size_is_honoured(client):
    make_users(6)

    body = client.get("/users", {"page_size": 3, "page": 2}).json()

    assert body["count"] == 7
    assert len(body["results"]) == 3
    next_base, next_query = split(body["next"])
    prev_base, prev_query = split(body["previous"])
    assert next_base == prev_base == "http://testserver/api/v1/users"
    assert next_query == {"page": ["3"], "page_size": ["3"]}
    assert prev_query == {"page_size": ["3"]}


@pytest.mark.parametrize("junk", ["0", "-5", "abc", "", "1.5"])
def test_page_size_that_is_not_a_positive_number_falls_back_to_20(client, junk):
    make_users(24)

    response = client.get("/users", {"page_size": junk})

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 20


def test_page_size_is_capped_at_1000(client):
    assert settings.NINJA_PAGINATION_MAX_PER_PAGE_SIZE == 1000
    User.objects.bulk_create(
        User(phone=f"+8801500{n:06d}", password="!unusable") for n in range(1001)
    )  # 1002 users with the admin

    for asked in (1000, 5000):
        body = client.get("/users", {"page_size": asked}).json()
        assert body["count"] == 1002
        assert len(body["results"]) == 1000
        assert body["next"] is not None

    last = client.get("/users", {"page_size": 5000, "page": 2}).json()
    assert len(last["results"]) == 2
    assert last["next"] is None


def test_next_and_previous_keep_the_other_query_parameters(client):
    make_users(5, last_name="Chowdhury")
    make_users(3, last_name="Islam")

    body = client.get(
        "/users", {"search": "chowdhury", "page_size": 2, "page": 2, "ordering": "-phone"}
    ).json()

    assert body["count"] == 5
    next_base, next_query = split(body["next"])
    prev_base, prev_query = split(body["previous"])
    assert next_base == prev_base == "http://testserver/api/v1/users"
    assert next_query == {
        "search": ["chowdhury"],
        "page_size": ["2"],
        "page": ["3"],
        "ordering": ["-phone"],
    }
    assert prev_query == {"search": ["chowdhury"], "page_size": ["2"], "ordering": ["-phone"]}


def test_next_url_is_followable(client):
    make_users(5, last_name="Chowdhury")
    make_users(3, last_name="Islam")

    first = client.get("/users", {"search": "chowdhury", "page_size": 3}).json()
    second = client.get(local(first["next"])).json()

    assert second["count"] == 5
    assert len(second["results"]) == 2
    ids = [row["id"] for row in first["results"] + second["results"]]
    assert len(set(ids)) == 5
    assert {row["last_name"] for row in first["results"] + second["results"]} == {"Chowdhury"}


def test_next_url_keeps_a_secure_scheme_behind_a_proxy(client):
    make_users(24)

    body = client.get("/users", HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="testserver").json()

    assert body["next"] == "https://testserver/api/v1/users?page=2"


@pytest.mark.parametrize("page", ["2", "99"])
def test_page_past_the_end_is_404_invalid_page(client, page):
    make_users(3)  # 4 users: one page

    response = client.get("/users", {"page": page})

    assert response.status_code == 404, response.content
    assert response.json() == INVALID_PAGE


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5"])
def test_page_that_is_not_a_positive_number_is_404(client, page):
    response = client.get("/users", {"page": page})

    assert response.status_code == 404, response.content
    assert response.json() == INVALID_PAGE


def test_empty_list_has_one_empty_page(client):
    response = client.get("/users", {"search": "nobody-matches-this"})

    assert response.status_code == 200, response.content
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_page_one_of_an_empty_list_is_not_404(client):
    response = client.get("/users", {"search": "nobody-matches-this", "page": 1})
    assert response.status_code == 200, response.content


# Ordering --------------------------------------------------------------------


def test_ordering_descending_and_ascending(client, admin):
    make_users(4)
    phones = sorted(User.objects.values_list("phone", flat=True))

    descending = client.get("/users", {"ordering": "-phone"}).json()
    ascending = client.get("/users", {"ordering": "phone"}).json()

    assert [row["phone"] for row in descending["results"]] == phones[::-1]
    assert [row["phone"] for row in ascending["results"]] == phones


def test_ordering_by_several_fields(client):
    a = UserFactory(first_name="Same", last_name="B", phone="+8801300000002")
    b = UserFactory(first_name="Same", last_name="A", phone="+8801300000001")
    c = UserFactory(first_name="Aaron", last_name="Z", phone="+8801300000003")

    body = client.get("/users", {"ordering": "first_name,-last_name", "search": "+88013"}).json()

    assert [row["id"] for row in body["results"]] == [c.id, a.id, b.id]


@pytest.mark.parametrize("ordering", ["password", "-password", "bogus", "phone,nope", "-"])
def test_unknown_ordering_field_is_400_on_ordering(client, ordering):
    response = client.get("/users", {"ordering": ordering})

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"ordering"}
    assert isinstance(body["ordering"], list) and body["ordering"]
    assert isinstance(body["ordering"][0], str)


# Search ----------------------------------------------------------------------


def test_search_is_case_insensitive_and_spans_fields(client):
    by_first = UserFactory(first_name="Tahmid")
    by_last = UserFactory(last_name="Tahmidul")
    by_email = UserFactory(email="tahmid.work@example.com")
    UserFactory(first_name="Someone", last_name="Else", email="else@example.com")

    body = client.get("/users", {"search": "TAHMID"}).json()

    assert body["count"] == 3
    assert {row["id"] for row in body["results"]} == {by_first.id, by_last.id, by_email.id}


def test_search_combines_with_pagination(client):
    make_users(3, first_name="Paged")
    make_users(3, first_name="Other")

    body = client.get("/users", {"search": "paged", "page_size": 2}).json()

    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert {row["first_name"] for row in body["results"]} == {"Paged"}


def test_trailing_slash_gives_the_same_page_links(client):
    make_users(24)

    plain = client.get("/api/v1/users", {"page": 2, "page_size": 10})
    slashed = client.get("/api/v1/users/", {"page": 2, "page_size": 10})

    assert slashed.status_code == 200, slashed.content
    assert slashed.json() == plain.json()
    assert split(slashed.json()["next"])[0] == "http://testserver/api/v1/users"


def test_cached_counts_follow_every_write(client_as, make_user):
    """The count behind a page is remembered, but never past a change of its tables."""
    client, _ = client_as(UserKind.ADMIN)
    first = client.get("/users", {"kind": "STAFF"}).json()["count"]
    assert client.get("/users", {"kind": "STAFF"}).json()["count"] == first
    staff = make_user(kind=UserKind.STAFF)
    assert client.get("/users", {"kind": "STAFF"}).json()["count"] == first + 1
    assert (
        client.put(f"/users/{staff.uid}", {"phone": staff.phone, "kind": "OTHER"}).status_code
        == 200
    )
    assert client.get("/users", {"kind": "STAFF"}).json()["count"] == first
    assert client.delete(f"/users/{staff.uid}").status_code == 204
    assert client.get("/users", {"kind": "OTHER"}).json()["count"] == 0


# The schema ------------------------------------------------------------------


def test_openapi_types_page_and_page_size_as_integers(api):
    """The app's TypeScript types say ``page?: number``: every list's schema must agree."""
    schema = api.get("/api/v1/openapi.json").json()
    lists = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            params = {p["name"]: p for p in operation.get("parameters", [])}
            if "page" not in params:
                continue
            lists += 1
            for name in ("page", "page_size"):
                assert params[name]["in"] == "query"
                assert params[name]["schema"]["type"] == "integer", (method, path, name)
                assert params[name].get("required") is not True
    assert lists >= 5


@pytest.mark.parametrize("page, page_size, rows", [(1, 20, 7), (2, 5, 2), (3, 3, 1)])
def test_a_last_page_read_whole_gives_the_count_without_counting(client, page, page_size,
                                                                 rows):
    make_users(6)  # with the admin: 7 users
    with CaptureQueriesContext(connection) as queries:
        answer = client.get("/users", {"page": page, "page_size": page_size})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["count"] == 7 and len(body["results"]) == rows and body["next"] is None
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


def test_a_full_page_is_counted_and_a_page_past_the_end_still_404(client):
    make_users(6)
    with CaptureQueriesContext(connection) as queries:
        full = client.get("/users", {"page_size": 7})
    assert full.json()["count"] == 7
    assert [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert client.get("/users", {"page": 3, "page_size": 7}).json() == INVALID_PAGE
    assert client.get("/users", {"page": "last", "page_size": 3}).json()["count"] == 7
