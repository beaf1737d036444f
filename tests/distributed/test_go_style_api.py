"""The original framework's constructor shapes, and their clear errors when misused."""

from __future__ import annotations

import pytest

from distributed import (
    DistributedEngine,
    DistributedParallelStep,
    InvalidSettings,
    KVPersistence,
    MQTaskQueue,
    PoolConfig,
    StepExecutor,
    WorkerPool,
    default_engine_config,
    default_mq_task_queue_config,
)
from mq import InProcBroker
from orchestration import Agent, Engine
from store import MemoryStore


@pytest.fixture
def parts() -> tuple[Engine, MQTaskQueue, KVPersistence]:
    persistence = KVPersistence(MemoryStore())
    queue = MQTaskQueue(InProcBroker(), persistence, default_mq_task_queue_config())
    return Engine(), queue, persistence


async def test_a_registered_step_runs_on_a_pool_built_from_the_queue_alone(
    parts: tuple[Engine, MQTaskQueue, KVPersistence],
) -> None:
    local, queue, persistence = parts
    executor = StepExecutor(local)
    executor.register_step("double", lambda s: s["n"] * 2, output_key="doubled")
    pool = WorkerPool(queue, executor, PoolConfig(worker_count=1, concurrency=2))
    assert pool.persistence is persistence
    engine = DistributedEngine(local, queue, persistence, default_engine_config())
    await pool.start()
    try:
        snapshot = await engine.execute_sync("double", {"n": 21}, timeout=30)
    finally:
        await pool.stop()
    assert snapshot.status == "completed" and snapshot.outputs == {"doubled": 42}


def test_a_pool_without_any_persistence_says_how_to_give_it() -> None:
    queue = MQTaskQueue(InProcBroker())
    with pytest.raises(InvalidSettings, match=r"MQTaskQueue\(broker, persistence\)"):
        WorkerPool(queue, StepExecutor(Engine()), PoolConfig())


def test_the_queue_config_and_keywords_say_where_tasks_travel() -> None:
    config = default_mq_task_queue_config()
    assert (config.topic, config.partitions) == ("flowloom.tasks", 8)
    queue = MQTaskQueue(InProcBroker(), None, config, topic="app.tasks")
    assert (queue.topic, queue.partitions, queue.persistence) == ("app.tasks", 8, None)


def test_a_parallel_step_takes_agents_with_output_keys_as_in_the_original(
    parts: tuple[Engine, MQTaskQueue, KVPersistence],
) -> None:
    local, queue, persistence = parts
    engine = DistributedEngine(local, queue, persistence)
    pros, cons = Agent("pros"), Agent("cons")
    step = DistributedParallelStep(
        "review", engine, [pros, cons], input_fn=lambda s: "?", output_keys=["up", "down"]
    )
    assert step.agents == {"up": pros, "down": cons}
    assert "review.up" in local.workflows() and "review.down" in local.workflows()


@pytest.mark.parametrize(
    ("agents", "keys", "message"),
    [
        ([Agent("a"), Agent("b")], ["only-one"], "one output key per agent"),
        ([Agent("a"), Agent("b")], None, "one output key per agent"),
        ([Agent("a"), Agent("b")], ["same", "same"], "must be distinct"),
        ({"k": Agent("a")}, ["k"], "output_keys needs a list of agents"),
    ],
)
def test_a_parallel_step_with_mismatched_output_keys_is_refused(
    parts: tuple[Engine, MQTaskQueue, KVPersistence],
    agents: object,
    keys: list[str] | None,
    message: str,
) -> None:
    local, queue, persistence = parts
    engine = DistributedEngine(local, queue, persistence)
    with pytest.raises(ValueError, match=message):
        DistributedParallelStep("p", engine, agents, prompt="?", output_keys=keys)  # type: ignore[arg-type]


def test_a_parallel_step_needs_a_prompt(parts: tuple[Engine, MQTaskQueue, KVPersistence]) -> None:
    local, queue, persistence = parts
    with pytest.raises(ValueError, match="needs a prompt"):
        DistributedParallelStep(
            "p", DistributedEngine(local, queue, persistence), {"a": Agent("a")}
        )
