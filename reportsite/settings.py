"""Settings read from the environment; README.md lists each one and its default."""

import datetime
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_number(name: str, default: float, *, minimum: float = 0) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = env_number(name, default, minimum=minimum)
    if value != int(value):
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value}")
    return int(value)


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment, or set DEBUG=true "
            "for a local, insecure development key."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = [
    host.strip()
    for host in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in env_str("CSRF_TRUSTED_ORIGINS").split(",")
    if origin.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "reports",
    "violations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "reportsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "reportsite.wsgi.application"


def database_from_url(url: str) -> dict:
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets readers (the admin) work while a batch writes; IMMEDIATE takes
        # the write lock at BEGIN, so two writers queue on the busy timeout
        # instead of failing with "database is locked" half-way through.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return config


DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Claude ---------------------------------------------------------------
# CLAUDE_API_KEY is the name the original system used; both are accepted.
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY") or env_str("CLAUDE_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL")
CLAUDE_MODEL = env_str("CLAUDE_MODEL", "claude-sonnet-4-5")
CLAUDE_MAX_TOKENS = env_int("CLAUDE_MAX_TOKENS", 4096, minimum=256)
# One call's worst case is about timeout x (retries + 1) plus backoff; it must
# stay well under REPORTS_STUCK_TIMEOUT_SECONDS or a report still being worked
# on looks stuck and is claimed a second time.
CLAUDE_TIMEOUT_SECONDS = env_number("CLAUDE_TIMEOUT_SECONDS", 60, minimum=1)
CLAUDE_MAX_RETRIES = env_int("CLAUDE_MAX_RETRIES", 2)
CLAUDE_REQUESTS_PER_MINUTE = env_int("CLAUDE_REQUESTS_PER_MINUTE", 50, minimum=1)
# US dollars per million tokens, for the dashboard's cost estimate; the
# defaults are Claude Sonnet 4.5's list prices (cache writes: 5-minute cache).
CLAUDE_PRICE_INPUT_PER_MTOK = env_number("CLAUDE_PRICE_INPUT_PER_MTOK", 3.0)
CLAUDE_PRICE_OUTPUT_PER_MTOK = env_number("CLAUDE_PRICE_OUTPUT_PER_MTOK", 15.0)
CLAUDE_PRICE_CACHE_READ_PER_MTOK = env_number("CLAUDE_PRICE_CACHE_READ_PER_MTOK", 0.3)
CLAUDE_PRICE_CACHE_WRITE_PER_MTOK = env_number(
    "CLAUDE_PRICE_CACHE_WRITE_PER_MTOK", 3.75
)

# --- Report processing ----------------------------------------------------
REPORTS_BATCH_SIZE = env_int("REPORTS_BATCH_SIZE", 15, minimum=1)
REPORTS_MAX_CONCURRENT_CALLS = env_int("REPORTS_MAX_CONCURRENT_CALLS", 3, minimum=1)
REPORTS_MAX_ATTEMPTS = env_int("REPORTS_MAX_ATTEMPTS", 3, minimum=1)
REPORTS_RETRY_DELAY_SECONDS = env_int("REPORTS_RETRY_DELAY_SECONDS", 30 * 60)
REPORTS_STUCK_TIMEOUT_SECONDS = env_int("REPORTS_STUCK_TIMEOUT_SECONDS", 5 * 60)
# A batch stops claiming once this is spent, so a run ends before the next
# scheduled one (every 10 minutes) begins.
REPORTS_BATCH_TIME_BUDGET_SECONDS = env_int(
    "REPORTS_BATCH_TIME_BUDGET_SECONDS", 8 * 60, minimum=1
)

if CLAUDE_TIMEOUT_SECONDS * (CLAUDE_MAX_RETRIES + 1) >= REPORTS_STUCK_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        "CLAUDE_TIMEOUT_SECONDS x (CLAUDE_MAX_RETRIES + 1) must stay under "
        "REPORTS_STUCK_TIMEOUT_SECONDS, or a report still in a Claude call is "
        "taken for stuck and processed twice."
    )

# --- Duplicate detection ---------------------------------------------------
VIOLATIONS_DUPLICATE_THRESHOLD = env_number("VIOLATIONS_DUPLICATE_THRESHOLD", 0.85)
if not 0 < VIOLATIONS_DUPLICATE_THRESHOLD <= 1:
    raise ImproperlyConfigured("VIOLATIONS_DUPLICATE_THRESHOLD must be in (0, 1]")
VIOLATIONS_DUPLICATE_DATE_WINDOW_DAYS = env_int(
    "VIOLATIONS_DUPLICATE_DATE_WINDOW_DAYS", 1
)
# Two accounts whose coordinates are this close name the same place even when
# their place names are spelled too differently to match.
VIOLATIONS_DUPLICATE_RADIUS_KM = env_number("VIOLATIONS_DUPLICATE_RADIUS_KM", 2.0)

# --- Validation of drafts ----------------------------------------------------
# The start of the period the register documents (the March 2011 uprising); a
# draft dated earlier is a misread date, not an old incident.
VIOLATIONS_EARLIEST_INCIDENT_DATE = env_str(
    "VIOLATIONS_EARLIEST_INCIDENT_DATE", "2011-03-01"
)
try:
    datetime.date.fromisoformat(VIOLATIONS_EARLIEST_INCIDENT_DATE)
except ValueError:
    raise ImproperlyConfigured(
        "VIOLATIONS_EARLIEST_INCIDENT_DATE must be a date as YYYY-MM-DD, not "
        f"{VIOLATIONS_EARLIEST_INCIDENT_DATE!r}"
    ) from None

# --- django-q2 ---------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER = {
    "name": "reports",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    # A batch starts no call after its budget, but a call started just before
    # may take every SDK attempt to its timeout; a minute more covers the
    # database writes. Killed earlier, its reports would wait for the stuck
    # timeout.
    "timeout": int(
        REPORTS_BATCH_TIME_BUDGET_SECONDS
        + CLAUDE_TIMEOUT_SECONDS * (CLAUDE_MAX_RETRIES + 1)
        + 60
    ),
    # Must exceed timeout: otherwise the broker hands a still-running batch to
    # a second worker.
    "retry": int(
        REPORTS_BATCH_TIME_BUDGET_SECONDS
        + CLAUDE_TIMEOUT_SECONDS * (CLAUDE_MAX_RETRIES + 1)
        + 120
    ),
    # A batch that died half-way is not re-run: the reports' own retry and
    # stuck-timeout logic picks up whatever it left.
    "max_attempts": 1,
    # After downtime run one batch, not one per missed 10-minute slot.
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging -----------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "reports": {"level": LOG_LEVEL},
        "violations": {"level": LOG_LEVEL},
        # Declared here so django-q does not install a handler of its own.
        "django-q": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
