from tests.payments.conftest import bkash, nagad, sslcommerz  # noqa: F401  (the fakes)
