"""The public API of ``store`` is explicit and pinned."""

from __future__ import annotations

import inspect

import store
import store.errors


def test_the_public_names_of_store_are_pinned() -> None:
    assert store.__all__ == [
        "Delete",
        "Incr",
        "InvalidStoreURL",
        "KVStore",
        "LevelDBStore",
        "MemoryStore",
        "Publish",
        "Put",
        "RedisStore",
        "StoreClosed",
        "StoreError",
        "StoreLocked",
        "StoreUnavailable",
        "open_store",
    ]


def own_docstring(member: object) -> str:
    """The docstring the member itself declares: not an inherited one, nor the signature a
    dataclass writes in when there is none."""
    doc = vars(member).get("__doc__") if inspect.isclass(member) else inspect.getdoc(member)
    name = getattr(member, "__name__", "")
    return "" if not doc or doc.startswith(f"{name}(") else doc


def test_every_exported_name_has_its_own_docstring() -> None:
    undocumented = [name for name in store.__all__ if not own_docstring(getattr(store, name))]
    assert undocumented == []


def test_every_error_of_the_package_is_exported_in_the_tree_and_drawn_in_the_docstring() -> None:
    errors = [
        member
        for member in vars(store.errors).values()
        if inspect.isclass(member) and issubclass(member, Exception)
        if member.__module__ == "store.errors"
    ]
    assert len(errors) >= 5
    tree = store.errors.__doc__ or ""
    for error in errors:
        assert issubclass(error, store.StoreError), error
        assert error.__name__ in store.__all__, error
        assert error.__name__ in tree, f"{error.__name__} is not drawn in the error tree"
