"""``PUT/GET /v1/pools/{pool}/windows`` on a real server: what is kept, what it means
now, what is refused (422 with the reason, 403 below admin), the audit, a restart."""

from __future__ import annotations

import time


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))


def test_windows_are_kept_shown_with_their_meaning_and_survive_a_restart(control_plane):
    now = time.time()
    body = {
        "maintenance": [
            {
                "name": "nightly",
                "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": time.strftime("%H:%M", time.gmtime(now + 7200)),
                "duration_s": 600,
            }
        ],
        "freezes": [
            {"name": "month-end", "weekdays": ["sun"], "start": "00:00", "duration_s": 3600},
            {"name": "release", "from": iso(now - 60), "until": iso(now + 600)},
        ],
    }
    with control_plane.api() as api:
        empty = api.get("/v1/pools/db/windows").json()
        assert empty["maintenance"] == [] and empty["frozen"] is False
        assert empty["in_maintenance"] is None and empty["hold"] is None
        r = api.put("/v1/pools/db/windows", json=body)
        assert r.status_code == 200, r.text
        shown = r.json()
        assert shown["set_by"] == "admin" and shown["maintenance"][0]["timezone"] == "UTC"
        assert shown["freezes"][1]["from"] == iso(now - 60)
        assert shown["frozen"] is True and shown["frozen_by"] == "release"
        assert abs(shown["frozen_until"] - (now + 600)) < 1
        assert shown["in_maintenance"] is False
        assert shown["hold"].startswith("frozen by release until ")
        # The maintenance window starts within the next two hours (to the minute).
        assert 0 < shown["next_maintenance_at"] - now <= 7200
    control_plane.restart()
    with control_plane.api() as api:
        again = api.get("/v1/pools/db/windows").json()
        assert again["freezes"] == shown["freezes"] and again["frozen"] is True
        # An empty body removes them all.
        assert api.put("/v1/pools/db/windows", json={}).json()["freezes"] == []
        audit = [e["detail"] for e in api.get("/v1/audit").json() if e["action"] == "pool.windows"]
    assert audit == ["none", "maintenance nightly, freeze month-end, freeze release"]


def test_bad_windows_are_refused_with_the_reason(control_plane):
    good = {"name": "w", "weekdays": ["mon"], "start": "02:00", "duration_s": 3600}
    cases = [
        ({**good, "timezone": "Mars/Olympus"}, "time zone 'Mars/Olympus' is unknown"),
        ({**good, "start": "24:00"}, "start"),
        ({**good, "weekdays": ["monday"]}, "weekdays"),
        ({**good, "duration_s": 8 * 86400}, "duration_s"),
        ({**good, "weekdays": []}, "weekdays"),
    ]
    with control_plane.api() as api:
        for window, why in cases:
            r = api.put("/v1/pools/db/windows", json={"maintenance": [window]})
            assert r.status_code == 422, (window, r.text)
            assert why in r.json()["detail"], r.json()["detail"]
        backwards = {"name": "f", "from": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
        r = api.put("/v1/pools/db/windows", json={"freezes": [backwards]})
        assert r.status_code == 422 and "'until' must come after 'from'" in r.text
        r = api.put("/v1/pools/db/windows", json={"freezes": [{**backwards, "from": "soon"}]})
        assert r.status_code == 422 and "is not an ISO time" in r.text
        twice = api.put("/v1/pools/db/windows", json={"maintenance": [good], "freezes": [good]})
        assert twice.status_code == 422 and "given twice: w" in twice.text
        # A maintenance window may also open once, checked as a freeze is.
        r = api.put("/v1/pools/db/windows", json={"maintenance": [backwards]})
        assert r.status_code == 422 and "'until' must come after 'from'" in r.text
        assert api.get("/v1/pools/db/windows").json()["maintenance"] == []


def test_only_admins_set_windows_and_viewers_read_them(control_plane):
    operator = control_plane.user("ops", "operator")
    viewer = control_plane.user("wall", "viewer")
    body = {"maintenance": [{"name": "w", "weekdays": ["mon"], "start": "02:00", "duration_s": 60}]}
    with control_plane.api(operator) as api:
        r = api.put("/v1/pools/db/windows", json=body)
        assert r.status_code == 403 and "needs admin" in r.json()["detail"]
    with control_plane.api() as api:
        assert api.put("/v1/pools/db/windows", json=body).status_code == 200
    with control_plane.api(viewer) as api:
        assert api.get("/v1/pools/db/windows").json()["maintenance"][0]["name"] == "w"
