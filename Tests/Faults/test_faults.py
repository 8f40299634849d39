"""Faults under load, against real processes; each scenario prints its figures."""
import asyncio
import json
import os
import signal
import subprocess
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import Cluster, Load, crash, figure, submission
from signing import signing_channel
from kangyi_testing import KANGYI, Served, wait_for
from kangyi.intake.v1 import intake_pb2 as ipb, intake_pb2_grpc
from kangyi.verification.v1 import verification_pb2 as vpb, verification_pb2_grpc

GRACE = 10  # KANGYI_SHUTDOWN_GRACE_S of every process here


def stored(url, run):
    """How many times each of a load run's request ids is stored."""
    rows = Cluster.sql(url, f"SELECT request_id, count(*) FROM intake.help_requests WHERE request_id LIKE '{run}-%' GROUP BY 1")
    return {line.split("|")[0]: int(line.split("|")[1]) for line in rows.splitlines() if line}


def assert_every_ack_stored_once(url, load):
    counts = stored(url, load.run)
    lost = [r for r in load.acked if r not in counts]
    doubled = [r for r, n in counts.items() if n > 1]
    assert not lost, f"{len(lost)} acknowledged submissions lost, e.g. {lost[:3]}"
    assert not doubled, f"stored twice: {doubled[:3]}"
    return len(counts)


def test_database_killed_under_load_then_sigterm(cluster, deployment):
    env, url, serve = deployment
    intake = serve("intake")
    with Load(intake.address, intake.key) as load:
        wait_for(lambda: load.ok_count() > 50, what="load running")
        killed = time.time()
        cluster.kill()
        wait_for(lambda: intake.health() == "NOT_SERVING", seconds=10, what="NOT_SERVING")
        to_not_serving = time.time() - killed
        time.sleep(3)
        before_port = cluster.url
        cluster.url = cluster.start()
        assert cluster.url == before_port, "the cluster came back on its own port"
        restarted = time.time()
        wait_for(lambda: intake.health() == "SERVING", seconds=10, what="SERVING again")
        to_serving = time.time() - restarted
        ok_after = load.ok_count()
        wait_for(lambda: load.ok_count() > ok_after + 50, seconds=20, what="submissions succeed again")
        # Still under load: SIGTERM must stop the process within its drain budget.
        seconds, code = intake.terminate()
    rows = assert_every_ack_stored_once(url, load)
    figure("database killed under load", not_serving_s=round(to_not_serving, 2), serving_after_restart_s=round(to_serving, 2),
           acknowledged=len(load.acked), stored=rows, codes=dict(load.codes), sigterm_exit_s=round(seconds, 2), exit_code=code)
    assert to_not_serving <= 5 and to_serving <= 5
    assert seconds <= GRACE + 2 and code == 0


def test_service_answers_soon_after_a_long_outage(cluster, deployment):
    """After a minute away, postgres-nio's pool would try again only at its next back-off (which grows
    to a quarter of the outage: 16 s after a 90-s one), failing every call while health said SERVING. The
    probe's return replaces the pools (DatabasePool), so calls succeed within a few probes."""
    env, url, serve = deployment
    intake = serve("intake")
    with Load(intake.address, intake.key, callers=2) as load:
        wait_for(lambda: load.ok_count() > 50, what="load running")
        cluster.kill()
        time.sleep(60)
        cluster.url = cluster.start()
        restarted = time.time()
        wait_for(lambda: intake.health() == "SERVING", seconds=10, what="SERVING again")
        ok_before = load.ok_count()
        wait_for(lambda: load.ok_count() > ok_before + 20, seconds=60, what="submissions succeed again")
        succeeding = time.time() - restarted
    rows = assert_every_ack_stored_once(url, load)
    figure("database away 60 s", submissions_succeed_again_s=round(succeeding, 2), acknowledged=len(load.acked), stored=rows)
    assert "database pool replaced" in intake.log_path.read_text()
    assert succeeding <= 5, f"submissions failed for {succeeding:.1f} s after the database was back"


