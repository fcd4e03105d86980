"""With ``DEBUG`` off the transport settings are safe by default (HTTPS only: redirect,
HSTS, secure cookies, the proxy's header) and each can be changed from the environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT", "SECURE_HSTS_SECONDS",
         "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER",
         "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "CACHES")
_OURS = set(NAMES) | {"DEBUG", "REDIS_URL", "CACHE_URL",
                                    "CACHE_CONNECT_TIMEOUT_SECONDS", "CACHE_TIMEOUT_SECONDS"}


def settings_with(**env: str) -> dict:
    """core.settings as a fresh process reads them from these variables alone."""
    dropped = _OURS | {"DJANGO_SETTINGS_MODULE"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    clean.update(SECRET_KEY="x" * 50, **env)
    code = (
        "import json, core.settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {NAMES!r}}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_production_defaults_are_https_only():
    s = settings_with(DEBUG="false")

    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_HSTS_SECONDS"] >= 31536000
    assert s["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert s["SECURE_HSTS_PRELOAD"] is False  # a commitment to make knowingly
    assert s["SESSION_COOKIE_SECURE"] is True
    assert s["CSRF_COOKIE_SECURE"] is True
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert s["SECURE_REDIRECT_EXEMPT"] == [r"^api/v1/health/?$"]


def test_each_can_be_changed_from_the_environment():
    s = settings_with(
        DEBUG="false", SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="0",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false", SECURE_HSTS_PRELOAD="true",
        SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_SSL,on",
    )

    assert (s["SECURE_SSL_REDIRECT"], s["SECURE_HSTS_SECONDS"]) == (False, 0)
    assert (s["SECURE_HSTS_INCLUDE_SUBDOMAINS"], s["SECURE_HSTS_PRELOAD"]) == (False, True)
    assert (s["SESSION_COOKIE_SECURE"], s["CSRF_COOKIE_SECURE"]) == (False, False)
    assert s["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_SSL", "on"]
    assert settings_with(DEBUG="false", SECURE_PROXY_SSL_HEADER="")[
        "SECURE_PROXY_SSL_HEADER"] is None


def test_development_stays_plain_http():
    s = settings_with(DEBUG="true")
    assert not s["SECURE_SSL_REDIRECT"]
    assert not s["SESSION_COOKIE_SECURE"]


def test_the_redis_cache_gives_up_within_a_second():
    s = settings_with(DEBUG="true", REDIS_URL="redis://127.0.0.1:6379/0")
    options = s["CACHES"]["default"]["OPTIONS"]
    assert 0 < options["socket_connect_timeout"] <= 1
    assert 0 < options["socket_timeout"] <= 1


@pytest.mark.django_db
def test_plain_http_is_redirected_except_the_health_check():
    production = settings_with(DEBUG="false")
    with override_settings(**{name: production[name] for name in (
        "SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT", "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    )}):
        client = Client()
        redirected = client.get("/api/v1/packages")
        health = client.get("/api/v1/health")
        health_slash = client.get("/api/v1/health/")
        secure = client.get("/api/v1/packages", HTTP_X_FORWARDED_PROTO="https")

    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/api/v1/packages"
    assert health.status_code == 200, health.content
    assert health_slash.status_code == 200, health_slash.content
    assert secure.status_code == 200, secure.content
    assert "max-age=31536000" in secure["Strict-Transport-Security"]
