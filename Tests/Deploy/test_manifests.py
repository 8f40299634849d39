"""The Kubernetes manifests, rendered the way a cluster gets them (`kubectl kustomize`, Debian's kubectl) and
checked offline: every standard object against the Kubernetes schemas (kubernetes-validate, strict), and
every service of `kangyi catalog` with its Deployment, Service, probes, ports, settings, secrets,
database role and network policy — and no pod that could run as root or write its root filesystem."""
import json
import os
import subprocess

import pytest
import yaml
import kubernetes_validate

from kangyi_testing import KANGYI, ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "production"]
# The oldest Kubernetes the manifests promise to run on (deploy/README.md) and the newest the validator knows.
VERSIONS = ["1.30.0", "1.37.0"]
# Custom resources: CloudNativePG and the Prometheus Operator; their operators validate them, this test
# checks what Kangyi relies on (below).
CUSTOM_KINDS = {"Cluster", "ScheduledBackup", "ServiceMonitor"}


@pytest.fixture(scope="module")
def catalog():
    return json.loads(subprocess.run([KANGYI, "catalog"], check=True, capture_output=True, text=True).stdout)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    if request.param == "dev":
        subprocess.run([K8S / "overlays" / "dev" / "secrets.sh"], check=True, capture_output=True)
    out = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / request.param)],
                         check=True, capture_output=True, text=True).stdout
    return request.param, [d for d in yaml.safe_load_all(out) if d]


def objects(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def test_every_object_is_valid_for_kubernetes(rendered):
    overlay, docs = rendered
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} on {version}: "
                            f"{error.message} at {list(error.path)}")


