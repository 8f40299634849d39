"""Interop tests: Python's grpcio against a real `kangyi dev` process on real ports.

The process runs on free ports, with its own data folder and its own database on the test cluster
(`KANGYI_TEST_DATABASE_URL`, which `make test` sets), and is stopped with SIGTERM at the end.
"""
import pytest

from kangyi_testing import Kangyi


@pytest.fixture(scope="session")
def kangyi(tmp_path_factory):
    server = Kangyi(tmp_path_factory.mktemp("kangyi"))
    yield server
    if server.process.poll() is None:
        server.stop()
