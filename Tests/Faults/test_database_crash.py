"""Every service's writes while the database crashes: intake, checkpoint, price watch and tracing, each its
own `kangyi serve` process with callers writing as fast as they are answered, and verification following
intake's feed in the background; every PostgreSQL process killed (-9) and the cluster started again 2 s
later. No process dies, no call outlives its deadline by more than a second (a write lost inside the
database driver would hang until then), no INTERNAL or UNKNOWN, and every service's writes succeed again.
Every acknowledged write is stored exactly once, and verification's follower has a case for every help
request stored (its loop did not stall on the crash)."""
import base64
import os
import secrets
import threading
import time

import grpc
from google.protobuf import timestamp_pb2

from conftest import Cluster, figure, submission
from kangyi_testing import wait_for
from kangyi.checkpoint.v1 import checkpoint_pb2 as cpb, checkpoint_pb2_grpc
from kangyi.intake.v1 import intake_pb2_grpc
from kangyi.pricewatch.v1 import pricewatch_pb2 as ppb, pricewatch_pb2_grpc
from kangyi.tracing.v1 import tracing_pb2 as tpb, tracing_pb2_grpc
from signing import signing_channel

DEADLINE = 3.0


def stamp(seconds_ago):
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(int(time.time()) - seconds_ago)
    return ts


class Writer(threading.Thread):
    """One caller writing with `call(n)` until stopped; remembers each acknowledged write's key and every
    call's code and duration."""

    def __init__(self, name, call):
        super().__init__(daemon=True)
        self.name_, self.call = name, call
        self.acked, self.codes, self.slowest, self.last_ok = [], {}, 0.0, 0.0
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.time()
            try:
                self.acked.append(self.call(n))
                code = "OK"
                self.last_ok = time.time()
            except grpc.RpcError as error:
                code = error.code().name
                time.sleep(0.05)
            self.slowest = max(self.slowest, time.time() - started)
            self.codes[code] = self.codes.get(code, 0) + 1


