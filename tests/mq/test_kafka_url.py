"""Kafka URLs carry credentials and tuning options; the password never shows."""

from __future__ import annotations

import ssl

import pytest

from mq import InvalidBrokerURL, KafkaBroker, open_broker
from mq.url import parse_kafka_url


def test_credentials_in_a_kafka_url_become_sasl_options_not_a_host() -> None:
    parsed = parse_kafka_url("kafka://ada:hunter%402@k1:9093,k2")
    assert parsed.hosts == ["k1:9093", "k2:9092"]
    assert parsed.options["sasl_plain_username"] == "ada"
    assert parsed.options["sasl_plain_password"] == "hunter@2"
    assert parsed.options["security_protocol"] == "SASL_PLAINTEXT"
    assert "hunter" not in repr(parsed)


def test_a_broker_with_credentials_never_shows_the_password() -> None:
    broker = open_broker("kafka://ada:hunter2@k1:9092")
    assert isinstance(broker, KafkaBroker)
    assert broker.bootstrap == "k1:9092"
    assert repr(broker) == "<KafkaBroker k1:9092 as 'ada'>"


def test_tuning_options_in_the_query_reach_the_broker() -> None:
    broker = open_broker("kafka://k1?session_timeout_ms=6000&fetch_max_wait_ms=20")
    assert isinstance(broker, KafkaBroker)
    assert broker.consumer_options["session_timeout_ms"] == 6000
    assert broker.consumer_options["fetch_max_wait_ms"] == 20


def test_sasl_ssl_gets_a_default_tls_context() -> None:
    url = "kafka://ada:pw@k1?security_protocol=sasl_ssl&sasl_mechanism=SCRAM-SHA-256"
    parsed = parse_kafka_url(url)
    assert parsed.options["security_protocol"] == "SASL_SSL"
    broker = open_broker(url)
    assert isinstance(broker, KafkaBroker)
    assert isinstance(broker._client_options["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://k1?password=hunter2", "unknown parameter 'password'"),
        ("kafka://k1?session_timeout_ms=soon", "session_timeout_ms must be a whole number"),
        ("kafka://k1?security_protocol=TLS", "security_protocol must be one of"),
        ("kafka://hunter2@k1", "credentials must be user:password@"),
    ],
)
def test_a_bad_kafka_url_is_one_clear_error_without_the_secret(url: str, message: str) -> None:
    with pytest.raises(InvalidBrokerURL, match=message) as caught:
        open_broker(url)
    assert "hunter2" not in str(caught.value).replace("'password'", "")
