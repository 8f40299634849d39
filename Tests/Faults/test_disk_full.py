"""The database's disk fills up mid-load: PostgreSQL can extend no table ("could not extend file": No space
left on device, SQLSTATE 53100). Real, not mocked: the table under load is moved to a tablespace on a small
tmpfs, which is then filled to the last byte, and freed again (an operator making room). Callers are told to
retry later — UNAVAILABLE, never INTERNAL, which says "a bug, report it" — a terminal keeps its logs and sends
them again rather than having them rejected for good, nothing acknowledged is lost, and once there is room
the same processes take writes again."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import Cluster, Load, figure
from kangyi_testing import ROOT, wait_for
from test_faults import assert_every_ack_stored_once
from test_terminal import setup, upload_through

PLACE = ROOT / ".data" / "faults-disk-full"


class SmallDisk:
    """A tablespace on a 4 MiB tmpfs of its own."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.name = f"small_disk_{os.getpid()}_{int(time.time())}"
        self.filler = PLACE / "filler"
        self.moved = []
        Cluster.sql(cluster.url, f"CREATE TABLESPACE {self.name} LOCATION '{PLACE / 'pg'}'")

    def move(self, url, table, to=None):
        """`table` and, if it is partitioned, its partitions, onto this disk (or `to`)."""
        if to is None:
            self.moved.append((url, table))
        Cluster.sql(url, f"""DO $$ DECLARE t regclass; BEGIN
            FOR t IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = '{table}'::regclass
                     UNION ALL SELECT '{table}'::regclass LOOP
                EXECUTE format('ALTER TABLE %s SET TABLESPACE {to or self.name}', t);
            END LOOP; END $$""")

    def remove(self):
        """Every table moved back, and the tablespace dropped: PostgreSQL must never find its files gone."""
        self.free()
        for url, table in self.moved:
            self.move(url, table, to="pg_default")
        Cluster.sql(self.cluster.url, f"DROP TABLESPACE {self.name}")

    def fill(self):
        """Every byte of the disk taken, as a log file or another tenant takes it."""
        with open(self.filler, "wb") as out:
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass

    def free(self):
        self.filler.unlink(missing_ok=True)

    def hurt_for(self, seconds_full, until):
        """A fault for `upload_through`: the disk full until `until()` holds (at least `seconds_full`), then freed."""
        def hurt():
            self.fill()
            time.sleep(seconds_full)
            wait_for(until, seconds=60, what="writes refused while the disk is full")
            self.free()
        return hurt


@pytest.fixture()
def small_disk(cluster):
    PLACE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["umount", "-l", str(PLACE)], capture_output=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(PLACE)], capture_output=True).returncode:
        pytest.skip("this process may not mount a tmpfs")
    (PLACE / "pg").mkdir()
    shutil.chown(PLACE / "pg", "postgres", "postgres")
    disk = SmallDisk(cluster)
    yield disk
    # Left mounted if this fails: PostgreSQL must never find a table's files gone.
    disk.remove()
    subprocess.run(["umount", "-l", str(PLACE)], capture_output=True)


def test_submissions_while_the_disk_is_full(deployment, small_disk):
    env, url, serve = deployment
    small_disk.move(url, "intake.help_requests")
    intake = serve("intake")
    with Load(intake.address, intake.key, callers=4) as load:
        wait_for(lambda: load.ok_count() > 20, what="load running")
        small_disk.fill()
        wait_for(lambda: sum(n for code, n in load.codes.items() if code != "OK") > 20, seconds=60, what="refusals")
        refused = {code: n for code, n in load.codes.items() if code != "OK"}
        small_disk.free()
        ok_before = load.ok_count()
        wait_for(lambda: load.ok_count() > ok_before + 50, seconds=30, what="submissions taken again")
    figure("disk full: submissions", codes=dict(load.codes), refused_while_full=refused)
    assert set(refused) == {"UNAVAILABLE"}, f"while the disk was full: {refused}"
    assert set(load.codes) == {"OK", "UNAVAILABLE"}, load.codes
    assert "sqlstate=53100" in intake.log(), "the log names the SQLSTATE"
    assert_every_ack_stored_once(url, load)


def test_a_terminals_upload_while_the_disk_is_full(deployment, small_disk, tmp_path):
    url, checkpoint, gateway, command = setup(deployment, tmp_path, "DF-01")
    small_disk.move(url, "checkpoint.vehicle_logs")
    refused = lambda: "sqlstate=53100" in checkpoint.log()  # noqa: E731
    upload_through(tmp_path, command, "DF-01", url, "disk full: a terminal's upload", small_disk.hurt_for(2, refused),
                   checkpoint)
