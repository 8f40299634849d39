"""Signed identities, as the gateway and Kangyi services send them (see SignedIdentity.swift).

A backend believes `x-kangyi-caller`, `x-kangyi-department` and `x-kangyi-scopes` only with a valid
`x-kangyi-identity` signature: HMAC-SHA256 under the deployment's KANGYI_IDENTITY_KEY, over those fields,
the request id, an expiry and the method. Tests that play a peer service sign with `SigningInterceptor`.
"""
import base64
import collections
import hashlib
import hmac
import time

import grpc

CLAIMS = ("x-kangyi-caller", "x-kangyi-department", "x-kangyi-scopes")


def signature(key, method, expiry_ms, request_id, caller, department, scopes):
    fields = ["v1", method, str(expiry_ms), request_id, caller, department, scopes]
    message = "\n".join(f"{len(f.encode())}:{f}" for f in fields).encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def sign(metadata, method, key, now=None, lifetime=60):
    """`metadata` with its identity claims signed for `method` (`package.Service/Method`)."""
    metadata = list(metadata or [])
    claims = {k: v for k, v in metadata if k in CLAIMS}
    if not claims:
        return metadata
    rest = [(k, v) for k, v in metadata if k not in CLAIMS and k != "x-kangyi-identity"]
    request_id = next((v for k, v in rest if k == "x-request-id"), "")
    caller = claims.get("x-kangyi-caller", "")
    department = claims.get("x-kangyi-department", "")
    scopes = " ".join(sorted(claims.get("x-kangyi-scopes", "").replace(",", " ").split()))
    expiry = int(((now or time.time()) + lifetime) * 1000)
    mac = signature(key, method.lstrip("/"), expiry, request_id, caller, department, scopes)
    signed = rest + [("x-kangyi-caller", caller)]
    if department:
        signed.append(("x-kangyi-department", department))
    if scopes:
        signed.append(("x-kangyi-scopes", scopes))
    return signed + [("x-kangyi-identity", f"v1.{expiry}.{mac}")]


class _Details(collections.namedtuple("_Details", "method timeout metadata credentials wait_for_ready compression"),
               grpc.ClientCallDetails):
    pass


class SigningInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                         grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Signs whatever identity claims a call's metadata carries, for the method it calls."""

    def __init__(self, key):
        self.key = key

    def _details(self, details):
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        return _Details(details.method, details.timeout, sign(details.metadata, method, self.key),
                        details.credentials, getattr(details, "wait_for_ready", None),
                        getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


def signing_channel(address, key):
    return grpc.intercept_channel(grpc.insecure_channel(address), SigningInterceptor(key))
