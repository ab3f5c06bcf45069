"""Walle settings: the one place that reads the environment.

Everything is chosen by environment variables (see README "Configuration").
Defaults give a single machine that needs nothing else: SQLite and the django-q2
ORM broker, all state under ``WALLE_DATA_DIR``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy

from walleproj import bind, datadir

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def file_secret(path: Path, make) -> str:
    """Read a secret kept in the data dir, creating it (mode 0600) on first run.

    Why a file and not a constant: a default secret lets anyone forge sessions
    (Walle 2.x shipped SECRET_KEY='secret-key').
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


DATA_DIR = Path(env_str("WALLE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
datadir.secure(DATA_DIR)  # 0700, files 0600: it holds the database and every key

SECRET_KEY = env_str("WALLE_SECRET_KEY") or file_secret(
    DATA_DIR / "secret_key", lambda: secrets.token_urlsafe(50)
)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# Encrypts stored SSH private keys; deliberately separate from SECRET_KEY.
# Several comma-separated keys allow rotation (the first encrypts).
WALLE_KEY_ENCRYPTION_KEYS = env_list("WALLE_KEY_ENCRYPTION_KEY") or [
    file_secret(DATA_DIR / "key_encryption_key", _fernet_key)
]

DEBUG = env_bool("WALLE_DEBUG", False)
# Whatever address bin/start binds (WALLE_BIND) and prints is allowed unless
# the operator lists the names; a printed URL that answers 400 is a dead end.
WALLE_BIND = env_str("WALLE_BIND", "127.0.0.1")
WALLE_PORT = env_int("WALLE_PORT", 8000)
ALLOWED_HOSTS = env_list("WALLE_ALLOWED_HOSTS") or bind.bind_hosts(WALLE_BIND)
CSRF_TRUSTED_ORIGINS = env_list("WALLE_CSRF_TRUSTED_ORIGINS") or bind.trusted_origins(WALLE_BIND, WALLE_PORT)

INSTALLED_APPS = [
    "walleproj.admin.WalleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guardian",
    "django_q",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "accounts",
    "projects",
    "releases",
    "audit",
    "webhooks",  # inbound git webhooks (docs/webhooks.md)
    "notifications",  # docs/notifications.md
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.language.UserLanguageMiddleware",  # a person's chosen language over the browser's
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "audit.context.AuditContextMiddleware",
]

ROOT_URLCONF = "walleproj.urls"

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

WSGI_APPLICATION = "walleproj.wsgi.application"

_sqlite_url = f"sqlite:///{DATA_DIR / 'walle.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _sqlite_url))}
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # Each web thread keeps its connection (checked before reuse) instead of
    # opening one per request: 6-10 ms of every PostgreSQL request here
    # (docs/benchmarks.md). A SQLite connection costs next to nothing.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("WALLE_DB_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    if DATABASES["default"]["NAME"] != ":memory:":
        datadir.precreate_private_file(Path(DATABASES["default"]["NAME"]))
    # The web process and the worker write at once: WAL lets readers go on, and
    # IMMEDIATE transactions take the write lock up front instead of failing
    # half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory: tests start a real worker process that must see it.
    # Per process, so two test sessions on one machine never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # login throttling first
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous sees nothing
GUARDIAN_RAISE_403 = False

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes): after 5 failures for one user from one
# address, that pair waits 15 minutes. The address is REMOTE_ADDR only, so a
# client cannot reset its counter with a forged X-Forwarded-For; behind a
# reverse proxy set WALLE_PROXY_COUNT to the number of proxies.
AXES_FAILURE_LIMIT = env_int("WALLE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("WALLE_LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
if env_int("WALLE_PROXY_COUNT", 0):
    AXES_IPWARE_PROXY_COUNT = env_int("WALLE_PROXY_COUNT", 0)
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = env_str("WALLE_LANGUAGE", "en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# Walle's own catalogue (docs/i18n.md); Django's own strings come with Django.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("WALLE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(mode=0o700, exist_ok=True)  # inside the private data dir, private too
# Serve app static files without a collectstatic step too (tests, first run).
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("WALLE_SESSION_AGE", 12 * 3600)
SESSION_COOKIE_SECURE = env_bool("WALLE_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Walle itself -----------------------------------------------------------
# Where checkout workspaces live on the deploy host (one dir per project).
WALLE_WORKSPACE_ROOT = Path(env_str("WALLE_WORKSPACE_ROOT", str(DATA_DIR / "workspaces")))
# Deploy-host hooks (pre_deploy, post_deploy) run in a bubblewrap sandbox that
# sees / read-only and hides the data dir and every workspace: required (the
# default), auto (sandbox when bwrap is installed) or off; never unsandboxed as root.
WALLE_HOOK_SANDBOX = env_str("WALLE_HOOK_SANDBOX", "required")
# When the worker runs as root, build hooks run as this unprivileged user.
WALLE_BUILD_USER = env_str("WALLE_BUILD_USER", "nobody")
# Build hooks reach the network (to download dependencies) unless this is off.
WALLE_HOOK_NETWORK = env_bool("WALLE_HOOK_NETWORK", True)
# Longest a deploy may run; the worker kills it after this.
WALLE_DEPLOY_TIMEOUT = env_int("WALLE_DEPLOY_TIMEOUT", 3600)
# Per hook line / remote command.
WALLE_COMMAND_TIMEOUT = env_int("WALLE_COMMAND_TIMEOUT", 600)
# A project lock whose heartbeat is older than this is taken over.
WALLE_LOCK_LEASE = env_int("WALLE_LOCK_LEASE", 90)
WALLE_LOCK_HEARTBEAT = env_int("WALLE_LOCK_HEARTBEAT", 10)
# How long a rollout waits for a promote before it fails and switches its
# hosts back. The wait counts against WALLE_DEPLOY_TIMEOUT (the worker kills a
# run after that), so it is kept 10 minutes below it for the rest of the run.
WALLE_PROMOTE_TIMEOUT = min(env_int("WALLE_PROMOTE_TIMEOUT", 1800), max(60, WALLE_DEPLOY_TIMEOUT - 600))
# How often the waiting worker looks for the promote (a cheap query).
WALLE_PROMOTE_POLL = env_int("WALLE_PROMOTE_POLL", 2)
# What one run may store of its console log; past either limit the rest is cut
# with a visible marker (a runaway build must not fill the database).
WALLE_LOG_MAX_LINES = env_int("WALLE_LOG_MAX_LINES", 20000)
WALLE_LOG_MAX_BYTES = env_int("WALLE_LOG_MAX_BYTES", 8 * 1024 * 1024)
# Upper bound of one API log page, in bytes of log text.
WALLE_API_LOG_PAGE_BYTES = env_int("WALLE_API_LOG_PAGE_BYTES", 1024 * 1024)

# --- Background work (django-q2) --------------------------------------------
# A deploy must never run twice: timeout < retry (else the broker re-delivers a
# running task), one attempt, and failures acknowledged instead of re-queued.
WALLE_REDIS_URL = env_str("WALLE_REDIS_URL")
Q_CLUSTER: dict = {
    "name": "walle",
    "workers": env_int("WALLE_WORKERS", 2),
    "timeout": WALLE_DEPLOY_TIMEOUT,
    "retry": WALLE_DEPLOY_TIMEOUT + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "label": gettext_lazy("Background tasks"),  # the admin's name for django-q2's app
}
if WALLE_REDIS_URL:
    Q_CLUSTER["redis"] = WALLE_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5
if env_bool("WALLE_SYNC_TASKS", False):
    Q_CLUSTER["sync"] = True

# --- API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Walle API",
    "DESCRIPTION": "Deploy tickets, approvals, rollbacks and logs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "TicketStatusEnum": "releases.models.Ticket.Status",
        "RunStatusEnum": "releases.models.DeployRun.Status",
        "RunHostStatusEnum": "releases.models.RunHost.Status",
        "RepoModeEnum": "projects.models.RepoMode",
        "AuditKindEnum": "audit.models.Kind",
        "TicketKindEnum": "releases.models.Ticket.Kind",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("WALLE_LOG_LEVEL", "INFO")},
}

# --- Operations: health, metrics, log retention, production security ---------
# (see docs/production.md). Appended as one section so the rest stays as it was.
INSTALLED_APPS += ["ops"]

# django-q2 keeps its cluster heartbeats (Stat) in the broker's cache. With
# Redis that is Redis itself; with the ORM broker it is a Django cache, and the
# default per-process memory cache would hide the worker from /readyz and
# /metrics. The database cache is shared by every process and machine that
# shares the database; its table is made by the ops app's migration.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "walle_q": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "walle_q_stats"},
}
Q_CLUSTER["cache"] = "walle_q"

# Where the key-encryption key is read from when it is not in the environment:
# /readyz checks that the file is still readable.
WALLE_KEY_ENCRYPTION_KEY_FILE = None if env_list("WALLE_KEY_ENCRYPTION_KEY") else DATA_DIR / "key_encryption_key"

# /metrics is refused unless the request carries this bearer token or comes
# from an address in the allowlist (IPs or CIDR networks, comma-separated).
WALLE_METRICS_TOKEN = env_str("WALLE_METRICS_TOKEN")
WALLE_METRICS_ALLOW = env_list("WALLE_METRICS_ALLOW")
# Reverse proxies in front of Walle (the same variable login throttling reads):
# only then is the client address taken from X-Forwarded-For.
WALLE_PROXY_COUNT = env_int("WALLE_PROXY_COUNT", 0)

# Console logs (LogLine rows) of runs that ended longer ago than this are
# removed daily; tickets, their events, runs and releases are kept. 0 keeps all.
WALLE_LOG_RETENTION_DAYS = env_int("WALLE_LOG_RETENTION_DAYS", 180)

# Behind a TLS-terminating proxy (docs/production.md). All off by default so a
# plain `bin/start` on http://127.0.0.1 keeps working.
SECURE_SSL_REDIRECT = env_bool("WALLE_SSL_REDIRECT", False)
# Probes and scrapers on the machine itself talk plain HTTP to gunicorn.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("WALLE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("WALLE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("WALLE_HSTS_PRELOAD", False)
if env_bool("WALLE_PROXY_SSL_HEADER", False):
    # Trust X-Forwarded-Proto only when told a proxy sets it (and strips the
    # client's own): otherwise any client could claim to be on HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Notifications (docs/notifications.md) -----------------------------------
# Links in messages: the worker that sends them has no request to take the host from.
WALLE_BASE_URL = (env_str("WALLE_BASE_URL") or bind.open_urls(WALLE_BIND, WALLE_PORT)[0]).rstrip("/")
# Email channels (Django's SMTP backend); a timeout so a dead mail server cannot hold a worker.
EMAIL_HOST = env_str("WALLE_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("WALLE_EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("WALLE_EMAIL_USER")
EMAIL_HOST_PASSWORD = env_str("WALLE_EMAIL_PASSWORD")
EMAIL_USE_TLS = env_bool("WALLE_EMAIL_STARTTLS", False)
EMAIL_USE_SSL = env_bool("WALLE_EMAIL_SSL", False)
EMAIL_TIMEOUT = env_int("WALLE_EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("WALLE_EMAIL_FROM", "walle@localhost")
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "NotificationKindEnum": "notifications.models.Kind",
    "NotificationEventEnum": "notifications.models.Event",
    "DeliveryStatusEnum": "notifications.models.Delivery.Status",
})
