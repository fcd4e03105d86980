"""Run the fake providers and a fake router by hand, to try the service as a new user
would (the tests start their own). Prints the settings that point the service at them.

    .venv/bin/python -m tests.fakes.serve                 # bKash, Nagad, SSLCommerz, a router
    .venv/bin/python -m tests.fakes.serve bkash routeros  # only these

The pay pages are the fakes' own (``/checkout/...``, ``/gw/...``): follow the pay link's
button, press Pay, and the fake sends the browser back to the service. The fake router
is a RouterOS v7 REST server holding nothing at first: add it as a router (kind
ROUTEROS_REST on plain HTTP, with the user and password printed) and its customers'
secrets appear as billing pushes them. Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import threading

from tests.network.fake_routeros import FakeRouterOS
from tests.payments.fake_bkash import FakeBkash
from tests.payments.fake_nagad import FakeNagad
from tests.payments.fake_sslcommerz import FakeSslcommerz

FAKES = {"bkash": FakeBkash, "nagad": FakeNagad, "sslcommerz": FakeSslcommerz,
         "routeros": FakeRouterOS}
PORTS = {"bkash": 8101, "nagad": 8102, "sslcommerz": 8103, "routeros": 8104}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fakes", nargs="*", metavar="FAKE",
                        help=f"which to run: {', '.join(FAKES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.fakes) - set(FAKES))
    if unknown:
        parser.error(f"no fake named {', '.join(unknown)}")
    started = []
    for name in args.fakes or FAKES:
        fake = FAKES[name]().start(PORTS[name])
        started.append(fake)
        if name == "routeros":
            print(f"# fake RouterOS: host 127.0.0.1, port {PORTS[name]}, "
                  f"user {fake.user!r}, password {fake.password!r}, kind ROUTEROS_REST, "
                  "TLS off (plain HTTP)")
            continue
        print(f"# fake {name}: {fake.root_url}")
        for setting, value in fake.settings().items():
            if isinstance(value, list):
                value = ",".join(value)
            print(f"export {setting}={shlex.quote(str(value))}")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("# serving; Ctrl-C stops", flush=True)
    stop.wait()
    for fake in started:
        fake.stop()


if __name__ == "__main__":
    main()
