"""``open_broker`` URLs."""

from __future__ import annotations

import pytest

from mq import InProcBroker, InvalidBrokerURL, KafkaBroker, open_broker
from mq.url import mask_url as broker_mask
from store.errors import mask_url as store_mask


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


@pytest.mark.parametrize(
    "url",
    [
        "kafka://k1:9092,k2:9092?password=hunter2",
        "kafka://k1:notaport?sasl_plain_password=hunter2",
        "kafka://k1:9092?password=hunter2&x=1",
        "kafka:/k1?password=hunter2",
        "nats://user:hunter2@k1:4222",
    ],
)
def test_a_password_in_a_broker_url_is_refused_and_never_shown(url: str) -> None:
    with pytest.raises(InvalidBrokerURL) as caught:
        open_broker(url)
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


MASKED = [
    ("kafka://u:secret@k1:9092,k2:9092", "kafka://u:***@k1:9092,k2:9092"),
    ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://host:6379/0?password=secret", "redis://host:6379/0?password=***"),
    ("redis://host/0?prefix=a:&Password=s&db=1", "redis://host/0?prefix=a:&Password=***&db=1"),
    ("rediss://u:p%40ss@h/0?ssl_password=s", "rediss://u:***@h/0?ssl_password=***"),
    ("redis://:p@ss@host/0", "redis://:***@host/0"),
    ("redis://user@host/0?prefix=a%3A", "redis://user@host/0?prefix=a%3A"),
    ("inproc://", "inproc://"),
    ("redis://[::1/0?password=s", "<unparseable url>"),
]


@pytest.mark.parametrize(("url", "masked"), MASKED)
def test_mask_url_hides_every_password_the_same_way_in_mq_and_store(url: str, masked: str) -> None:
    assert broker_mask(url) == masked
    assert store_mask(url) == masked  # store/ has its own copy: mq imports nothing of ours
