"""``Settings``: where Flowloom runs and how, in one validated object.

    settings = Settings(store_url="redis://db:6379/0", broker_url="kafka://k1:9092",
                        namespace="billing")                       # from code
    settings = Settings.from_env()                                 # FLOWLOOM_* variables
    settings = Settings.from_env(concurrency=8)                    # flags win over the environment
    runtime = Runtime.from_settings(local_engine, settings)

**Namespace.** One ``namespace`` isolates an application on a shared Redis and Kafka: it derives
the store key prefix (``{namespace}/``), the task topic (``{namespace}.tasks``) and the workers'
consumer group (``{namespace}.workers``). Set ``key_prefix``, ``topic`` or ``group`` only to
override one of them.

**Environment** (read by ``from_env`` only, never by ``Settings(...)``): ``FLOWLOOM_<FIELD>``
for every field (``FLOWLOOM_STORE_URL``, ``FLOWLOOM_CONCURRENCY``, ...; the ``*_options`` fields
as JSON objects), plus ``REDIS_URL`` for the store and ``KAFKA_BOOTSTRAP`` (``host:port,...``)
for the broker when the ``FLOWLOOM_`` variable is not set. Precedence: keyword arguments (CLI
flags), then ``FLOWLOOM_*``, then ``REDIS_URL``/``KAFKA_BOOTSTRAP``, then the defaults.

**Size limits** (``max_inputs_bytes``, ``max_output_bytes``, ``max_state_bytes``,
``max_task_bytes``; ``FLOWLOOM_MAX_INPUTS_BYTES``, ...) bound inputs, step results, execution
state and queue messages as bytes of JSON; ``settings.limits`` is them as a ``Limits`` (see
``distributed.limits`` for the defaults and where each is checked).

**Secrets.** URLs may carry credentials (``redis://:pw@host/0``, ``kafka://user:pw@host``);
``repr``, ``str``, ``describe()`` and every error show them masked. A bad value raises
``InvalidSettings`` naming the setting (and the variable it came from) and the rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic import model_validator as _model_validator

from mq.errors import InvalidBrokerURL
from mq.url import check_broker_url
from store.errors import InvalidStoreURL, mask_url
from store.factory import check_store_url

from .errors import InvalidSettings
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "FLOWLOOM_"
_ALIASES = {"store_url": "REDIS_URL", "broker_url": "KAFKA_BOOTSTRAP"}
_SECRET_OPTION_WORDS = ("password", "secret", "token", "key")
_NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class Settings(BaseModel):
    """Everything a Flowloom process needs to know about where it runs (see the module doc).

    Durations are in seconds. ``workers`` times ``concurrency`` steps run at once in one process;
    ``lease_ttl`` bounds how long a dead worker's step waits before it runs elsewhere;
    ``sweep_interval`` is how often the recovery sweep runs; ``grace_period`` is how long a
    graceful stop lets running steps finish; ``retention`` expires finished executions
    (``None``: keep them); ``metrics_port`` serves ``/metrics`` on ``metrics_host``.
    ``app`` (``module:object``) and ``blueprints`` (a folder) say where the workflow
    definitions come from. ``max_*_bytes`` are the size limits (``limits``, a ``Limits``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store_url: str = "leveldb://./flowloom-data"
    broker_url: str = "inproc://"
    namespace: str = Field(default="flowloom", pattern=_NAMESPACE_PATTERN, max_length=100)
    key_prefix: str | None = Field(default=None, min_length=1)
    topic: str | None = Field(default=None, min_length=1)
    group: str | None = Field(default=None, min_length=1)
    workers: int = Field(default=1, ge=1)
    concurrency: int = Field(default=4, ge=1)
    lease_ttl: float = Field(default=10.0, gt=0)
    sweep_interval: float = Field(default=0.5, gt=0)
    grace_period: float = Field(default=10.0, ge=0)
    retention: float | None = Field(default=None, gt=0)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    store_options: dict[str, Any] = Field(default_factory=dict)
    broker_options: dict[str, Any] = Field(default_factory=dict)
    app: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    blueprints: str | None = Field(default=None, min_length=1)
    max_inputs_bytes: int = Field(default=DEFAULT_LIMITS.max_inputs_bytes, ge=1)
    max_output_bytes: int = Field(default=DEFAULT_LIMITS.max_output_bytes, ge=1)
    max_state_bytes: int = Field(default=DEFAULT_LIMITS.max_state_bytes, ge=1)
    max_task_bytes: int = Field(default=DEFAULT_LIMITS.max_task_bytes, ge=1024)

    def __init__(self, **values: Any) -> None:
        """Validate ``values``; raises ``InvalidSettings`` (one message for every problem)."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSettings(_explain(exc)) from None

    @field_validator("store_url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        try:
            check_store_url(url)
        except InvalidStoreURL as exc:
            raise ValueError(str(exc)) from None
        return url

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, url: str) -> str:
        try:
            check_broker_url(url)
        except InvalidBrokerURL as exc:
            raise ValueError(str(exc)) from None
        return url

    @_model_validator(mode="after")
    def _derive_from_namespace(self) -> Self:
        derived = {
            "key_prefix": f"{self.namespace}/",
            "topic": f"{self.namespace}.tasks",
            "group": f"{self.namespace}.workers",
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)  # frozen: set once, while validating
        return self

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``FLOWLOOM_*`` (and ``REDIS_URL``/``KAFKA_BOOTSTRAP``) in ``environ``
        (default ``os.environ``), with ``overrides`` (None values ignored) on top."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name in cls.model_fields:
            found = _from_environment(env, name)
            if found is not None:
                sources[name], values[name] = found
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except InvalidSettings as exc:
            raise InvalidSettings(_name_sources(str(exc), sources, overrides)) from None

    @classmethod
    def from_url(cls, store_url: str, broker_url: str = "inproc://", **values: Any) -> Settings:
        """Settings for a store URL and a broker URL (arq's ``RedisSettings.from_dsn``)."""
        return cls(store_url=store_url, broker_url=broker_url, **values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated again; derived names follow a new namespace
        unless they were set explicitly."""
        explicit = {name: getattr(self, name) for name in self.model_fields_set}
        return Settings(**{**explicit, **changes})

    # -- reading ----------------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The size limits, for ``EngineConfig``, ``StepExecutor`` and ``MQTaskQueue``."""
        return Limits(
            max_inputs_bytes=self.max_inputs_bytes,
            max_output_bytes=self.max_output_bytes,
            max_state_bytes=self.max_state_bytes,
            max_task_bytes=self.max_task_bytes,
        )

    @property
    def embedded(self) -> bool:
        """True on the in-process broker: one process, nothing shared."""
        return self.broker_url.startswith("inproc:")

    def describe(self) -> dict[str, Any]:
        """Every setting, with passwords masked: what to print or log."""
        shown = self.model_dump()
        shown["store_url"] = mask_url(self.store_url)
        shown["broker_url"] = mask_url(self.broker_url)
        shown["store_options"] = _mask_options(self.store_options)
        shown["broker_options"] = _mask_options(self.broker_options)
        return shown

    def __repr_args__(self) -> Any:
        return list(self.describe().items())


def _from_environment(env: Mapping[str, str], name: str) -> tuple[str, Any] | None:
    """(variable name, value) of setting ``name`` in ``env``, or None."""
    for variable in (ENV_PREFIX + name.upper(), _ALIASES.get(name)):
        if variable and env.get(variable, "") != "":
            raw = env[variable]
            if name.endswith("_options"):
                return variable, _json_object(variable, raw)
            if variable == "KAFKA_BOOTSTRAP" and "://" not in raw:
                return variable, f"kafka://{raw}"  # host:port,host:port
            return variable, raw
    return None


def _json_object(variable: str, raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidSettings(f"{variable} must be a JSON object, like '{{\"ssl\": true}}'")
    return value


def _explain(error: ValidationError) -> str:
    """One line per problem: ``setting: rule (got value)``, secrets masked."""
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        value = item.get("input")
        shown = mask_url(value) if isinstance(value, str) else value
        got = "" if name.endswith("_url") or isinstance(value, dict) else f" (got {shown!r})"
        lines.append(f"{name}: {message}{got}")
    return "; ".join(lines)


def _name_sources(message: str, sources: dict[str, str], overrides: Mapping[str, Any]) -> str:
    """Say which variable a bad setting came from (unless a flag set it)."""
    for name, variable in sources.items():
        if overrides.get(name) is None and message.startswith(f"{name}:"):
            return f"{message} [from {variable}]"
    return message


def _mask_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: "***" if any(word in key.lower() for word in _SECRET_OPTION_WORDS) else value
        for key, value in options.items()
    }
