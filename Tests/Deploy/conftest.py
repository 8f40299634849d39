"""Deployment checks: the Citus plan against PostgreSQL's catalog, and the Kubernetes manifests rendered
and validated offline. They share the interop suite's helpers."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "Interop"))