def test_every_service_has_its_deployment_service_probes_ports_and_settings(rendered, catalog):
    overlay, docs = rendered
    deployments, services, configs = objects(docs, "Deployment"), objects(docs, "Service"), objects(docs, "ConfigMap")
    settings = configs["kangyi-settings"]["data"]
    grace = int(settings["KANGYI_SHUTDOWN_GRACE_S"])
    assert set(deployments) == {s["name"] for s in catalog}, overlay
    for entry in catalog:
        name, port = entry["name"], entry["grpc_port"]
        pod = deployments[name]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"] == ["serve", name]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["grpc"] == port and ports["metrics"] == entry["metrics_port"]
        if entry.get("http_port"):
            assert ports["http"] == entry["http_port"] == int(settings["KANGYI_HTTP_PORT"])
        env = env_of(container)
        assert env["KANGYI_GRPC_PORT"]["value"] == str(port)
        assert {"configMapRef": {"name": "kangyi-settings"}} in container["envFrom"]
        assert env["KANGYI_IDENTITY_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kangyi-identity"
        assert env["DATABASE_USER"]["valueFrom"]["secretKeyRef"]["name"] == f"kangyi-db-{name}"
        assert env["KANGYI_DATABASE_URL"]["value"].startswith("postgres://$(DATABASE_USER):$(DATABASE_PASSWORD)@")
        if name == "tracing":
            assert {"KANGYI_PII_KEY", "KANGYI_PII_INDEX_KEY"} <= set(env)
        # gRPC health probes: start-up and liveness ask `liveness` (alive while it answers), readiness
        # asks "" (serving only while the database is reachable and no drain has begun).
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["grpc"]["port"] == port, (name, probe)
        assert container["livenessProbe"]["grpc"]["service"] == "liveness"
        assert container["startupProbe"]["grpc"]["service"] == "liveness"
        assert container["readinessProbe"]["grpc"].get("service", "") == ""
        pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert pod["terminationGracePeriodSeconds"] > pause + grace + 5, name
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
        strategy = deployments[name]["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0

        service = services[name]["spec"]
        grpc_port = next(p for p in service["ports"] if p["name"] == "grpc")
        assert grpc_port["port"] == port and grpc_port["targetPort"] == "grpc"
        assert grpc_port["appProtocol"] == "kubernetes.io/h2c"
        assert service["selector"] == {"app.kubernetes.io/name": name}
        for peer in entry["calls"]:
            peer_port = next(s["grpc_port"] for s in catalog if s["name"] == peer)
            assert settings[f"KANGYI_{peer.upper()}_ADDRESS"] == f"{peer}:{peer_port}", (name, peer)


def test_the_settings_are_ones_kangyi_accepts(rendered):
    _, docs = rendered
    settings = objects(docs, "ConfigMap")["kangyi-settings"]["data"]
    env = dict(os.environ, **settings, KANGYI_DATABASE_URL="postgres://nobody@127.0.0.1:1/nothing")
    # Accepted settings get as far as the absent database, which `kangyi migrate` then waits for.
    process = subprocess.Popen([KANGYI, "migrate"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = ""
    try:
        for line in process.stderr:
            stderr += line
            if "waiting for it" in line:
                break
    finally:
        process.kill()
        process.wait(timeout=10)
    assert "configuration:" not in stderr, stderr
    assert "the database cannot be reached yet" in stderr, stderr


def test_no_pod_runs_as_root_or_writes_its_root_filesystem(rendered):
    overlay, docs = rendered
    pods = [(d["kind"], d["metadata"]["name"], d["spec"]["template"]["spec"])
            for d in docs if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")]
    assert len(pods) >= 7
    for kind, name, pod in pods:
        context = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, (kind, name)
        assert not pod.get("hostNetwork") and not pod.get("hostPID")
        assert all("hostPath" not in v for v in pod.get("volumes", [])), (kind, name)
        for container in pod["containers"] + pod.get("initContainers", []):
            own = container.get("securityContext", {})
            assert own.get("runAsNonRoot", context.get("runAsNonRoot")) is True, (overlay, kind, name)
            assert own.get("runAsUser", context.get("runAsUser", 0)) != 0, (overlay, kind, name)
            assert own.get("readOnlyRootFilesystem") is True, (overlay, kind, name)
            assert own.get("allowPrivilegeEscalation") is False and not own.get("privileged")
            assert own.get("capabilities", {}).get("drop") == ["ALL"] and not own["capabilities"].get("add")
            seccomp = own.get("seccompProfile", context.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", (kind, name)


def test_only_the_gateway_is_exposed_and_backends_accept_only_their_callers(rendered, catalog):
    overlay, docs = rendered
    exposed = {path["backend"]["service"]["name"]
               for ingress in objects(docs, "Ingress").values() for rule in ingress["spec"]["rules"]
               for path in rule["http"]["paths"]}
    assert exposed == {s["name"] for s in catalog if s["faces_outside"]}
    assert all(ingress["spec"]["tls"] for ingress in objects(docs, "Ingress").values())
    assert all(s["spec"]["type"] == "ClusterIP" if "type" in s["spec"] else True for s in objects(docs, "Service").values())

    policies = objects(docs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for entry in catalog:
        if entry["faces_outside"]:
            continue
        callers = {s["name"] for s in catalog if entry["name"] in s["calls"]}
        policy = policies[entry["name"]]["spec"]
        assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": entry["name"]}}
        allowed = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                   for rule in policy["ingress"] for peer in rule["from"]}
        ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
        assert allowed == callers, (entry["name"], allowed, callers)
        assert ports == {entry["grpc_port"]}
    database = policies["database"]["spec"]
    clients = [peer for rule in database["ingress"] for peer in rule["from"] if "podSelector" in peer]
    assert {"matchLabels": {"kangyi.io/database-client": "true"}} in [c["podSelector"] for c in clients]
    labelled = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert all(d["spec"]["template"]["metadata"]["labels"].get("kangyi.io/database-client") == "true" for d in labelled)


def test_the_database_has_a_role_per_service_and_migrations_run_first(rendered, catalog):
    overlay, docs = rendered
    [cluster] = objects(docs, "Cluster").values()
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    for entry in catalog:
        role = roles[entry["database_role"]]
        assert role["login"] and not role.get("superuser") and not role.get("createrole")
        assert role["passwordSecret"]["name"] == f"kangyi-db-{entry['name']}"
    assert roles["kangyi"]["createrole"] and not roles["kangyi"].get("superuser")
    assert cluster["spec"]["bootstrap"]["initdb"]["owner"] == "kangyi"
    job = objects(docs, "Job")["kangyi-migrate"]["spec"]["template"]["spec"]
    [migrate] = job["containers"]
    assert migrate["args"] == ["migrate"]
    assert env_of(migrate)["DATABASE_USER"]["valueFrom"]["secretKeyRef"]["name"] == "kangyi-db-owner"
    monitor = objects(docs, "ServiceMonitor")["kangyi"]["spec"]
    assert monitor["endpoints"][0]["port"] == "metrics" and monitor["endpoints"][0]["path"] == "/metrics"
    if overlay == "production":
        assert cluster["spec"]["instances"] == 3 and cluster["spec"]["minSyncReplicas"] >= 1
        assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"]
        assert objects(docs, "ScheduledBackup")
    else:
        assert cluster["spec"]["instances"] == 1
        secrets = objects(docs, "Secret")
        assert {f"kangyi-db-{s['name']}" for s in catalog} | {"kangyi-identity", "kangyi-pii", "kangyi-db-owner"} <= set(secrets)


def test_production_survives_a_lost_node_and_scales(rendered, catalog):
    overlay, docs = rendered
    if overlay != "production":
        pytest.skip("production only")
    deployments = objects(docs, "Deployment")
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for b in objects(docs, "PodDisruptionBudget").values()}
    autoscaled = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in objects(docs, "HorizontalPodAutoscaler").values()}
    for entry in catalog:
        name = entry["name"]
        assert deployments[name]["spec"]["replicas"] >= 2
        assert name in budgets
        assert autoscaled[name]["minReplicas"] >= 2 and autoscaled[name]["metrics"][0]["resource"]["name"] == "cpu"
        spread = deployments[name]["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_every_pool_at_its_most_replicas_fits_the_database(rendered, catalog):
    overlay, docs = rendered
    deployments, settings = objects(docs, "Deployment"), objects(docs, "ConfigMap")["kangyi-settings"]["data"]
    autoscaled = {h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
                  for h in objects(docs, "HorizontalPodAutoscaler").values()}
    [cluster] = objects(docs, "Cluster").values()
    limits = {r["name"]: r.get("connectionLimit", -1) for r in cluster["spec"]["managed"]["roles"]}
    total = 0
    for entry in catalog:
        name = entry["name"]
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        pool = int(env_of(container).get("KANGYI_DB_POOL_SIZE", {}).get("value") or settings["KANGYI_DB_POOL_SIZE"])
        replicas = autoscaled.get(name, deployments[name]["spec"]["replicas"])
        # A replica also holds its health probe's connection and any pool of its own (intake's group
        # commit), and there is one more replica during a rollout's surge.
        needed = (replicas + 1) * (pool + 1 + entry["dedicated_connections"])
        limit = limits[entry["database_role"]]
        assert limit == -1 or needed <= limit, f"{overlay}: {name} may open {needed} connections, its role allows {limit}"
        total += needed
    total += 2 * max(10, limits.get("kangyi", 10))  # the migration Job and an operator's session, as the owner
    # PostgreSQL keeps superuser_reserved_connections (3) and CloudNativePG a few for itself.
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    assert total <= max_connections - 10, f"{overlay}: {total} connections at most, max_connections {max_connections}"
