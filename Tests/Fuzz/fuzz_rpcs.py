"""Structured fuzzing over the wire: every request message of every RPC of every service, decoded and
validated by the real service code in a real `kangyi dev` process.

Each round picks a method and sends it either a message built field by field from its descriptor (hostile
strings — NUL, lone control characters, huge text, every script — extreme numbers, unknown enum values,
deep and wide nesting) or raw bytes (a committed corpus input, mutated), as an anonymous caller, as a
staff member with every scope (signed, as the gateway would), or through the gateway itself with the
development token (every scope: its front door relays the call straight to the service); some structured
messages go to the gateway's JSON door as JSON, half of them with JSON's grammar mutated. The promise: no
INTERNAL or UNKNOWN status (over HTTP: no 5xx but 501, 503 and 504, and always an answer), no call that is not a
watch running out its deadline, and the process stays up. Failures are written to .data/fuzz/failures/ with what reproduces them.

    python Tests/Fuzz/fuzz_rpcs.py --seconds 600      # make fuzz MINUTES=10
"""
import argparse
import http.client
import pathlib
import random
import secrets
import sys
import time

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".build-python"))
sys.path.insert(0, str(ROOT / "Tests" / "Interop"))

from google.protobuf import descriptor as d, json_format, message_factory  # noqa: E402
from kangyi_testing import Kangyi  # noqa: E402
from signing import sign  # noqa: E402

from kangyi.intake.v1 import intake_pb2  # noqa: E402,F401
from kangyi.verification.v1 import verification_pb2  # noqa: E402,F401
from kangyi.checkpoint.v1 import checkpoint_pb2  # noqa: E402,F401
from kangyi.tracing.v1 import tracing_pb2  # noqa: E402,F401
from kangyi.pricewatch.v1 import pricewatch_pb2  # noqa: E402,F401

SERVICES = {"intake": intake_pb2.DESCRIPTOR.services_by_name["IntakeService"],
            "verification": verification_pb2.DESCRIPTOR.services_by_name["VerificationService"],
            "checkpoint": checkpoint_pb2.DESCRIPTOR.services_by_name["CheckpointService"],
            "tracing": tracing_pb2.DESCRIPTOR.services_by_name["TracingService"],
            "pricewatch": pricewatch_pb2.DESCRIPTOR.services_by_name["PriceWatchService"]}
CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
STAFF = [("x-kangyi-caller", "fuzzer"), ("x-kangyi-department", "health_commission"),
         ("x-kangyi-scopes", "pii.read intake.read intake.write verification.staff checkpoint.read checkpoint.admin")]

STRINGS = ["", " ", "\x00", "a\x00b", "\u202e", "\ufeff", "🙂" * 50, "中原区", "410102", "zhengdong", "13812345678",
           "+86 138 1234 5678", "food_supply", "medical", "health_commission", "KY26010100000001", "'; DROP TABLE x; --",
           "%s%n", "\\", "00000000-0000-0000-0000-000000000000", "x" * 5000, "\n\r\t", "é" * 1001, "\u0001\u007f",
           "2026-01-01T00:00:00Z", "-1", "9" * 40, "ZZ-YAOJIA", "T1", "豫A12345", "鄂a 1234学", "豫AD12345", "420000",
           "11010519491231002X", "110105194912310021", "2026-02-29", "2026-11-20", "9999-12-31",
           "pork", "mask_n95", "ibuprofen",
           # Letters whose other case is longer ("ß" → "SS", "İ" → "i̇"), ligatures, combining marks, full width.
           "ß", "豫Aß2345", "豫A\ufb01234", "İ" * 7, "豫A1234\u0301", "ǅ", "豫Ａ１２３４５"]
INTS = [0, 1, -1, 2, 7, 100, 1000, 2**31 - 1, -2**31, 2**63 - 1, -2**63]


def value_for(field, depth, rng):
    t = field.type
    if t == d.FieldDescriptor.TYPE_MESSAGE:
        return build(field.message_type, depth + 1, rng)
    if t == d.FieldDescriptor.TYPE_STRING:
        return rng.choice(STRINGS) if rng.random() < 0.8 else "".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(0, 40))
                                                                      ).encode("utf-8", "ignore").decode("utf-8", "ignore")
    if t == d.FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 64))
    if t == d.FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == d.FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return rng.choice(numbers + [999, -5])
    if t in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -0.0, 1e308, -1e308, float("nan"), float("inf"), 91.0, 30.5, -181.0])
    unsigned = t in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED32,
                     d.FieldDescriptor.TYPE_FIXED64)
    bits = 32 if t in (d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_SINT32, d.FieldDescriptor.TYPE_UINT32,
                       d.FieldDescriptor.TYPE_FIXED32, d.FieldDescriptor.TYPE_SFIXED32) else 64
    value = rng.choice(INTS)
    if unsigned:
        value = abs(value) % (2**bits)
    else:
        value = max(-2**(bits - 1), min(2**(bits - 1) - 1, value))
    return value


