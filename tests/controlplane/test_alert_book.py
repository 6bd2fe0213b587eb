"""The alert book's hysteresis: held open while passing, flaps counted, cleared after the hold."""

from __future__ import annotations

import time

from controlplane.alerts import AlertBook, Finding

OFFLINE = Finding("offline", "critical", "agent is offline")
DRIFT = Finding("version_drift", "warning", "runs 1, pinned 2")
KINDS = {"offline", "version_drift"}


def test_a_check_that_fails_again_within_the_hold_keeps_the_alert_and_counts_a_flap():
    book = AlertBook(hold_s=60)
    [alert], _ = book.reconcile("a1", KINDS, [OFFLINE])
    raised_at = alert.raised_at
    assert book.reconcile("a1", KINDS, []) == ([], []), "passing: held open, nothing published"
    [again], cleared = book.reconcile("a1", KINDS, [OFFLINE])
    assert again is alert and cleared == []
    assert again.flaps == 1 and again.raised_at == raised_at and again.cleared_at is None
    assert book.reconcile("a1", KINDS, [OFFLINE]) == ([], []), "still failing: no change"


def test_a_held_alert_clears_after_the_hold_at_the_time_its_check_passed():
    book = AlertBook(hold_s=60)
    book.reconcile("a1", KINDS, [OFFLINE])
    before = time.time()
    book.reconcile("a1", KINDS, [])
    assert book.expire(time.time() + 59) == []
    [cleared] = book.expire(time.time() + 61)
    assert before <= (cleared.cleared_at or 0) <= time.time()
    assert book.open == {} and book.passing == {}
    [fresh], _ = book.reconcile("a1", KINDS, [OFFLINE])
    assert fresh.id != cleared.id and fresh.flaps == 0


def test_drift_clears_at_once_and_unknown_kinds_are_left_alone():
    book = AlertBook(hold_s=60)
    book.reconcile("a1", KINDS, [OFFLINE, DRIFT])
    raised, cleared = book.reconcile("a1", KINDS, [], unknown={"offline"})
    assert raised == [] and [c.kind for c in cleared] == ["version_drift"]
    assert ("offline", "a1") in book.open and book.passing == {}, "unknown: not even held"


def test_a_removed_target_clears_at_once_even_while_held():
    book = AlertBook(hold_s=60)
    book.reconcile("a1", KINDS, [OFFLINE])
    book.reconcile("a1", KINDS, [])
    [cleared] = book.clear_target("a1")
    assert cleared.kind == "offline" and book.passing == {} and book.expire(time.time() + 99) == []


def test_without_a_hold_alerts_clear_as_soon_as_the_check_passes():
    book = AlertBook(hold_s=0)
    book.reconcile("a1", KINDS, [OFFLINE])
    _, [cleared] = book.reconcile("a1", KINDS, [])
    assert cleared.kind == "offline" and cleared.cleared_at is not None