def test_a_service_started_before_its_database_waits_for_it(cluster, deployment, tmp_path):
    """A city's cluster coming back after a power cut starts its services in no order. One started before
    its database waits for it, saying so, and serves within a few seconds of the database's return — where
    exiting at once put it in Kubernetes' crash-loop back-off, up to 5 minutes."""
    env, url, serve = deployment
    cluster.stop()
    try:
        intake = Served("intake", env, tmp_path / "intake.log").launch()
        time.sleep(8)
        assert intake.process.poll() is None, f"exited {intake.process.returncode}:\n{intake.log()[-2000:]}"
        waiting = [line for line in intake.log().splitlines() if "waiting for it" in line]
    finally:
        cluster.url = cluster.start()
    back = time.time()
    try:
        wait_for(lambda: intake.health() == "SERVING", seconds=15, what="serving after the database's return")
        serving = time.time() - back
        stub = intake_pb2_grpc.IntakeServiceStub(signing_channel(intake.address, intake.key))
        stub.SubmitHelpRequest(submission("before-its-database", 1), timeout=5)
    finally:
        seconds, code = intake.terminate()
    figure("started before its database", warnings_while_waiting=len(waiting), serving_after_return_s=round(serving, 2))
    assert waiting, "the wait is logged"
    assert serving <= 5, f"served {serving:.1f} s after the database's return"
    assert code == 0


def test_kangyi_dev_restarts_its_embedded_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KANGYI_DATABASE_URL"}
    process = subprocess.Popen([KANGYI, "dev", "--ephemeral-ports"], stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "kangyi.log", "w"), env=dict(env, KANGYI_DATA_DIR=str(tmp_path)))
    try:
        wait_for(lambda: (tmp_path / "dev.json").exists(), seconds=60, what="kangyi dev ready")
        info = json.loads((tmp_path / "dev.json").read_text())
        intake = next(s["grpc"] for s in info["services"] if s["name"] == "intake")
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(intake))

        def status():
            try:
                return health_pb2.HealthCheckResponse.ServingStatus.Name(
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status)
            except grpc.RpcError:
                return "DOWN"
        wait_for(lambda: status() == "SERVING", what="SERVING")
        killed = time.time()
        crash(tmp_path / "pg")
        wait_for(lambda: status() == "NOT_SERVING", seconds=10, what="NOT_SERVING")
        wait_for(lambda: status() == "SERVING", seconds=20, what="SERVING after the watchdog's restart")
        back = time.time() - killed
        stub = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(intake))
        assert stub.SubmitHelpRequest(submission("dev", 1), timeout=10).help_request.ticket
        assert json.loads((tmp_path / "dev.json").read_text())["database_url"] == info["database_url"]
        figure("kangyi dev: embedded PostgreSQL killed", serving_again_s=round(back, 2))
        assert "restarting it on its port" in (tmp_path / "kangyi.log").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_sigterm_under_load_lets_started_calls_finish(deployment):
    env, url, serve = deployment
    intake = serve("intake")
    calls = []  # (start, end, code)
    lock = threading.Lock()
    stop = threading.Event()

    def caller(index):
        stub = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(intake.address))
        n = 0
        while not stop.is_set():
            n += 1
            start = time.time()
            try:
                stub.SubmitHelpRequest(submission("term", f"{index}-{n}"), timeout=5)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            with lock:
                calls.append((start, time.time(), code))
            if code != "OK":
                time.sleep(0.05)

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: sum(1 for c in calls if c[2] == "OK") > 100, what="load running")
    signalled = time.time()
    seconds, code = intake.terminate()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    before = [c for c in calls if c[0] < signalled - 0.1]
    failed_before = [c for c in before if c[2] != "OK"]
    figure("SIGTERM under load", calls_before=len(before), failed_before=len(failed_before),
           sigterm_exit_s=round(seconds, 2), exit_code=code)
    assert not failed_before, f"calls started before SIGTERM failed: {failed_before[:3]}"
    assert seconds <= GRACE + 2 and code == 0


def test_sigterm_during_an_outage(cluster, deployment):
    env, url, serve = deployment
    intake = serve("intake")
    try:
        with Load(intake.address, intake.key) as load:
            wait_for(lambda: load.ok_count() > 20, what="load running")
            cluster.kill()
            wait_for(lambda: intake.health() == "NOT_SERVING", seconds=10, what="NOT_SERVING")
            time.sleep(2)  # callers keep knocking while the database is gone
            seconds, code = intake.terminate()
        figure("SIGTERM during an outage", sigterm_exit_s=round(seconds, 2), exit_code=code, codes=dict(load.codes))
        assert seconds <= GRACE + 2, f"took {seconds:.1f} s to stop"
    finally:
        cluster.url = cluster.start()
    assert_every_ack_stored_once(url, load)


