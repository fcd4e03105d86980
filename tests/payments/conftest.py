import pytest

from tests.payments.fake_bkash import FakeBkash
from tests.payments.fake_nagad import FakeNagad
from tests.payments.fake_sslcommerz import FakeSslcommerz


def _switched_on(fake, settings, timeout_setting: str):
    """Start ``fake`` on 127.0.0.1 and point the service's settings at it."""
    fake.start()
    for name, value in fake.settings().items():
        setattr(settings, name, value)
    setattr(settings, timeout_setting, 2.0)
    return fake


@pytest.fixture
def bkash(settings):
    """The fake bKash, with the service's BKASH_* settings pointed at it."""
    fake = _switched_on(FakeBkash(), settings, "BKASH_TIMEOUT_SECONDS")
    yield fake
    fake.stop()


@pytest.fixture
def nagad(settings):
    """The fake Nagad, with the service's NAGAD_* settings pointed at it."""
    fake = _switched_on(FakeNagad(), settings, "NAGAD_TIMEOUT_SECONDS")
    yield fake
    fake.stop()


@pytest.fixture
def sslcommerz(settings):
    """The fake SSLCommerz, with the service's SSLCOMMERZ_* settings pointed at it."""
    fake = _switched_on(FakeSslcommerz(), settings, "SSLCOMMERZ_TIMEOUT_SECONDS")
    yield fake
    fake.stop()
