import pytest

from tests.network.fake_routeros import FakeRouterOS
from tests.network.routers import router_record


@pytest.fixture
def fake():
    """A fake RouterOS REST server on 127.0.0.1, stopped after the test."""
    server = FakeRouterOS(user="api", password="router-pass").start()
    yield server
    server.stop()


@pytest.fixture
def router(fake):
    """The fake router (the name the connection-change tests know it by)."""
    return fake


@pytest.fixture
def router_in_billing(db, router):
    """The fake router as a router record in billing."""
    return router_record(router)
