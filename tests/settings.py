"""Settings for the test run: the real settings with a test key and fast hashing."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

from reportsite.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the in-memory default: shared-cache memory databases fail
    # with "table is locked" instead of waiting, unlike a real deployment.
    # One file per process so parallel runs never share it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(
            os.environ.get("TMPDIR", "/tmp"), f"reports-test-{os.getpid()}.sqlite3"
        )
    }
