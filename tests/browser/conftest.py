from tests.payments.conftest import bkash  # noqa: F401  (the fake bKash fixture)
