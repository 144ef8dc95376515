"""The compact postings: lookups across the sorted arrays, recent additions and tombstones, through compaction."""

from __future__ import annotations

import numpy as np

from guard.forget.postings import Postings


def keys(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def test_lookup_merges_arrays_recent_and_tombstones() -> None:
    p = Postings()
    p.bulk(keys(5, 1, 5), np.array([0, 0, 1], dtype=np.int32))
    p.add(keys(5, 9, 9), 2)
    assert p.lookup(keys(5, 1, 9, 7)) == [{0, 1, 2}, {0}, {2}, set()]
    p.remove(0)
    assert p.lookup(keys(5, 1)) == [{1, 2}, set()]
    p.compact()
    assert p.lookup(keys(5, 1, 9)) == [{1, 2}, set(), {2}]
    assert len(p) == 3  # (5,1) (5,2) (9,2): owner 0's pairs are gone
    # the largest 64-bit keys survive the round trip through numpy
    p.add(keys(2**64 - 1), 3)
    p.compact()
    assert p.lookup(keys(2**64 - 1)) == [{3}]


def test_changes_between_freeze_and_install_are_kept() -> None:
    p = Postings()
    p.add(keys(1), 0)
    p.add(keys(2), 1)
    frozen = p.freeze()
    built = Postings.build(frozen)  # on another thread in the index
    p.add(keys(1), 2)  # after the freeze: must survive the install
    p.remove(1)  # after the freeze: its pairs are in the new arrays, the tombstone must stay
    p.install(frozen, built)
    assert p.lookup(keys(1, 2)) == [{0, 2}, set()]
    assert p.nbytes == 2 * (8 + 4)


def test_compaction_is_due_after_many_recent_pairs() -> None:
    p = Postings(compact_at=10)
    p.add(np.arange(9, dtype=np.uint64), 0)
    assert not p.needs_compaction()
    p.add(np.arange(9, 12, dtype=np.uint64), 0)
    assert p.needs_compaction()
    p.freeze()
    assert not p.needs_compaction()  # one compaction at a time


def test_bulk_in_batches_builds_the_arrays_one_sort_would() -> None:
    """Start-up loads in batches; each batch is merged into the sorted arrays, not re-sorted with them."""
    rng = np.random.default_rng(7)
    batches = [(rng.integers(0, 50, 40).astype(np.uint64), rng.integers(0, 9, 40).astype(np.int32)) for _ in range(5)]
    batched, whole = Postings(), Postings()
    for k, o in batches:
        batched.bulk(k, o)
    whole.bulk(np.concatenate([k for k, _ in batches]), np.concatenate([o for _, o in batches]))
    assert np.array_equal(batched._keys, whole._keys)
    assert np.all(np.diff(batched._keys.astype(np.float64)) >= 0)
    probe = np.arange(60, dtype=np.uint64)
    assert batched.lookup(probe) == whole.lookup(probe)
    all_keys = np.concatenate([k for k, _ in batches])
    all_owners = np.concatenate([o for _, o in batches])
    expected = [{int(o) for k, o in zip(all_keys, all_owners, strict=True) if k == key} for key in probe]
    assert batched.lookup(probe) == expected


def test_hits_are_the_keys_with_live_owners_only() -> None:
    """The sparse look-up (a passage's typo variants: thousands of keys, a handful with owners) agrees with
    `lookup` wherever keys are: the arrays, recent additions, a frozen set-aside, tombstones."""
    rng = np.random.default_rng(3)
    p = Postings()
    p.bulk(rng.integers(0, 40, 60).astype(np.uint64), rng.integers(0, 6, 60).astype(np.int32))
    p.add(keys(3, 41, 42), 7)
    frozen = p.freeze()  # set aside, as while a compaction builds
    p.add(keys(42, 43), 8)
    p.remove(2)
    probe = np.arange(50, dtype=np.uint64)
    listed = p.lookup(probe)
    hits = p.hits(probe)
    assert hits == {row: owners for row, owners in enumerate(listed) if owners}
    assert hits[42] == {7, 8} and hits[43] == {8} and 44 not in hits
    assert all(2 not in owners for owners in hits.values())
    p.install(frozen, Postings.build(frozen))
    assert p.hits(probe) == hits
    assert p.hits(keys()) == {} and Postings().hits(probe) == {}
