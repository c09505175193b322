"""Pure: the seal's Merkle root and chain hash, and a Scrubber that replaces only the person."""

from __future__ import annotations

import hashlib
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from workers.pseudonyms import Scrubber
from workers.sealing import EMPTY_ROOT, merkle_root, seal_hash

hexes = st.lists(st.binary(min_size=1, max_size=8).map(lambda data: hashlib.sha256(data).hexdigest()))


def node(left: str, right: str) -> str:
    return hashlib.sha256(("\x01" + left + right).encode()).hexdigest()


def test_the_root_pairs_leaves_and_carries_an_odd_one_up() -> None:
    a, b, c = (hashlib.sha256(text.encode()).hexdigest() for text in "abc")
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").hexdigest()
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == node(a, b)
    assert merkle_root([a, b, c]) == node(node(a, b), c)


@given(hexes.filter(bool), st.data())
def test_changing_or_dropping_a_leaf_changes_the_root(leaves: list[str], data: st.DataObject) -> None:
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    changed = [*leaves[:index], hashlib.sha256(leaves[index].encode()).hexdigest(), *leaves[index + 1 :]]
    assert merkle_root(changed) != root
    assert merkle_root(leaves[:index] + leaves[index + 1 :]) != root


def test_the_chain_hash_binds_the_day_its_count_its_root_and_the_day_before() -> None:
    day, root = date(2026, 1, 2), merkle_root([])
    chained = seal_hash(day, 0, root, "a" * 64)
    assert chained == hashlib.sha256(f"2026-01-02:0:{root}:{'a' * 64}".encode()).hexdigest()
    assert chained != seal_hash(day, 0, root, "b" * 64)
    assert chained != seal_hash(date(2026, 1, 3), 0, root, "a" * 64)


def test_a_scrubber_replaces_the_person_and_leaves_others_alone() -> None:
    scrub = Scrubber("email:ada@example.org", {"Ada@Example.org", "Ada Lovelace", "Al"}, "erased:1")
    assert scrub.text("email:ada@example.org") == "ext:erased:1"
    assert scrub.text("Al") == "erased:1"  # a short value only as a whole string
    assert scrub.json({"note": "Ada Lovelace wrote from ada@example.org", "n": 3, "who": ["Al", "Alan"]}) == {
        "note": "erased:1 wrote from erased:1",
        "n": 3,
        "who": ["erased:1", "Alan"],
    }
    assert scrub.text("Ada Lovelaces and hada@example.org") == "Ada Lovelaces and hada@example.org"