def test_sigterm_while_the_database_is_frozen(cluster, deployment):
    """A database that accepts connections and never answers (its processes stopped): health goes NOT_SERVING,
    and SIGTERM still ends the process within its grace — no probe or query left waiting holds it up. A grace
    of one second, so that the drain's end cancels what waits on the database (a health probe's query, which
    postgres-nio does not end on cancellation, once held the process until the deadline's exit(1))."""
    env, url, serve = deployment
    grace = 1
    intake = serve("intake", KANGYI_SHUTDOWN_GRACE_S=str(grace))
    try:
        with Load(intake.address, intake.key) as load:
            wait_for(lambda: load.ok_count() > 20, what="load running")
            cluster.freeze()
            wait_for(lambda: intake.health() == "NOT_SERVING", seconds=10, what="NOT_SERVING")
            cluster.thaw()
            wait_for(lambda: intake.health() == "SERVING", seconds=10, what="SERVING again")
            cluster.freeze()
            time.sleep(0.5)  # callers' submissions and a health probe's query now wait on the frozen database
            seconds, code = intake.terminate()
        figure("SIGTERM while the database is frozen", sigterm_exit_s=round(seconds, 2), exit_code=code,
               codes=dict(load.codes))
        assert code == 0, f"exit code {code} (a shutdown that overran its budget exits 1)"
        assert seconds <= grace + 3, f"took {seconds:.1f} s to stop"
    finally:
        cluster.thaw()
    assert_every_ack_stored_once(url, load)


