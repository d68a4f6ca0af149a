"""The collector pause: off while any run reads and plans, back on when the last one ends, and left
off if something else had turned it off."""

from __future__ import annotations

import gc
import threading

from remediations.shell.collector import collector_paused


def test_overlapping_runs_share_one_pause_and_the_last_one_resumes() -> None:
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with collector_paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=other_run)
    with collector_paused():
        assert not gc.isenabled()
        worker.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other run is still reading
    release.set()
    worker.join(5)
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_exception_in_the_run_still_resumes_the_collector() -> None:
    try:
        with collector_paused():
            raise ValueError("read failed")
    except ValueError:
        pass
    assert gc.isenabled()
