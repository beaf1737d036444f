"""One settings object: a namespace derives the rest, the environment fills gaps, secrets stay
masked, and every bad value is one clear error naming the setting (and where it came from)."""

from __future__ import annotations

import pytest

from distributed import InvalidSettings, Runtime
from distributed.runtime import pool_config
from distributed.settings import Settings
from orchestration import Engine


def test_a_namespace_derives_the_key_prefix_topic_and_consumer_group() -> None:
    settings = Settings(namespace="billing")
    assert (settings.key_prefix, settings.topic, settings.group) == (
        "billing/",
        "billing.tasks",
        "billing.workers",
    )


def test_an_explicit_topic_wins_and_survives_a_new_namespace() -> None:
    settings = Settings(namespace="a", topic="shared.tasks").replace(namespace="b")
    assert (settings.topic, settings.group) == ("shared.tasks", "b.workers")


def test_the_environment_fills_what_flags_leave_unset() -> None:
    env = {
        "FLOWLOOM_NAMESPACE": "billing",
        "FLOWLOOM_CONCURRENCY": "8",
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
        "FLOWLOOM_BROKER_OPTIONS": '{"session_timeout_ms": 6000}',
    }
    settings = Settings.from_env(env, concurrency=2, lease_ttl=None)
    assert settings.concurrency == 2  # the flag wins
    assert settings.namespace == "billing"
    assert settings.store_url == "redis://127.0.0.1:6379/3"
    assert settings.broker_url == "kafka://k1:9092,k2:9092"
    assert settings.broker_options == {"session_timeout_ms": 6000}


def test_flowloom_variables_win_over_the_generic_ones() -> None:
    env = {"REDIS_URL": "redis://a/0", "FLOWLOOM_STORE_URL": "memory://"}
    assert Settings.from_env(env).store_url == "memory://"


def test_code_settings_never_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLOOM_NAMESPACE", "from-env")
    assert Settings().namespace == "flowloom"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWLOOM_CONCURRENCY": "abc"}, "concurrency: Input should be a valid integer"),
        ({"FLOWLOOM_WORKERS": "-1"}, "workers: Input should be greater than or equal to 1"),
        ({"FLOWLOOM_NAMESPACE": "a b"}, "namespace: String should match pattern"),
        ({"REDIS_URL": "redis://h/notadb"}, "database 'notadb' is not a number"),
        ({"FLOWLOOM_BROKER_URL": "amqp://h"}, "unknown broker URL scheme 'amqp'"),
        ({"FLOWLOOM_APP": "nocolon"}, "app: String should match pattern"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidSettings, match=r"^[a-z_]+: ") as caught:
        Settings.from_env(env)
    assert message in str(caught.value)
    assert f"[from {next(iter(env))}]" in str(caught.value)


def test_options_that_are_not_a_json_object_are_refused() -> None:
    with pytest.raises(InvalidSettings, match="FLOWLOOM_STORE_OPTIONS must be a JSON object"):
        Settings.from_env({"FLOWLOOM_STORE_OPTIONS": "[1]"})


def test_passwords_are_masked_in_repr_str_describe_and_errors() -> None:
    settings = Settings(
        store_url="redis://:hunter2@db:6379/0",
        broker_url="kafka://ada:hunter3@k1:9092",
        broker_options={"sasl_plain_password": "hunter4"},
    )
    for text in (repr(settings), str(settings), str(settings.describe())):
        assert "hunter" not in text
        assert "redis://:***@db:6379/0" in text
    with pytest.raises(InvalidSettings) as caught:
        Settings(store_url="redis://:hunter2@db/notadb")
    assert "hunter2" not in str(caught.value)


def test_the_runtime_is_built_from_settings_in_their_namespace(tmp_path: object) -> None:
    settings = Settings(store_url="memory://", namespace="billing", concurrency=3, workers=2)
    runtime = Runtime.from_settings(Engine(), settings)
    assert runtime.engine.queue.topic == "billing.tasks"  # type: ignore[attr-defined]
    assert runtime.engine.persistence.keys.ns == "billing/"  # type: ignore[attr-defined]
    assert runtime.pool is not None
    assert runtime.pool.config.worker_config().group == "billing.workers"
    assert (runtime.pool.config.worker_count, runtime.pool.config.concurrency) == (2, 3)
    assert pool_config(settings).recovery_config().interval == settings.sweep_interval
