"""Flowloom's benchmarks: ``python -m benchmarks`` (engine vs Celery, every mode), plus scripts.

Modules: ``workloads`` (the no-op workflows, importable by worker processes), ``procstats``
(CPU and RSS of processes from ``/proc``), ``redis_count`` (Redis commands per client, from
``MONITOR``), ``round_trips`` (Redis requests counted inside worker processes),
``flowloom_run`` (embedded and cluster sessions), ``celery_run`` and ``celery_app`` (Celery
side by side), ``figures`` (medians and markdown tables), ``rss`` (a long embedded run
reporting RSS over time). The older scripts (``store_bench.py``, ``mq_bench.py``,
``distributed_bench.py``, ``metrics_overhead.py``, ``events_overhead.py``) still run as files.
"""
