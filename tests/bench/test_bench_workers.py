"""The benches' worker pool: a killed bench takes its workers with it (no orphan goes on training for an hour)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SLEEPER = """
import os, time

def sleep(folder):
    open(os.path.join(folder, f"{os.getpid()}.pid"), "w").close()
    time.sleep(120)
    return {}
"""

BENCH = """
import sys
from hf_genxfer.bench.core import JobSchedule

schedule = JobSchedule()
for index in range(2):
    schedule.add(f"sleep{index}", "sleeper:sleep", folder=sys.argv[1])
schedule.run(workers=2, threads=1)
"""


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for a parent that does not reap it counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_killing_the_bench_stops_its_workers(tmp_path):
    """`kill -9` on the bench (the harshest way to die; `kill`'s SIGTERM takes the same path): its workers exit."""
    (tmp_path / "sleeper.py").write_text(textwrap.dedent(SLEEPER))
    pids = tmp_path / "pids"
    pids.mkdir()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    bench = subprocess.Popen([sys.executable, "-c", BENCH, str(pids)], env=environment)
    try:
        deadline = time.monotonic() + 120
        while len(list(pids.iterdir())) < 2:
            assert bench.poll() is None and time.monotonic() < deadline, "the two workers never started their jobs"
            time.sleep(0.2)
        workers = [int(path.stem) for path in pids.iterdir()]
        assert all(not _gone(pid) for pid in workers)
        bench.send_signal(signal.SIGKILL)
        bench.wait(30)
        deadline = time.monotonic() + 30
        while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(pid) for pid in workers), "a worker outlived the killed bench"
    finally:
        bench.kill()
        for path in pids.iterdir():
            try:
                os.kill(int(path.stem), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_field_not_given_to_a_job_leaves_its_fingerprint_and_cannot_be_read():
    """`without_fields`: the fingerprint of a job given the section without some fields does not change with them,
    and a job that reads one after all fails with its name instead of being reused with a stale value."""
    import dataclasses

    import pytest

    from hf_genxfer.bench.core import job_fingerprint, without_fields
    from hf_genxfer.bench.transfer.config import resolve_config

    section = resolve_config(False, []).gan_glyphs
    changed = dataclasses.replace(section, cdc_weight=1.0, strategies=["full"])
    hidden = ("cdc_weight", "strategies", "not_a_field")
    given, given_changed = without_fields(section, hidden), without_fields(changed, hidden)
    assert job_fingerprint("j", {"section": given}) == job_fingerprint("j", {"section": given_changed})
    assert job_fingerprint("j", {"section": section}) != job_fingerprint("j", {"section": changed})
    assert given.source_steps == section.source_steps  # the others are given as they are
    for read in (lambda: given.cdc_weight * 2, lambda: list(given.strategies), lambda: f"{given.cdc_weight}"):
        with pytest.raises(TypeError, match="is not given to this job"):
            read()
    # A source field is given: changing it changes the fingerprint.
    other = without_fields(dataclasses.replace(section, source_steps=1), hidden)
    assert job_fingerprint("j", {"section": other}) != job_fingerprint("j", {"section": given})
