"""The price-watch service from outside: an inspector's batch and an outlet's feed stream through the
gateway with grpcio (refusals item by item, duplicates on resend, alerts raised), an analyst's series
and alerts, market supervision working an alert, each caller kind against every method on the JSON
door, and the backend refusing unsigned identities."""
import datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2

from kangyi.common.v1 import common_pb2
from kangyi.pricewatch.v1 import pricewatch_pb2 as ppb, pricewatch_pb2_grpc
from test_gateway import curl, gateway, new_token

SERVICE = "kangyi.pricewatch.v1.PriceWatchService"


def stamp(seconds_ago=60):
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago))
    return ts


def obs(oid, price, outlet="PW-PH-1", commodity="mask_n95", quantity=1, cost=0, seconds_ago=60):
    return ppb.PriceObservation(observation_id=oid, commodity=commodity, outlet=outlet, price_fen=price, quantity=quantity,
                                purchase_cost_fen=cost, observed_at=stamp(seconds_ago),
                                source=ppb.OBSERVATION_SOURCE_INSPECTOR)


@pytest.fixture(scope="module")
def pricewatch(kangyi):
    stub = pricewatch_pb2_grpc.PriceWatchServiceStub(grpc.insecure_channel(gateway(kangyi)["grpc"]))
    tokens = {kind: new_token(kangyi, "--kind", kind, "--caller", f"pw-{kind}-1")
              for kind in ("price-reporter", "market-supervisor", "analyst", "citizen-frontend", "department-system",
                           "investigator")}
    supervisor = [("authorization", f"Bearer {tokens['market-supervisor']}")]
    stub.SetOutlet(ppb.SetOutletRequest(outlet=ppb.Outlet(code="PW-PH-1", name="大药房（测试）", kind=ppb.OUTLET_KIND_PHARMACY,
                                                          district="410102", licence_number="91410100TEST")),
                   metadata=supervisor, timeout=10)
    return stub, tokens


def auth(tokens, kind):
    return [("authorization", f"Bearer {tokens[kind]}")]


