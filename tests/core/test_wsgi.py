"""The WSGI entry point gunicorn serves."""

import json
import os
import subprocess
import sys

from django.conf import settings

PROBE = """
import gc, json, sys
import core.wsgi
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "urlconf_loaded": core.wsgi.settings.ROOT_URLCONF in sys.modules,
    "api_built": "billing.api" in sys.modules,
}))
"""


def test_the_app_is_built_at_import_and_kept_out_of_full_collections():
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DEBUG="true")
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, env=env,
        capture_output=True, text=True, timeout=120,
    )

    assert probe.returncode == 0, probe.stderr
    state = json.loads(probe.stdout.strip().splitlines()[-1])
    assert state["urlconf_loaded"] and state["api_built"]
    assert state["frozen"] > 10_000  # the loaded app, not a handful of objects
