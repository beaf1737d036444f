"""The public names of ``mq`` are pinned: changing them is a deliberate act."""

from __future__ import annotations

import inspect

import mq
import mq.errors


def test_the_public_api_is_pinned() -> None:
    assert mq.__all__ == [
        "DEAD_LETTER_REASON",
        "DELIVERY_COUNT",
        "ORIGINAL_DELIVERY_COUNT",
        "ORIGINAL_SHA256",
        "ORIGINAL_SIZE",
        "ORIGINAL_TOPIC",
        "PAYLOAD_TRUNCATED",
        "Broker",
        "BrokerClosed",
        "BrokerError",
        "BrokerUnavailable",
        "Consumer",
        "Delivery",
        "DeliveryRevoked",
        "InProcBroker",
        "InvalidBrokerURL",
        "KafkaBroker",
        "Message",
        "PayloadTooLarge",
        "dead_letter_topic",
        "open_broker",
    ]


def test_every_exported_class_and_function_has_its_own_docstring() -> None:
    undocumented = []
    for name in mq.__all__:
        member = getattr(mq, name)
        if inspect.isclass(member):
            doc = vars(member).get("__doc__") or ""
            if not doc or doc.startswith(f"{name}("):  # a dataclass writes its signature in
                undocumented.append(name)
        elif inspect.isfunction(member) and not inspect.getdoc(member):
            undocumented.append(name)
    assert undocumented == []


def test_every_error_of_the_package_is_exported_in_one_tree_drawn_in_the_docstring() -> None:
    errors = [
        member
        for member in vars(mq.errors).values()
        if inspect.isclass(member) and issubclass(member, Exception)
        if member.__module__ == "mq.errors"
    ]
    assert len(errors) >= 6
    tree = mq.errors.__doc__ or ""
    for error in errors:
        assert issubclass(error, mq.BrokerError), error
        assert error.__name__ in mq.__all__, error
        assert error.__name__ in tree, f"{error.__name__} is not drawn in the error tree"
