import pytest

from tests.network.fake_routeros import FakeRouterOS


@pytest.fixture
def router():
    """A fake RouterOS REST server on 127.0.0.1, stopped after the test."""
    fake = FakeRouterOS(user="api", password="router-pass").start()
    yield fake
    fake.stop()


@pytest.fixture
def mikrotik_settings(settings, router):
    """Point the project's network backend at the fake router."""
    settings.NETWORK_BACKEND = "mikrotik"
    settings.MIKROTIK_URL = router.url
    settings.MIKROTIK_USER = router.user
    settings.MIKROTIK_PASSWORD = router.password
    settings.MIKROTIK_VERIFY_TLS = True
    settings.MIKROTIK_TIMEOUT_SECONDS = 2.0
    return settings