def test_observations_in_alerts_out_and_enforcement(pricewatch):
    stub, tokens = pricewatch
    reporter, supervisor, analyst = auth(tokens, "price-reporter"), auth(tokens, "market-supervisor"), auth(tokens, "analyst")
    ceiling = ppb.SetPriceControlRequest(request_id="n95-ceiling", control=ppb.PriceControl(
        kind=ppb.CONTROL_KIND_CEILING, commodity="mask_n95", ceiling_fen=800, effective=common_pb2.TimeRange(start=stamp(3600))))
    first = stub.SetPriceControl(ceiling, metadata=supervisor, timeout=10)
    retried = stub.SetPriceControl(ceiling, metadata=supervisor, timeout=10)
    assert retried.replayed and retried.control.id == first.control.id
    batch = [obs("n-1", 790), obs("n-2", 1200), obs("n-3", -1), obs("n-4", 500, outlet="NOWHERE")]
    response = stub.SubmitPriceObservations(ppb.SubmitPriceObservationsRequest(observations=batch), metadata=reporter, timeout=10)
    assert (response.stored, response.refused) == (2, 2)
    assert [v.field for v in response.results[2].violations] == ["observations[2].price_fen"]
    assert [v.field for v in response.results[3].violations] == ["observations[3].outlet"]
    assert [a.kind for a in response.results[1].alerts] == [ppb.ALERT_KIND_ABOVE_CEILING]
    alert = response.results[1].alerts[0]
    assert alert.figures["ceiling_fen"] == 800 and alert.figures["unit_price_fen"] == 1200
    again = stub.SubmitPriceObservations(ppb.SubmitPriceObservationsRequest(observations=batch[:2]), metadata=reporter, timeout=10)
    assert again.duplicates == 2 and again.stored == 0

    # An outlet's feed streams; a resend inside the stream is a duplicate.
    messages = [ppb.StreamPriceObservationsRequest(observation=obs(f"f-{n}", 700 + n % 50)) for n in range(300)]
    feed = stub.StreamPriceObservations(iter(messages + messages[:1]), metadata=reporter, timeout=30)
    assert (feed.stored, feed.duplicates, feed.refused) == (300, 1, 0)
    # A backlog in batches (`observations`), `observation` first; results count observations in stream order.
    backlog = [obs(f"b-{n}", 700 + n % 50) for n in range(250)]
    backlog[120] = obs("b-120", -5)
    batched = [ppb.StreamPriceObservationsRequest(observation=messages[0].observation, observations=backlog[:100]),
               ppb.StreamPriceObservationsRequest(observations=backlog[100:])]
    feed = stub.StreamPriceObservations(iter(batched), metadata=reporter, timeout=30)
    assert (feed.stored, feed.duplicates, feed.refused) == (249, 1, 1)
    assert [(r.index, [v.field for v in r.violations]) for r in feed.results if r.violations] == [(121, ["observation.price_fen"])]
    with pytest.raises(grpc.RpcError) as too_many:
        stub.StreamPriceObservations(iter([ppb.StreamPriceObservationsRequest(observations=[obs("x", 700)] * 1001)]),
                                     metadata=reporter, timeout=30)
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    series = stub.GetPriceSeries(ppb.GetPriceSeriesRequest(
        commodity="mask_n95", district="410102", bucket=ppb.BUCKET_DAY,
        observed=common_pb2.TimeRange(start=stamp(86400 * 2), end=stamp(-3600))), metadata=analyst, timeout=10)
    assert sum(p.count for p in series.points) == 302 + 249
    assert max(p.max_fen for p in series.points) == 1200

    listed = stub.ListAlerts(ppb.ListAlertsRequest(outlet="PW-PH-1"), metadata=analyst, timeout=10)
    assert alert.id in [a.id for a in listed.alerts]
    referred = stub.UpdateAlert(ppb.UpdateAlertRequest(alert_id=alert.id, request_id="u-1", action=ppb.ALERT_ACTION_REFER,
                                                       case_number="ZZ-2026-001"), metadata=supervisor, timeout=10)
    assert referred.alert.status == ppb.ALERT_STATUS_REFERRED
    with pytest.raises(grpc.RpcError) as denied:
        stub.UpdateAlert(ppb.UpdateAlertRequest(alert_id=alert.id, request_id="u-2", action=ppb.ALERT_ACTION_ACKNOWLEDGE),
                         metadata=analyst, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    record = stub.GetOutletRecord(ppb.GetOutletRecordRequest(outlet="PW-PH-1"), metadata=analyst, timeout=10)
    assert [e.action for r in record.alerts if r.alert.id == alert.id for e in r.history] == ["refer"]


def test_every_caller_kind_against_every_method(kangyi, pricewatch):
    _, tokens = pricewatch
    report = {"SubmitPriceObservations", "StreamPriceObservations"}
    read = {"GetPriceSeries", "ListPriceObservations", "GetIndicators", "ListAlerts", "WatchAlerts", "GetOutletRecord",
            "ListPriceControls", "ListBaselines", "ListCommodities", "ListOutlets"}
    enforce = {"UpdateAlert", "SetPriceControl", "EndPriceControl", "SetBaseline", "SetCommodity", "SetOutlet"}
    allowed = {"price-reporter": report, "citizen-frontend": report, "analyst": read, "market-supervisor": read | enforce,
               "department-system": set(), "investigator": set()}
    for kind, methods in allowed.items():
        for method in ppb.DESCRIPTOR.services_by_name["PriceWatchService"].methods:
            if method.client_streaming:  # not on the JSON door (501); its gRPC scope is checked by the stream above
                continue
            status, _, body = curl(kangyi, f"{SERVICE}/{method.name}", {}, token=tokens[kind], max_time=3)
            if method.name in methods:
                assert status not in (401, 403, 500), f"{kind} {method.name}: {status} {body[:200]}"
            else:
                assert status == 403, f"{kind} {method.name}: {status} {body[:200]}"


def test_the_backend_believes_only_signed_identities(kangyi):
    claims = [("x-kangyi-caller", "inspector-forged")]
    raw = pricewatch_pb2_grpc.PriceWatchServiceStub(kangyi.raw_channel("pricewatch"))
    with pytest.raises(grpc.RpcError) as refused:
        raw.SubmitPriceObservations(ppb.SubmitPriceObservationsRequest(observations=[obs("x-1", 100)]), metadata=claims, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    signed = pricewatch_pb2_grpc.PriceWatchServiceStub(kangyi.channel("pricewatch"))
    commodities = signed.ListCommodities(ppb.ListCommoditiesRequest(), metadata=claims, timeout=10)
    assert "pork" in [c.code for c in commodities.commodities]
