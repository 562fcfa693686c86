"""Settings, read from environment variables only.

Every default gives the embedded setup (SQLite, a broker that needs no server,
the ``sim`` backend), so ``make run`` works on a fresh machine. Production sets
``DATABASE_URL``, ``CELERY_BROKER_URL`` and ``ADMINVMS_*`` (see the README's
configuration table).
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    return float(env(name, str(default)))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DATA_DIR = Path(env("ADMINVMS_DATA_DIR", str(BASE_DIR / ".data")))


def _secret_key() -> str:
    """The key from the environment; for the embedded setup, one made once and kept in DATA_DIR.

    The file is written whole under a temporary name, readable by its owner only from the
    start, and linked into place: a second process starting at the same moment either
    finds the first one's key or loses the race and reads it; nobody reads half a key.
    """
    if key := env("ADMINVMS_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        temporary = DATA_DIR / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("ADMINVMS_DEBUG")
ALLOWED_HOSTS = env_list("ADMINVMS_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("ADMINVMS_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "csp",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "tenancy",
    "categories",
    "instances",
    "instances.drivers.sim",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: it turns a locked-out sign-in into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "adminvms_dashboard.urls"
WSGI_APPLICATION = "adminvms_dashboard.wsgi.application"

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
                "tenancy.context_processors.tenancy",
            ],
        },
    },
]

# The embedded default is a SQLite file. IMMEDIATE transactions make SQLite take
# its write lock at BEGIN, so the quota check and the insert that follows it are
# serialised between the web process and the worker.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'adminvms.sqlite3'}"),
        conn_max_age=int(env("ADMINVMS_DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    # Token first, so that an anonymous request gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "adminvms_dashboard.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "adminvms_dashboard.schema.AutoSchema",
    "EXCEPTION_HANDLER": "adminvms_dashboard.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "adminvms API",
    "DESCRIPTION": "Administrative instances: categories, flavors, images, volumes and instances.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The contract is JSON (DESIGN.md §4); the form parsers serve the browsable API only.
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
}

# --- Celery -----------------------------------------------------------------
# Without CELERY_BROKER_URL the web process and the worker share a folder
# through kombu's filesystem transport: no broker server is needed.
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # A task that runs longer than the visibility timeout is handed to a second
    # worker, so tasks stay short (they poll by re-enqueueing, never sleep).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(env("ADMINVMS_VISIBILITY_TIMEOUT", "600")),
        "unacked_restore_interval": float(env("ADMINVMS_UNACKED_RESTORE_INTERVAL", "10")),
        "unacked_restore_throttle": float(env("ADMINVMS_UNACKED_RESTORE_THROTTLE", "10")),
        # A Redis that accepts connections but does not answer (paused, swapping) would hold a
        # request sending a task forever: without these, redis-py waits on the socket without end.
        # Workers drop both and wait for Redis (adminvms_dashboard/celery.py says why).
        "socket_timeout": env_float("ADMINVMS_BROKER_TIMEOUT", 3),
        "socket_connect_timeout": env_float("ADMINVMS_BROKER_TIMEOUT", 3),
    }
    # Each of Celery's publish retries waits for two timeouts more (with its default three, a
    # request waited 15.6 s on a paused Redis; 3 s without). Retrying adds nothing: redis-py
    # reconnects a stale pooled connection itself, and a task that was not sent waits recorded
    # (queue_unavailable) until reconcile sends it again.
    CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 0}
CELERY_TASK_DEFAULT_QUEUE = env("ADMINVMS_QUEUE", "adminvms")
CELERY_TASK_ACKS_LATE = True
# Without this a task whose pool child is killed is acknowledged and lost.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker keeps its database connection from task to task (Celery closes it before and after each
# one otherwise: a new PostgreSQL connection cost more than a launch's step), for this many tasks;
# before each task it is checked once (CONN_HEALTH_CHECKS), so one PostgreSQL dropped is made anew.
CELERY_DB_REUSE_MAX = int(env("ADMINVMS_WORKER_DB_REUSE_MAX", "1000"))
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("ADMINVMS_CELERY_EAGER")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "reconcile": {
        "task": "instances.tasks.reconcile",
        "schedule": timedelta(seconds=env_float("ADMINVMS_RECONCILE_INTERVAL", 60)),
    },
    "sync-catalog": {
        "task": "instances.tasks.sync_catalog",
        "schedule": timedelta(seconds=env_float("ADMINVMS_CATALOG_SYNC_INTERVAL", 600)),
    },
    "health-check": {
        "task": "instances.tasks.health_check",
        "schedule": timedelta(seconds=env_float("ADMINVMS_HEALTH_CHECK_INTERVAL", 10)),
    },
    "fleet": {
        "task": "instances.tasks.fleet",
        "schedule": timedelta(seconds=env_float("ADMINVMS_FLEET_INTERVAL", 10)),
    },
    "counts": {
        "task": "instances.tasks.counts",
        "schedule": timedelta(seconds=env_float("ADMINVMS_COUNTS_INTERVAL", 30)),
    },
}

# --- adminvms ---------------------------------------------------------------


def _default_backends() -> list[str]:
    """sim always; openstack when OS_CLOUD names a cloud; docker when an engine is configured or local."""
    backends = ["sim"]
    if env("OS_CLOUD"):
        backends.append("openstack")
    if env("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
        backends.append("docker")
    return backends


ADMINVMS = {
    # Backends the workers may use, and the one a category without its own uses. With OS_CLOUD
    # set, the openstack backend is enabled and is the default.
    "BACKENDS": env_list("ADMINVMS_BACKENDS", ",".join(_default_backends())),
    "DEFAULT_BACKEND": env("ADMINVMS_DEFAULT_BACKEND", "openstack" if env("OS_CLOUD") else "sim"),
    # How often a task polls the backend for a transition, and how long any
    # action may take before it ends in ERROR.
    "POLL_INTERVAL": env_float("ADMINVMS_POLL_INTERVAL", 2.0),
    "ACTION_TIMEOUT": env_float("ADMINVMS_ACTION_TIMEOUT", 600.0),
    "TASK_MAX_RETRIES": int(env("ADMINVMS_TASK_MAX_RETRIES", "5")),
    "MAX_LAUNCH_COUNT": int(env("ADMINVMS_MAX_LAUNCH_COUNT", "50")),
    # Fault injection for tests: seconds a launch waits between the backend's create and recording it.
    "FAULT_PAUSE_AFTER_CREATE": env_float("ADMINVMS_FAULT_PAUSE_AFTER_CREATE", 0),
    # The simulated cloud: delays in seconds, a random failure rate, hosts.
    "SIM_BOOT_SECONDS": env_float("ADMINVMS_SIM_BOOT_SECONDS", 3.0),
    "SIM_REBOOT_SECONDS": env_float("ADMINVMS_SIM_REBOOT_SECONDS", 2.0),
    "SIM_STOP_SECONDS": env_float("ADMINVMS_SIM_STOP_SECONDS", 1.0),
    "SIM_DELETE_SECONDS": env_float("ADMINVMS_SIM_DELETE_SECONDS", 1.0),
    "SIM_API_LATENCY": env_float("ADMINVMS_SIM_API_LATENCY", 0.0),
    "SIM_ERROR_RATE": env_float("ADMINVMS_SIM_ERROR_RATE", 0.0),
    "SIM_HOSTS": int(env("ADMINVMS_SIM_HOSTS", "3")),
    # Every call of the simulated cloud fails as if its API were down.
    "SIM_OUTAGE": env_bool("ADMINVMS_SIM_OUTAGE"),
    "DEMO_PASSWORD": env("ADMINVMS_DEMO_PASSWORD"),
    # The openstack backend: a cloud from clouds.yaml (OS_CLOUD, OS_CLIENT_CONFIG_FILE), the
    # tenant network of each project (by name, {project} is its slug) and the management network.
    "OPENSTACK": {
        "CLOUD": env("OS_CLOUD"),
        "PROJECT_NETWORK": env("ADMINVMS_OS_PROJECT_NETWORK", "{project}-net"),
        "MANAGEMENT_NETWORK": env("ADMINVMS_OS_MANAGEMENT_NETWORK", "management"),
        # Or the management network's id, when its name is not unique in the service project.
        "MANAGEMENT_NETWORK_ID": env("ADMINVMS_OS_MANAGEMENT_NETWORK_ID"),
        # A cloud (clouds.yaml) of the same account with the admin role scoped to a project other
        # than the service project: locks made there are the admin's, which members of the service
        # project cannot lift (Nova records "owner" locks for the server's own project).
        "LOCK_CLOUD": env("ADMINVMS_OS_LOCK_CLOUD"),
        # Projects (ids) whose private images are the provider's, besides public images;
        # empty: the service project alone. Every other private image is its project's own.
        "IMAGE_OWNERS": env_list("ADMINVMS_OS_IMAGE_OWNERS"),
    },
    # The docker backend (DOCKER_HOST, default the local socket): where appliance GUI ports are
    # published, how long a stop may take, the API timeout and the containers' restart policy.
    "DOCKER_PUBLISH_HOST": env("ADMINVMS_DOCKER_PUBLISH_HOST", "127.0.0.1"),
    "DOCKER_STOP_TIMEOUT": env_float("ADMINVMS_DOCKER_STOP_TIMEOUT", 10),
    "DOCKER_API_TIMEOUT": env_float("ADMINVMS_DOCKER_API_TIMEOUT", 30),
    "DOCKER_RESTART_POLICY": env("ADMINVMS_DOCKER_RESTART_POLICY", "unless-stopped"),
    # Only images whose reference starts with one of these (a registry host, a namespace) run
    # containers: the provider's own, never whatever else the engine holds.
    "DOCKER_IMAGE_PREFIXES": env_list("ADMINVMS_DOCKER_IMAGE_PREFIXES", "adminvms/"),
    # The appliance GUI proxy only reaches management endpoints inside these networks.
    "GUI_ALLOWED_NETWORKS": env_list("ADMINVMS_GUI_ALLOWED_NETWORKS", "127.0.0.0/8"),
    # Failed sign-ins for one user name, from every address, before it is refused from addresses
    # where it has not signed in within the last LOGIN_KNOWN_ADDRESS_DAYS (tenancy/signin.py).
    "LOGIN_USER_FAILURE_LIMIT": int(env("ADMINVMS_LOGIN_USER_FAILURE_LIMIT", "30")),
    "LOGIN_KNOWN_ADDRESS_DAYS": env_float("ADMINVMS_LOGIN_KNOWN_ADDRESS_DAYS", 90),
}

# --- sign-in, tokens and production security -------------------------------------
# Failed sign-ins (the login page and POST /api/v1/auth/token/) count per address, and per user
# name from that address; past the limit the caller is refused with 429 until the cool-off ends.
# A user name failed for from many addresses is refused too, but only from addresses where it has
# not signed in lately: nobody locks the provider's admins out from where they work
# (tenancy/signin.py). A success resets the failures of the account that succeeded alone.
AUTHENTICATION_BACKENDS = [
    "tenancy.signin.SignInLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(env("ADMINVMS_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=env_float("ADMINVMS_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", ["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = False  # tenancy.signin resets the account that succeeded, nobody else
AXES_CLIENT_IP_CALLABLE = "adminvms_dashboard.client.client_address"
AXES_VERBOSE = False
# How many proxies in front of us append to X-Forwarded-For (0: the peer's address is the client's).
TRUSTED_PROXY_COUNT = int(env("ADMINVMS_TRUSTED_PROXY_COUNT", "0"))

# API tokens expire and are stored as digests (django-rest-knox); POST /api/v1/auth/token/ issues one.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_float("ADMINVMS_TOKEN_TTL_HOURS", 10)),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# Production: HTTPS behind a TLS proxy. ADMINVMS_SECURE turns on what `manage.py check --deploy` asks.
SECURE = env_bool("ADMINVMS_SECURE")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_HSTS_SECONDS = int(env("ADMINVMS_HSTS_SECONDS", "31536000" if SECURE else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
if env_bool("ADMINVMS_BEHIND_TLS_PROXY", SECURE):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Preloading HSTS into browsers is a commitment the operator makes for the whole domain, not us.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
X_FRAME_OPTIONS = "DENY"
# The dashboard's own pages run only its own scripts (no inline script, no eval).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Bootstrap and htmx set inline style attributes (progress bars, transitions).
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- health checks, auto-heal, spare pools, rollouts -----------------------------
ADMINVMS |= {
    # A probe's timeout, how many run at once (one worker's threads), and how soon a replacement
    # that did not answer yet is probed again before it counts another failure.
    "HEALTH_CHECK_TIMEOUT": env_float("ADMINVMS_HEALTH_CHECK_TIMEOUT", 3),
    "HEALTH_CHECK_PARALLEL": int(env("ADMINVMS_HEALTH_CHECK_PARALLEL", "20")),
    "HEALTH_CHECK_RETRY": env_float("ADMINVMS_HEALTH_CHECK_RETRY", 5),
    # The circuit breaker: auto-heal pauses for a category (or a backend) when more than this share
    # of its instances, and at least HEAL_BREAKER_MIN of them, turned unhealthy within the window.
    "HEAL_BREAKER_SHARE": env_float("ADMINVMS_HEAL_BREAKER_SHARE", 0.2),
    "HEAL_BREAKER_MIN": int(env("ADMINVMS_HEAL_BREAKER_MIN", "2")),
    "HEAL_BREAKER_WINDOW": env_float("ADMINVMS_HEAL_BREAKER_WINDOW", 300),
    # Servers the fleet task may start building per backend per minute (heals first, then
    # rollouts, then spares), as Octavia's build_rate_limit.
    "BUILD_RATE_LIMIT": int(env("ADMINVMS_BUILD_RATE_LIMIT", "10")),
    # The project that holds the spare pools.
    "SPARE_PROJECT": env("ADMINVMS_SPARE_PROJECT", "adminvms-spares"),
}

# --- counts of large lists and of the console overview --------------------------
ADMINVMS |= {
    # A fleet of fewer live instances is counted on every overview; a larger one reads the count the
    # worker takes every COUNTS_INTERVAL seconds (the page says when it was taken). A list (API or
    # console) of at least this many rows keeps its count for COUNTS_INTERVAL seconds.
    "COUNTS_EXACT_BELOW": int(env("ADMINVMS_COUNTS_EXACT_BELOW", "10000")),
    "COUNTS_INTERVAL": CELERY_BEAT_SCHEDULE["counts"]["schedule"].total_seconds(),
}

# --- EC2-compatible API (/ec2/) ----------------------------------------------
ADMINVMS |= {
    # Fernet keys that encrypt the stored EC2 secret keys, comma-separated: the first encrypts,
    # all decrypt (rotation: put a new key first, then `manage.py ec2_credentials rotate`).
    # Empty: one key derived from the Django secret key.
    "EC2_SECRET_KEYS": env_list("ADMINVMS_EC2_SECRET_KEYS"),
    # The region clients sign for (SigV4 scope), and what DescribeRegions answers.
    "EC2_REGION": env("ADMINVMS_EC2_REGION", "RegionOne"),
    # What DescribeAvailabilityZones answers.
    "EC2_AVAILABILITY_ZONES": env_list("ADMINVMS_EC2_AVAILABILITY_ZONES", "nova"),
    # How long DescribeInstances still shows a terminated instance (as EC2 does, for about an hour).
    "EC2_TERMINATED_VISIBLE_SECONDS": env_float("ADMINVMS_EC2_TERMINATED_VISIBLE_SECONDS", 3600),
}

# --- appliance GUI origin ----------------------------------------------------
# Appliance GUIs never run with the dashboard's origin (DESIGN.md rule 9): each
# is served at <instance-uuid>.<GUI_DOMAIN>, an origin (and cookie jar) of its
# own, which a short-lived single-use ticket from the dashboard opens. Browsers
# and curl resolve every *.localhost name to loopback, so the default works for
# `make run` with no DNS; production names a wildcard domain with TLS, ideally
# not under the dashboard's registrable domain (see the README).
ADMINVMS |= {
    # host[:port]; without a port, the port the browser used for the dashboard.
    "GUI_DOMAIN": env("ADMINVMS_GUI_DOMAIN", "gui.localhost").strip().lower().rstrip("."),
    # http or https; empty: the scheme of the dashboard request that opens the GUI.
    "GUI_SCHEME": env("ADMINVMS_GUI_SCHEME"),
    # Seconds a ticket may take from the dashboard to the GUI host, and a GUI session lasts.
    "GUI_TICKET_SECONDS": env_float("ADMINVMS_GUI_TICKET_SECONDS", 30),
    "GUI_SESSION_SECONDS": env_float("ADMINVMS_GUI_SESSION_SECONDS", 3600),
    # Total seconds one proxied request may take, headers and body; and how many
    # proxied requests one user may have in flight (a browser opens six per host).
    "GUI_DEADLINE": env_float("ADMINVMS_GUI_DEADLINE", 60),
    "GUI_MAX_CONCURRENT": int(env("ADMINVMS_GUI_MAX_CONCURRENT", "6")),
}
if "*" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append("." + ADMINVMS["GUI_DOMAIN"].partition(":")[0])
# "Open appliance GUI" posts to the dashboard, which redirects to the appliance's origin with its
# ticket: the dashboard's CSP lets its forms end there (form-action also governs redirects).
_gui_host, _, _gui_port = ADMINVMS["GUI_DOMAIN"].partition(":")
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(f"*.{_gui_host}:{_gui_port or '*'}")
# Before WhiteNoise and everything after it: the GUI hosts get none of the
# dashboard's middleware (static files, session, CSRF, messages), only their own views.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "instances.middleware.GuiOriginMiddleware"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("ADMINVMS_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
