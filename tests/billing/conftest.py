from decimal import Decimal

import pytest

from core.enums import UserKind
from tests.billing.factories import PackageFactory


@pytest.fixture
def package(db):
    return PackageFactory(name="Home 20", speed_mbps=20, price=Decimal("500.00"))


@pytest.fixture
def manager(client_as):
    return client_as(UserKind.MANAGER)


@pytest.fixture
def staff(client_as):
    return client_as(UserKind.STAFF)


@pytest.fixture
def admin(client_as):
    return client_as(UserKind.ADMIN)
