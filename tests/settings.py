"""Settings for the test run: the real settings with a test key and fast hashing."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

from reportsite.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Requests are paced installation-wide (one every 60 / N seconds); at the
# default 50 a minute every test with a few calls would wait seconds. Tests
# of the pacing set their own rate.
CLAUDE_REQUESTS_PER_MINUTE = 600_000

# One test database per process, so two runs at once never share (or drop)
# each other's database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the in-memory default: shared-cache memory databases fail
    # with "table is locked" instead of waiting, unlike a real deployment.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(
            os.environ.get("TMPDIR", "/tmp"), f"reports-test-{os.getpid()}.sqlite3"
        )
    }
else:
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"  # noqa: F405
    }
