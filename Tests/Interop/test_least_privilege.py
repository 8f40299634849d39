"""Least privilege in the database, the way a deployment runs it: `kangyi migrate` as the owner settles one
role per service; each service then runs as its own process connected as its own role, and the whole path
works through the gateway — while no service's role can read another service's tables, tracing's personal
data least of all."""
import base64
import datetime
import json
import os
import subprocess
import urllib.parse
import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2

from kangyi_testing import KANGYI, Served, free_port, fresh_database, help_request, migrate, psql, wait_for
from kangyi.checkpoint.v1 import checkpoint_pb2 as cpb, checkpoint_pb2_grpc
from kangyi.intake.v1 import intake_pb2_grpc
from kangyi.pricewatch.v1 import pricewatch_pb2 as ppb, pricewatch_pb2_grpc
from kangyi.tracing.v1 import tracing_pb2 as tpb, tracing_pb2_grpc
from kangyi.verification.v1 import verification_pb2 as vpb, verification_pb2_grpc

# In start-up order: peers before the services that follow them, the gateway last.
SERVICES = ["intake", "verification", "checkpoint", "pricewatch", "tracing", "gateway"]


def as_role(url, service):
    """The owner's URL with the service's role as its user (trust authentication on the test cluster;
    a deployment gives each role its password)."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=f"kangyi_{service}@{parts.hostname}:{parts.port}").geturl()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("least-privilege")
    owner = migrate(fresh_database("least"))
    # What CloudNativePG's managed roles do in a deployment: the roles `kangyi migrate` made may now log in.
    for service in SERVICES:
        assert psql(owner, f"ALTER ROLE kangyi_{service} LOGIN").returncode == 0
    ports = {service: free_port() for service in SERVICES}
    key = lambda: base64.b64encode(os.urandom(32)).decode()  # noqa: E731
    env = dict(os.environ, KANGYI_IDENTITY_KEY=key(), KANGYI_PII_KEY=key(), KANGYI_PII_INDEX_KEY=key(),
               KANGYI_BACKGROUND_POLL_MS="200",
               **{f"KANGYI_{service.upper()}_ADDRESS": f"127.0.0.1:{port}" for service, port in ports.items()})
    servers = {}
    try:
        for service in SERVICES:
            servers[service] = Served(service, dict(env, KANGYI_DATABASE_URL=as_role(owner, service)),
                                      tmp / f"{service}.log", port=ports[service]).start()
        gateway = servers["gateway"]
        yield owner, servers, grpc.insecure_channel(gateway.address)
    finally:
        for server in reversed(list(servers.values())):
            if server.process.poll() is None:
                server.stop()


def token(owner, *args):
    """`kangyi token create`, connected as the gateway's role: tokens are the gateway's table."""
    out = subprocess.run([KANGYI, "token", "create", "--json", *args],
                         env=dict(os.environ, KANGYI_DATABASE_URL=as_role(owner, "gateway")),
                         check=True, capture_output=True, text=True).stdout
    return [("authorization", "Bearer " + json.loads(out)["token"])]


def stamp(minutes_ago):
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes_ago))
    return ts


def test_every_service_works_connected_as_its_own_role(deployment):
    owner, servers, channel = deployment
    staff = token(owner, "--kind", "development", "--caller", "lp-staff")

    # Intake stores; verification follows intake's feed into its queue.
    submitted = intake_pb2_grpc.IntakeServiceStub(channel).SubmitHelpRequest(
        help_request(f"lp-{uuid.uuid4()}"), metadata=staff, timeout=10).help_request
    verification = verification_pb2_grpc.VerificationServiceStub(channel)
    case = wait_for(lambda: next((c for c in verification.ListCases(vpb.ListCasesRequest(), metadata=staff, timeout=10).cases
                                  if c.id == submitted.id), None), what="verification's case from intake's feed")
    assert case.ticket == submitted.ticket

    # Checkpoint creates its day partitions as its own role and stores a flagged log; tracing follows it.
    checkpoint = checkpoint_pb2_grpc.CheckpointServiceStub(channel)
    checkpoint.RegisterTerminal(cpb.RegisterTerminalRequest(terminal_id="LP-01", checkpoint="ZZ-YAOJIA"), metadata=staff, timeout=10)
    terminal = token(owner, "--kind", "checkpoint-terminal", "--terminal", "LP-01")
    checkpoint.RecordVehicleLog(cpb.RecordVehicleLogRequest(log=cpb.VehicleLog(
        terminal_id="LP-01", sequence=1, plate="豫A12345", plate_color=cpb.PLATE_COLOR_BLUE, vehicle_type=cpb.VEHICLE_TYPE_CAR,
        direction=cpb.DIRECTION_INBOUND, driver_phone="13800007777", destination_district="410102",
        occupants=[cpb.Occupant(temperature_decidegrees=385, health_code=cpb.HEALTH_CODE_GREEN)], observed_at=stamp(2))),
        metadata=terminal, timeout=10)
    tracing = tracing_pb2_grpc.TracingServiceStub(channel)
    wait_for(lambda: any(t.checkpoint.terminal_id == "LP-01" for t in tracing.ListTasks(
        tpb.ListTasksRequest(district="410102"), metadata=staff, timeout=10).tasks), what="tracing's task from checkpoint's feed")

    # Price watch stores observations in its month partitions.
    pricewatch = pricewatch_pb2_grpc.PriceWatchServiceStub(channel)
    pricewatch.SetOutlet(ppb.SetOutletRequest(outlet=ppb.Outlet(
        code="LP-PH-1", name="大药房（最小权限）", kind=ppb.OUTLET_KIND_PHARMACY, district="410102", licence_number="91410100LP")),
        metadata=staff, timeout=10)
    stored = pricewatch.SubmitPriceObservations(ppb.SubmitPriceObservationsRequest(observations=[ppb.PriceObservation(
        observation_id="lp-1", commodity="mask_n95", outlet="LP-PH-1", price_fen=500, quantity=1, observed_at=stamp(1),
        source=ppb.OBSERVATION_SOURCE_INSPECTOR)]), metadata=staff, timeout=10)
    assert stored.stored == 1

    # Each process really is its role, and none has needed more.
    for service, server in servers.items():
        assert "permission denied" not in server.log(), f"{service}: {server.log()[-2000:]}"
    sessions = psql(owner, "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND usename LIKE 'kangyi_%'")
    assert set(sessions.stdout.split()) == {f"kangyi_{service}" for service in SERVICES}


def test_no_role_reads_another_services_tables(deployment):
    owner, _, _ = deployment
    tables = psql(owner, "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname = ANY "
                         f"(ARRAY{SERVICES!r})").stdout.split()
    assert {t.split(".")[0] for t in tables} == set(SERVICES)
    for service in SERVICES:
        own = [t for t in tables if t.startswith(service + ".")]
        others = [t for t in tables if not t.startswith(service + ".")]
        # Privileges as PostgreSQL sees them, for every table of every other service ...
        rows = psql(owner, "SELECT t FROM unnest(ARRAY[" + ",".join(f"'{t}'" for t in others) + "]) t "
                           f"WHERE has_schema_privilege('kangyi_{service}', split_part(t, '.', 1), 'USAGE') "
                           f"OR has_table_privilege('kangyi_{service}', t, 'SELECT,INSERT,UPDATE,DELETE')").stdout.split()
        assert rows == [], f"kangyi_{service} reaches {rows}"
        # ... and as a query sees it: its own tables and common, yes; another's, no.
        allowed = psql(owner, f"SET ROLE kangyi_{service}", f"SELECT count(*) FROM {own[0]}",
                       "SELECT count(*) FROM common.districts")
        assert allowed.returncode == 0, allowed.stderr
    for stranger, table in [("intake", "verification.cases"), ("intake", "gateway.tokens"), ("intake", "tracing.persons"),
                            ("checkpoint", "tracing.persons"), ("gateway", "intake.help_requests")]:
        refused = psql(owner, f"SET ROLE kangyi_{stranger}", f"SELECT count(*) FROM {table}")
        assert refused.returncode != 0 and "permission denied" in refused.stderr, (stranger, table, refused.stderr)


def test_a_service_role_may_not_migrate(deployment):
    owner, _, _ = deployment
    refused = psql(as_role(owner, "intake"), "CREATE TABLE common.intruder (x int)")
    assert "permission denied" in refused.stderr
    refused = psql(as_role(owner, "intake"), "INSERT INTO public.kangyi_schema_migrations VALUES ('intake', 99, 'x', 'x')")
    assert "permission denied" in refused.stderr
    # Up to date, a server connected as its role starts; `kangyi migrate` as that role says there is nothing to do.
    done = subprocess.run([KANGYI, "migrate", "intake"], env=dict(os.environ, KANGYI_DATABASE_URL=as_role(owner, "intake")),
                          capture_output=True, text=True)
    assert done.returncode == 0 and "up to date" in done.stdout, done.stderr