def test_the_database_crashes_under_every_services_writes(cluster, deployment, tmp_path):
    env, url, serve = deployment
    run = secrets.token_hex(3)
    extra = {"KANGYI_PII_KEY": base64.b64encode(os.urandom(32)).decode(),
             "KANGYI_PII_INDEX_KEY": base64.b64encode(os.urandom(32)).decode()}
    servers = {name: serve(name, **extra) for name in ("intake", "checkpoint", "pricewatch", "tracing")}
    servers["verification"] = serve("verification", KANGYI_INTAKE_ADDRESS=servers["intake"].address)
    channel = {name: signing_channel(server.address, server.key) for name, server in servers.items() if name != "verification"}
    staff = lambda caller: [("x-kangyi-caller", caller)]  # noqa: E731

    intake = intake_pb2_grpc.IntakeServiceStub(channel["intake"])
    checkpoint = checkpoint_pb2_grpc.CheckpointServiceStub(channel["checkpoint"])
    pricewatch = pricewatch_pb2_grpc.PriceWatchServiceStub(channel["pricewatch"])
    tracing = tracing_pb2_grpc.TracingServiceStub(channel["tracing"])
    terminal = f"CRASH-{run}"
    checkpoint.RegisterTerminal(cpb.RegisterTerminalRequest(terminal_id=terminal, checkpoint="ZZ-YAOJIA"),
                                metadata=staff("op-crash"), timeout=10)
    pricewatch.SetOutlet(ppb.SetOutletRequest(outlet=ppb.Outlet(
        code=f"CR-{run}", name="crash test pharmacy", kind=ppb.OUTLET_KIND_PHARMACY, district="410102",
        licence_number="91410100CRASH")), metadata=staff("sup-crash"), timeout=10)

    def submit(n):
        request = submission(run, n)
        intake.SubmitHelpRequest(request, timeout=DEADLINE)
        return request.request_id

    def record(n):
        log = cpb.VehicleLog(terminal_id=terminal, sequence=n, plate=f"豫A{n % 100000:05d}", plate_color=cpb.PLATE_COLOR_BLUE,
                             vehicle_type=cpb.VEHICLE_TYPE_CAR, direction=cpb.DIRECTION_INBOUND,
                             occupants=[cpb.Occupant(temperature_decidegrees=366, health_code=cpb.HEALTH_CODE_GREEN)],
                             observed_at=stamp(60))
        checkpoint.RecordVehicleLog(cpb.RecordVehicleLogRequest(log=log), metadata=staff(f"terminal.{terminal}"), timeout=DEADLINE)
        return n

    def observe(n):
        observation = ppb.PriceObservation(
            observation_id=f"{run}-{n}", commodity="mask_n95", outlet=f"CR-{run}", price_fen=500 + n % 50, quantity=1,
            observed_at=stamp(60), source=ppb.OBSERVATION_SOURCE_INSPECTOR)
        answer = pricewatch.SubmitPriceObservations(ppb.SubmitPriceObservationsRequest(observations=[observation]),
                                                    metadata=staff("inspector-crash"), timeout=DEADLINE)
        assert answer.stored + answer.duplicates == 1, answer
        return observation.observation_id

    def open_case(n):
        tracing.CreateCase(tpb.CreateCaseRequest(
            request_id=f"{run}-{n}", classification=tpb.CLASSIFICATION_CONFIRMED, source="crash test",
            index_person=tpb.PersonDetails(name="王五", phone=f"137{n:08d}", district="410102")),
            metadata=staff("investigator-crash"), timeout=DEADLINE)
        return f"{run}-{n}"

    # Four callers a service; a caller's keys are n ≡ its index (mod 4), so no two share a key.
    writers = [Writer(name, lambda n, call=call, i=i: call(4 * n + i)) for name, call in
               (("intake", submit), ("checkpoint", record), ("pricewatch", observe), ("tracing", open_case)) for i in range(4)]
    for writer in writers:
        writer.start()
    try:
        wait_for(lambda: all(w.codes.get("OK", 0) >= 20 for w in writers), seconds=30, what="every writer under way")
        cluster.kill()
        time.sleep(2.0)
        cluster.url = cluster.start()
        restarted = time.time()
        wait_for(lambda: all(w.last_ok > restarted for w in writers), seconds=20, what="every service writing again")
        back = {w.name_: round(w.last_ok - restarted, 2) for w in writers}
        time.sleep(0.5)
    finally:
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(timeout=DEADLINE + 5)

    acked, codes, slowest = {}, {}, {}
    for w in writers:
        acked.setdefault(w.name_, []).extend(w.acked)
        slowest[w.name_] = round(max(slowest.get(w.name_, 0), w.slowest), 2)
        for code, count in w.codes.items():
            codes.setdefault(w.name_, {})[code] = codes.get(w.name_, {}).get(code, 0) + count
    # Where each service stores an acknowledged write, and under which key.
    stores = {"intake": ("intake.help_requests", "request_id", "text", ""),
              "checkpoint": ("checkpoint.vehicle_logs", "sequence", "bigint", f"terminal_id = '{terminal}' AND "),
              "pricewatch": ("pricewatch.observations", "observation_id", "text", ""),
              "tracing": ("tracing.cases", "request_id", "text", "")}
    stored = {name: Cluster.sql(url, f"SELECT count(*), count(DISTINCT {key}) FROM {table} WHERE {scope}"
                                     f"{key} = ANY(ARRAY[{','.join(repr(k) for k in acked[name])}]::{kind}[])")
              for name, (table, key, kind, scope) in stores.items()}
    rows_in = lambda table: int(Cluster.sql(url, f"SELECT count(*) FROM {table}"))  # noqa: E731
    wait_for(lambda: rows_in("verification.cases") == rows_in("intake.help_requests"), seconds=20,
             what="verification's follower caught up with intake")
    figure("the database crashed under every service's writes", back_after_restart_s=back, codes=codes, slowest_s=slowest,
           acknowledged={name: len(keys) for name, keys in acked.items()}, stored=stored,
           cases_followed=rows_in("verification.cases"))
    for name, server in servers.items():
        assert server.process.poll() is None, f"{name} died: {server.log()[-3000:]}"
        if name == "verification":
            continue
        assert set(codes[name]) <= {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"}, (name, codes[name])
        assert slowest[name] <= DEADLINE + 1, (name, slowest[name])
        count, distinct = map(int, stored[name].split("|"))
        assert count == distinct == len(acked[name]), (name, stored[name], len(acked[name]))
