"""Verification tells lost, duplicated and foreign items apart."""

from __future__ import annotations

from sharebench.verify import check_counter, check_items, check_reports, worker_tag


def items(workers: int, k: int) -> list[int]:
    return [worker_tag(w) + i for i in range(k) for w in range(workers)]


def test_every_item_once_is_clean():
    check = check_items(items(3, 100), 3, 100)
    assert check.clean
    assert (check.issued, check.counted) == (300, 300)


def test_missing_item_is_lost():
    got = items(2, 10)
    got.remove(worker_tag(1) + 7)
    check = check_items(got, 2, 10)
    assert (check.lost, check.duplicates, check.invalid) == (1, 0, 0)
    assert check.describe() == "1 of 20 lost"


def test_overwritten_slot_shows_as_lost_plus_duplicate():
    got = items(2, 10)
    got[3] = got[4]  # a race: one process overwrote the slot another had just written
    check = check_items(got, 2, 10)
    assert (check.lost, check.duplicates) == (1, 1)
    assert not check.clean


def test_skipped_slots_and_foreign_values_are_invalid():
    got = [*items(2, 5), 0, 0, worker_tag(9) + 1, worker_tag(0) + 99]
    check = check_items(got, 2, 5)
    assert (check.lost, check.invalid) == (0, 4)


def test_counter_checks():
    assert check_counter(1000, 1000).clean
    assert check_counter(1000, 640).lost == 360
    over = check_counter(1000, 1003)
    assert (over.lost, over.duplicates) == (0, 3)
    assert check_reports(20, [10, 10]).clean
    assert check_reports(20, [10, 9]).lost == 1
