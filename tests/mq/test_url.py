"""``open_broker`` URLs."""

from __future__ import annotations

import pytest

from mq import InProcBroker, InvalidBrokerURL, KafkaBroker, open_broker


def test_inproc_url_gives_a_fresh_in_process_broker() -> None:
    first, second = open_broker("inproc://", maxsize=5), open_broker("inproc://")
    assert isinstance(first, InProcBroker) and first is not second
    assert first.maxsize == 5


def test_kafka_url_lists_bootstrap_servers_with_default_port() -> None:
    broker = open_broker("kafka://k1:9093,k2", security_protocol="SASL_SSL")
    assert isinstance(broker, KafkaBroker)
    assert broker.bootstrap == "k1:9093,k2:9092"


@pytest.mark.parametrize("url", ["", "redis://x", "kafka://", "kafka://host:port", "localhost"])
def test_bad_urls_raise_invalid_broker_url(url: str) -> None:
    with pytest.raises(InvalidBrokerURL):
        open_broker(url)
