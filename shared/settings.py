"""The one settings object. Nothing else in paysys reads the environment.

`DATABASE_URL` and `REDIS_URL` keep their conventional names; every other setting is
`PAYSYS_`-prefixed. A `.env` file in the working directory is read too.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAYSYS_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,  # `PAYSYS_X=` (as in .env.example) means the default
    )

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url")
    )

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    rate_limit: str = ""
    rate_limit_burst: int | None = Field(default=None, ge=1)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # A request waits this long for a free database connection, then gets a 503.
    db_pool_timeout: float = Field(default=3.0, gt=0)
    # Money-moving POSTs are refused (503 overloaded) while the oldest pending operation
    # is older than this many seconds; 0 accepts whatever the backlog.
    max_backlog_seconds: float = Field(default=60.0, ge=0)
    # Failed authentications per client address (limits notation), past which requests
    # from that address without a valid key get 429 without any database work.
    auth_failure_limit: str = "20/second"
    # Comma-separated addresses (or networks) of proxies whose X-Forwarded-For is
    # believed; empty: the client address is always the connection's peer.
    trusted_proxies: str = ""
    # Long polls one tenant may have waiting at once in one API process; past it a long
    # poll answers at once with the current state.
    long_poll_max_per_tenant: int = Field(default=100, ge=0)
    db_connect_timeout: float = Field(default=3.0, gt=0)
    db_statement_timeout: float = Field(default=10.0, gt=0)
    # A concurrent request holding the same idempotency key is waited for this long,
    # then the newcomer is told 409 idempotency_key_in_use.
    idempotency_lock_timeout: float = Field(default=5.0, gt=0)
    idempotency_retention_hours: int = Field(default=24, ge=24)
    # Worker sessions: a drain waiting longer than this for a row lock gives up (it rolls
    # back, and the sweeper wakes another); a statement running longer than that is
    # cancelled.
    db_lock_timeout: float = Field(default=10.0, gt=0)
    db_worker_statement_timeout: float = Field(default=60.0, gt=0)

    # Worker and sweeper
    # One pool process: where PostgreSQL and the API share the worker's cores, a second
    # one only competes with them (see the README's benchmarks). Raise it where the worker
    # has cores of its own.
    worker_concurrency: int = Field(default=1, ge=1, le=64)
    drain_max_ops: int = Field(default=1000, ge=1, le=50_000)
    drain_max_seconds: float = Field(default=2.0, gt=0)
    # Doorbells: how many drain tasks the API keeps going at once (see shared/doorbell.py).
    drain_slots: int = Field(default=2, ge=1, le=64)
    sweeper_interval: float = Field(default=1.0, gt=0)
    sweeper_min_age: float = Field(default=2.0, ge=0)
    # `paysys run`: on Ctrl-C, how long a child may take to stop before it is killed, with
    # every process it started.
    stop_grace_seconds: float = Field(default=15.0, gt=0, le=600)
    # Names in Redis: the Celery queue and the prefix of every key and channel, so that
    # several paysys installations (or test runs) can share one Redis.
    celery_queue: str = "paysys"
    redis_prefix: str = "paysys"

    # Webhooks (see docs/API.md, "Events and webhooks")
    # The n-th retry comes about base x 2^(n-1) seconds after the previous attempt, with
    # jitter, at most `webhook_retry_max_interval_seconds` apart, for `webhook_retry_hours`
    # after the event; then the delivery is given up.
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_interval_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_hours: float = Field(default=72.0, gt=0)
    # An endpoint whose deliveries have all failed for this long is disabled.
    webhook_disable_after_hours: float = Field(default=72.0, gt=0)
    # Loopback, private and link-local receivers are refused unless this is true.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0)
    # Comma-separated Fernet keys: the first encrypts the endpoints' signing secrets, all
    # decrypt (rotation). Empty: secrets are stored as they are (see the README).
    webhook_secret_keys: str = ""
    # Delivery workers (`paysys webhooks`): sends at once per process.
    webhook_concurrency: int = Field(default=8, ge=1, le=256)

    # Command-line client
    url: str = "http://127.0.0.1:8000"
    api_key: str | None = None

    log_level: str = "INFO"
    # auto: readable text on a terminal, one JSON object per line anywhere else.
    log_format: Literal["auto", "json", "text"] = "auto"

    # Metrics: a directory shared by the processes of one host (`paysys run` makes one),
    # so that the API's /metrics adds up every process's counters; and the port on which
    # a `paysys worker` of its own (a container) serves its metrics, if any.
    metrics_dir: str | None = None
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if not value.startswith("postgresql"):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must be a redis:// URL")
        return value

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        if value.strip():
            import limits

            try:
                limits.parse_many(value)
            except ValueError as exc:
                raise ValueError(
                    f"{value!r} is not in the limits notation "
                    "(for example 200/second or 1000/minute;20000/hour)"
                ) from exc
        return value.strip()

    @field_validator("webhook_secret_keys")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        from cryptography.fernet import Fernet

        for key in filter(None, (k.strip() for k in value.split(","))):
            try:
                Fernet(key)
            except ValueError as exc:
                raise ValueError(
                    "PAYSYS_WEBHOOK_SECRET_KEYS must be comma-separated Fernet keys (32 bytes, "
                    "url-safe base64; see .env.example)"
                ) from exc
        return value

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "DATABASE_URL is not set (for example postgresql://127.0.0.1/paysys)"
            )
        return self.database_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError("REDIS_URL is not set (for example redis://127.0.0.1:6379/0)")
        return self.redis_url

    @property
    def asyncpg_dsn(self) -> str:
        """asyncpg takes plain postgresql:// URLs, without a SQLAlchemy driver suffix."""
        url = self.require_database_url()
        scheme, _, rest = url.partition("://")
        return "postgresql://" + rest if "+" in scheme else url

    @property
    def sqlalchemy_url(self) -> str:
        url = self.require_database_url()
        scheme, _, rest = url.partition("://")
        return url if "+" in scheme else "postgresql+psycopg2://" + rest


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