def build(message_type, depth, rng):
    from google.protobuf import message_factory
    message = message_factory.GetMessageClass(message_type)()
    if depth > 4:
        return message
    for field in message_type.fields:
        if rng.random() < 0.35:
            continue
        try:
            if field.is_repeated:
                if field.message_type and field.message_type.GetOptions().map_entry:
                    continue
                for _ in range(rng.choice([0, 1, 2, 5, 50])):
                    item = value_for(field, depth, rng)
                    target = getattr(message, field.name)
                    target.add().CopyFrom(item) if field.type == d.FieldDescriptor.TYPE_MESSAGE else target.append(item)
            elif field.type == d.FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(value_for(field, depth, rng))
            else:
                setattr(message, field.name, value_for(field, depth, rng))
        except (ValueError, TypeError):
            pass  # a value Python's protobuf refuses to hold (e.g. an unknown closed enum): skip the field
    return message


def mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if choice < 0.4 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.7:
            data[rng.randint(0, len(data)):rng.randint(0, len(data))] = rng.randbytes(rng.randint(1, 16))
        elif data:
            del data[rng.randrange(len(data))]
    return bytes(data)


def mutate_json(text, rng):
    """A JSON body with a few characters of JSON's own grammar put in, taken out or replaced."""
    text = list(text)
    for _ in range(rng.randint(1, 6)):
        at = rng.randint(0, len(text))
        choice = rng.random()
        if choice < 0.4:
            text[at:at] = list(rng.choice(['{', '}', '[', ']', '"', ':', ',', 'null', 'true', '1e400', '-0', '"\\ud800"',
                                           '\\', '""', '0x10', '[[[[[[[[', '"\\u0000"']))
        elif choice < 0.7 and text:
            del text[at:at + rng.randint(1, 4)]
        elif text:
            text[min(at, len(text) - 1)] = chr(rng.randint(0, 0x7ff))
    return "".join(text)


def call_json(kangyi, service, method, body, timeout=3.0):
    """POSTs `body` to the gateway's JSON door with the development token; returns the HTTP status, raising
    for a 5xx other than the gateway's honest 501, 503 and 504 (UNIMPLEMENTED, UNAVAILABLE, DEADLINE_EXCEEDED)."""
    host, port = next(s for s in kangyi.info["services"] if s["name"] == "gateway")["http"].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout + 2)
    try:
        connection.request("POST", f"/{SERVICES[service].full_name}/{method.name}", body=body.encode("utf-8", "surrogatepass"),
                           headers={"authorization": f"Bearer {kangyi.info['token']}",
                                    "grpc-timeout": f"{int(min(timeout, 1.0) if method.server_streaming else timeout)}S"})
        answer = connection.getresponse()
        text = answer.read()
    finally:
        connection.close()
    if answer.status >= 500 and answer.status not in (501, 503, 504):
        raise JSONDoorFault(answer.status, text[:300])
    return answer.status


class JSONDoorFault(Exception):
    pass


