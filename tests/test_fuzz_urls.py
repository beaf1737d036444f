"""Fuzzing store and broker URLs (hypothesis): any text ends in the parser's typed error.

* ``store-url``: ``check_store_url`` (and ``open_store`` for ``memory://``/``redis://``, which
  connect lazily) return a scheme or raise ``InvalidStoreURL``; nothing else escapes.
* ``broker-url``: ``check_broker_url``/``parse_kafka_url``/``open_broker`` return or raise
  ``InvalidBrokerURL``; an accepted Kafka URL has hosts with a port in 1-65535 and options of
  the right types.
* ``kafka-url-roundtrip``: a URL built from hosts, credentials and options parses back to them.
* ``mask-url``: both ``mask_url`` functions take any text, never raise, and never show a
  password given in the userinfo or as a ``password=`` parameter.

Nothing here opens a connection or a directory (LevelDB URLs are only checked).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
from fuzz_support import Target, run_target, stateless
from hypothesis import strategies as st

from mq.errors import InvalidBrokerURL
from mq.url import KAFKA_URL_OPTIONS, check_broker_url, open_broker, parse_kafka_url
from mq.url import mask_url as mask_broker_url
from store.errors import InvalidStoreURL
from store.errors import mask_url as mask_store_url
from store.factory import check_store_url, open_store

# -- strategies -----------------------------------------------------------------------------------

PIECES = [
    *"abc:/@?#&=%[]._-0123456789 ",
    "\x00",
    "\n",
    "é",
    "²",
    "٣",
    "\ud800",
    "%zz",
    "%00",
    "%ff",
    "%2F",
    "[::1]",
    "[::1",
    ":99999",
    ":-1",
    ":0",
    ":6379",
    ":9092",
    "localhost",
    "user:pw@",
    ":pw@",
    "tok@",
    "db=",
    "db=x",
    "prefix=",
    "prefix=%00",
    "prefix=app:",
    "password=",
    "decode_responses=1",
    "socket_timeout=x",
    "max_connections=0",
    *(f"{name}=" for name in sorted(KAFKA_URL_OPTIONS)),
    "SSL",
    "SASL_SSL",
    "99999999999999999999",
]
SCHEMES = ["memory", "leveldb", "redis", "rediss", "unix", "kafka", "inproc", "http", "", "REDIS"]

pieces = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)
urls = (
    st.text(max_size=40)
    | st.builds(lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(SCHEMES), pieces)
    | st.builds(lambda scheme, rest: f"{scheme}:{rest}", st.sampled_from(SCHEMES), pieces)
)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- checks ---------------------------------------------------------------------------------------


def check_store(url: str) -> str:
    try:
        scheme = check_store_url(url)
    except InvalidStoreURL as exc:
        str(exc).encode("utf-8", "backslashreplace")
        return "refused"
    assert scheme in ("memory", "leveldb", "redis", "rediss")
    if scheme in ("memory", "redis", "rediss"):  # neither connects nor writes until used
        store = open_store(url)
        _run(store.close())
    return f"accepted {scheme}"


def check_broker(url: str) -> str:
    try:
        scheme = check_broker_url(url)
    except InvalidBrokerURL:
        return "refused"
    assert scheme in ("inproc", "kafka")
    if scheme == "kafka":
        parsed = parse_kafka_url(url)
        for host in parsed.hosts:
            port = int(host.rpartition(":")[2])
            assert 0 < port <= 65535, host
        for name, value in parsed.options.items():
            assert isinstance(value, int | str), (name, value)
    broker = open_broker(url)
    _run(broker.close())
    return f"accepted {scheme}"


hosts = st.tuples(
    st.sampled_from(["localhost", "broker-1", "10.0.0.7", "[::1]", "kafka.example.com"]),
    st.none() | st.integers(min_value=1, max_value=65535),
)
secrets = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
options = st.dictionaries(
    st.sampled_from(sorted(KAFKA_URL_OPTIONS - {"security_protocol", "sasl_mechanism"})),
    st.integers(min_value=1, max_value=2**31 - 1),
    max_size=3,
)


def check_roundtrip(
    case: tuple[list[tuple[str, int | None]], str | None, str, dict[str, Any]],
) -> str:
    host_list, user, password, chosen = case
    chosen = {k: (f"c{v}" if k == "client_id" else v) for k, v in chosen.items()}
    netloc = ",".join(f"{h}:{p}" if p else h for h, p in host_list)
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    query = "&".join(f"{k}={v}" for k, v in chosen.items())
    url = f"kafka://{userinfo}{netloc}" + (f"?{query}" if query else "")
    parsed = parse_kafka_url(url)
    assert parsed.hosts == [f"{h}:{p or 9092}" for h, p in host_list]
    for name, value in chosen.items():
        assert parsed.options[name] == value
    if user:
        assert parsed.options["sasl_plain_username"] == user
        assert parsed.options["sasl_plain_password"] == password
        assert "'sasl_plain_password': '***'" in repr(parsed)
    return "with credentials" if user else "plain"


def check_mask(case: tuple[str, str, str]) -> str:
    url, password, style = case
    secret_url = url
    if style == "userinfo" and "://" in url:
        scheme, _, rest = url.partition("://")
        secret_url = f"{scheme}://user:{quote(password, safe='')}@{rest}"
    elif style == "query":
        base, hash_, fragment = url.partition("#")  # the parameter goes before any fragment
        parameter = f"password={quote(password, safe='')}"
        secret_url = f"{base}{'&' if '?' in base else '?'}{parameter}{hash_}{fragment}"
    for mask in (mask_store_url, mask_broker_url):
        shown = mask(secret_url)
        assert isinstance(shown, str)
        if style != "none" and shown != "<unparseable url>":
            assert quote(password, safe="") not in shown, (secret_url, shown)
    return style


TARGETS = [
    Target("store-url", urls, stateless(check_store), 250),
    Target("broker-url", urls, stateless(check_broker), 250),
    Target(
        "kafka-url-roundtrip",
        st.tuples(st.lists(hosts, min_size=1, max_size=3), st.none() | secrets, secrets, options),
        stateless(check_roundtrip),
        100,
    ),
    Target(
        "mask-url",
        st.tuples(
            st.sampled_from(["redis://h:6379/0", "kafka://h:9092", "rediss://h/1?x=1"]) | urls,
            st.text(st.sampled_from("Zq7#%&/=@:"), min_size=6, max_size=12).map(
                lambda text: f"S3cr3t{text}"
            ),
            st.sampled_from(["userinfo", "query", "none"]),
        ),
        stateless(check_mask),
        150,
    ),
]


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_fuzz(target: Target) -> None:
    run_target(target)


# -- found by fuzzing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://[::1/0",  # urllib: Invalid IPv6 URL
        "leveldb://a[b",
        "redis://h:99999/0",
        "redis://h/0?prefix=%00",
        "redis://h/0?x=\ud800",
        "redis://h/0?decode_responses=1",
        "leveldb:///tmp/a%00b",
        "redis://h\n/0",
    ],
)
def test_a_bad_store_url_is_an_invalid_store_url(url: str) -> None:
    with pytest.raises(InvalidStoreURL):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "kafka://h?linger_ms=²",  # str.isdigit() is true, int() refuses it
        "kafka://h:²",
        "kafka://h:99999",
        "kafka://h:0",
        "kafka://h?linger_ms=99999999999999999999",
        "kafka://h?max_message_bytes=0",
        "kafka://h?max_deliveries=0",
        "kafka://\ud800",
        "kafka://h?client_id=%00",
        "kafka://user:a%00b@h",
        "kafka://user:%ff@h",
    ],
)
def test_a_bad_broker_url_is_an_invalid_broker_url(url: str) -> None:
    with pytest.raises(InvalidBrokerURL):
        open_broker(url)


@pytest.mark.parametrize("url", ["user:S3cr3t@h:6379/0", "://user:S3cr3t@h", "redis//u:S3cr3t@h"])
def test_the_broker_mask_hides_a_password_behind_a_missing_scheme(url: str) -> None:
    assert "S3cr3t" not in mask_broker_url(url)
    with pytest.raises(InvalidBrokerURL) as raised:
        check_broker_url(url)
    assert "S3cr3t" not in str(raised.value)


@pytest.mark.parametrize("url", ["user:S3cr3t@h:6379/0", "://user:S3cr3t@h", "redis//u:S3cr3t@h"])
def test_the_store_mask_hides_a_password_behind_a_missing_scheme(url: str) -> None:
    assert "S3cr3t" not in mask_store_url(url)
    with pytest.raises(InvalidStoreURL) as raised:
        check_store_url(url)
    assert "S3cr3t" not in str(raised.value)
