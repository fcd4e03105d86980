import pytest

from tests.payments.fake_bkash import FakeBkash


@pytest.fixture
def bkash(settings):
    """The fake bKash on 127.0.0.1, with the service's BKASH_* settings pointed at it."""
    fake = FakeBkash().start()
    for name, value in fake.settings().items():
        setattr(settings, name, value)
    settings.BKASH_TIMEOUT_SECONDS = 2.0
    yield fake
    fake.stop()