def call(kangyi, service, method, payload, metadata, timeout=3.0, gateway=False):
    """Sends `payload` as it is (bytes, not a message) to `method`, signing any identity claim — or, through
    the gateway, with the development token."""
    path = f"/{SERVICES[service].full_name}/{method.name}"
    if gateway:
        channel = kangyi.raw_channel("gateway")
        metadata = [("authorization", f"Bearer {kangyi.info['token']}")]
    else:
        channel = kangyi.raw_channel(service)
        metadata = sign(metadata, path, kangyi.identity_key)
    identity = (lambda b: b)
    if method.server_streaming and method.client_streaming:
        for _ in channel.stream_stream(path, request_serializer=identity, response_deserializer=identity)(
                iter([payload] * 3), metadata=metadata, timeout=timeout):
            pass
    elif method.server_streaming:
        # A watch runs until its deadline: a short one leaves the time to other methods.
        for _ in channel.unary_stream(path, request_serializer=identity, response_deserializer=identity)(
                payload, metadata=metadata, timeout=min(timeout, 1.0)):
            pass
    elif method.client_streaming:
        channel.stream_unary(path, request_serializer=identity, response_deserializer=identity)(
            iter([payload] * 3), metadata=metadata, timeout=timeout)
    else:
        channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)(
            payload, metadata=metadata, timeout=timeout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    out = ROOT / ".data" / "fuzz"
    (out / "failures").mkdir(parents=True, exist_ok=True)
    tmp = out / f"run-{secrets.token_hex(3)}"
    tmp.mkdir()
    target = Kangyi(tmp, label="fuzz", KANGYI_LOG_LEVEL="warning")
    corpus = sorted(CORPUS.glob("*.bin")) if CORPUS.exists() else []
    methods = [(s, m) for s, service in SERVICES.items() for m in service.methods]
    rounds, failures, codes = 0, [], {}
    ends = time.time() + args.seconds
    try:
        # The committed corpus first, each input once, then random rounds until time is up.
        queue = [("corpus", path) for path in corpus]
        while time.time() < ends or queue:
            service, method = rng.choice(methods)
            if queue:
                _, path = queue.pop(0)
                service, method_name = path.stem.split("__")[0:2]
                method = SERVICES[service].methods_by_name[method_name]
                payload, how = path.read_bytes(), f"corpus {path.name}"
            elif rng.random() < 0.75:
                payload, how = build(method.input_type, 0, rng).SerializeToString(), "structured"
            else:
                seeds = [p for p in corpus if p.stem.startswith(f"{service}__{method.name}__")]
                base = seeds[rng.randrange(len(seeds))].read_bytes() if seeds else b""
                payload, how = mutate(base, rng), "mutated"
            metadata = STAFF if rng.random() < 0.6 else []
            via_gateway = rng.random() < 0.25
            # A fifth of the structured rounds go to the gateway's JSON door instead, as the message's JSON
            # (half of them mutated): a client-streaming method there is 501.
            as_json = how == "structured" and rng.random() < 0.2
            if as_json:
                try:
                    body = json_format.MessageToJson(
                        message_factory.GetMessageClass(method.input_type).FromString(payload),
                        preserving_proto_field_name=rng.random() < 0.3)
                    payload, how = (mutate_json(body, rng) if rng.random() < 0.5 else body), "json"
                except (ValueError, json_format.Error):  # a value JSON cannot carry (an out-of-range timestamp): gRPC instead
                    as_json = False
            started = time.time()
            code, detail = grpc.StatusCode.OK, ""
            try:
                if as_json:
                    detail = f"HTTP {call_json(target, service, method, payload)}"
                else:
                    call(target, service, method, payload, metadata, gateway=via_gateway)
            except grpc.RpcError as error:
                code, detail = error.code(), error.details() or ""
            except JSONDoorFault as fault:
                code, detail = grpc.StatusCode.INTERNAL, f"HTTP {fault.args[0]} {fault.args[1]!r}"
            except (OSError, http.client.HTTPException) as error:  # no answer at all from the JSON door
                code, detail = grpc.StatusCode.UNKNOWN, repr(error)
            took = time.time() - started
            rounds += 1
            answer = detail if as_json and code == grpc.StatusCode.OK else code.name  # the JSON door's: "HTTP 400"
            codes[answer] = codes.get(answer, 0) + 1
            # Past its deadline; or a call that is not a watch running out its 3 s, which nothing here
            # should take (a gateway connection once hung every call after one bad answer).
            hung = took > 3.0 + 2.0 or (code == grpc.StatusCode.DEADLINE_EXCEEDED and not method.server_streaming)
            dead = target.process.poll() is not None
            if code in FORBIDDEN or hung or dead:
                record = out / "failures" / f"{service}__{method.name}__{seed}_{rounds}.{'json' if as_json else 'bin'}"
                record.write_bytes(payload.encode("utf-8", "surrogatepass") if as_json else payload)
                failures.append(
                    f"{service}.{method.name}: {code.name} after {took:.1f}s ({how}, staff={bool(metadata)}, "
                    f"gateway={via_gateway}, json={as_json}) {detail[:200]!r} -> {record}")
                if dead:
                    break
    finally:
        target.stop()
    log = (tmp / "kangyi.log").read_text()
    print(f"fuzz: seed {seed}, {rounds} calls over {len(methods)} methods, codes {codes}")
    for failure in failures:
        print("  FAIL", failure)
    if failures:
        print(log[-3000:])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