def test_peer_down_and_back(deployment):
    env, url, serve = deployment
    intake = serve("intake")
    verification = serve("verification", KANGYI_INTAKE_ADDRESS=intake.address)
    token = subprocess.run([KANGYI, "token", "create", "--caller", "faults", "--kind", "development"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    gateway = serve("gateway", KANGYI_INTAKE_ADDRESS=intake.address, KANGYI_VERIFICATION_ADDRESS=verification.address)
    staff = [("x-kangyi-caller", "alice"), ("x-kangyi-department", "hotline")]
    intake_stub = intake_pb2_grpc.IntakeServiceStub(intake.channel())
    cases = verification_pb2_grpc.VerificationServiceStub(verification.channel())
    via_gateway = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(gateway.address))
    bearer = [("authorization", f"Bearer {token}")]

    first = [intake_stub.SubmitHelpRequest(submission("peer", n), timeout=5).help_request for n in range(5)]
    wait_for(lambda: count_cases(url) >= 5, what="cases from the feed")

    intake.terminate()
    # The gateway answers UNAVAILABLE at once for a backend that is down.
    started = time.time()
    with pytest.raises(grpc.RpcError) as down:
        via_gateway.ListCategories(ipb.ListCategoriesRequest(), metadata=bearer, timeout=10)
    gateway_unavailable_s = time.time() - started
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    # Verification still works; what intake must learn waits in the outbox.
    started = time.time()
    verified = cases.Verify(vpb.VerifyRequest(case_id=first[0].id, request_id="v-1"), metadata=staff, timeout=10)
    verify_while_down_s = time.time() - started
    assert verified.intake_sync == vpb.INTAKE_SYNC_PENDING

    intake.start()
    later = [intake_stub.SubmitHelpRequest(submission("peer", 10 + n), timeout=5).help_request for n in range(5)]
    wait_for(lambda: count_cases(url) >= 10, what="the feed caught up")
    wait_for(lambda: intake_stub.GetHelpRequest(ipb.GetHelpRequestRequest(id=first[0].id), timeout=5).help_request.status
             == ipb.HELP_REQUEST_STATUS_VERIFIED, what="the outbox delivered")
    assert count_cases(url) == 10, "each submission is one case"

    # The gateway reaches intake again once its connection's reconnect backoff (at most 1 s, PeerClient)
    # comes round; until then it answers UNAVAILABLE at once, as for a backend that is down.
    def gateway_answers():
        try:
            return bool(via_gateway.ListCategories(ipb.ListCategoriesRequest(), metadata=bearer, timeout=5).categories)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                return False
            raise
    started = time.time()
    wait_for(gateway_answers, seconds=5, what="the gateway reaching intake again")
    gateway_back_s = time.time() - started
    events = Cluster.sql(url, "SELECT count(*) FROM intake.status_transitions WHERE to_status = 'verified'") \
        if table_exists(url, "intake.status_transitions") else "n/a"
    figure("peer down and back", gateway_unavailable_s=round(gateway_unavailable_s, 3), gateway_back_s=round(gateway_back_s, 3),
           verify_while_intake_down_s=round(verify_while_down_s, 3), cases=count_cases(url), intake_verified_events=events)
    assert gateway_unavailable_s < 2
    del later


def test_through_the_gateway_intake_killed_then_the_gateway_stopped(deployment):
    """Submissions through the gateway — relayed straight to intake by the gateway's front door — while intake
    is killed (-9) and started again, then while the gateway itself is stopped (SIGTERM)."""
    env, url, serve = deployment
    intake = serve("intake")
    verification = serve("verification", KANGYI_INTAKE_ADDRESS=intake.address)
    token = subprocess.run([KANGYI, "token", "create", "--caller", "faults", "--kind", "development", "--rate", "100000",
                            "--burst", "100000"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    gateway = serve("gateway", KANGYI_INTAKE_ADDRESS=intake.address, KANGYI_VERIFICATION_ADDRESS=verification.address)
    with Load(gateway.address, None, metadata=[("authorization", f"Bearer {token}")]) as load:
        wait_for(lambda: load.ok_count() > 100, what="load through the gateway")
        intake.process.kill()
        intake.process.wait()
        killed = time.time()
        time.sleep(0.5)
        intake.start()
        restarted = load.ok_count()
        wait_for(lambda: load.ok_count() > restarted + 100, seconds=15, what="load through the gateway again")
        back_s = time.time() - killed
        steady = time.time()
        time.sleep(1)
        signalled = time.time()
        seconds, code = gateway.terminate()
    # Calls started once the load was steady again, and before SIGTERM: none may fail.
    failed_before = [c for c in load.calls if steady < c[0] < signalled - 0.1 and c[2] != "OK"]
    stored_count = assert_every_ack_stored_once(url, load)
    figure("through the gateway: intake killed, then the gateway stopped", acknowledged=len(load.acked),
           stored=stored_count, codes=load.codes, back_after_kill_s=round(back_s, 2), sigterm_exit_s=round(seconds, 2),
           exit_code=code, failed_in_the_steady_second_before_sigterm=len(failed_before))
    assert set(load.codes) <= {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"}, load.codes
    assert not failed_before, f"calls started before SIGTERM failed: {failed_before[:3]}"
    assert seconds <= GRACE + 2 and code == 0


def count_cases(url):
    return int(Cluster.sql(url, "SELECT count(*) FROM verification.cases"))


def table_exists(url, name):
    return Cluster.sql(url, f"SELECT to_regclass('{name}') IS NOT NULL") == "t"


class SlowProxy:
    """A TCP proxy that delays everything PostgreSQL sends by `delay` seconds: a slow database."""

    def __init__(self, target_port, delay):
        self.target_port, self.delay = target_port, delay
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(source, sink, delay):
            try:
                while data := await source.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer, 0), pipe(upstream_reader, writer, self.delay))

    def close(self):
        # The server stops accepting; its loop lives on in a daemon thread until the suite ends, so the
        # connections still open close quietly.
        self.loop.call_soon_threadsafe(self.server.close)


def test_slow_database_deadlines_load_shedding_and_memory(cluster, deployment):
    env, url, serve = deployment
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    proxy = SlowProxy(port, delay=0.2)
    slow_url = url.replace(f":{port}/", f":{proxy.port}/")
    intake = serve("intake", KANGYI_DATABASE_URL=slow_url, KANGYI_MAX_IN_FLIGHT="16", KANGYI_HEALTH_PROBE_MS="1000")
    results = []
    lock = threading.Lock()

    def call(n, deadline):
        stub = intake_pb2_grpc.IntakeServiceStub(grpc.insecure_channel(intake.address))
        start = time.time()
        try:
            stub.SubmitHelpRequest(submission("slow", n), timeout=deadline)
            code = "OK"
        except grpc.RpcError as error:
            code = error.code().name
        with lock:
            results.append((code, time.time() - start, deadline))

    peak = 0.0
    for wave in range(3):
        threads = [threading.Thread(target=call, args=(f"{wave}-{i}", 1.0 if i % 2 else 5.0)) for i in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        peak = max(peak, intake.rss_mib())
    proxy.close()
    codes = {}
    for code, _, _ in results:
        codes[code] = codes.get(code, 0) + 1
    late = [(code, round(took, 2), deadline) for code, took, deadline in results if took > deadline + 1.0]
    shed = [took for code, took, _ in results if code == "RESOURCE_EXHAUSTED"]
    figure("slow database (+200 ms per reply)", codes=codes, late=len(late),
           shed_max_s=round(max(shed), 3) if shed else None, peak_rss_mib=round(peak, 1))
    assert not late, f"calls answered well after their deadline: {late[:5]}"
    assert codes.get("RESOURCE_EXHAUSTED", 0) > 0, "load beyond KANGYI_MAX_IN_FLIGHT is shed"
    assert max(shed) < 0.5, "shedding answers at once"
    assert codes.get("INTERNAL", 0) == 0
    assert peak < 300, f"memory grew to {peak:.0f} MiB"
    seconds, code = intake.terminate()
    assert seconds <= GRACE + 2
