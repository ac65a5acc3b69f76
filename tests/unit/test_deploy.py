"""The orchestrator files: deploy/k8s/ validates against the Kubernetes schemas (bundled by the
pinned kubernetes-validate, offline), and its pieces fit together; compose.yaml's Sentinel
profile monitors the primary with a quorum and points the system at every sentinel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import msgspec
import pytest
import yaml  # type: ignore[import-untyped]

from agentfield_arq.api.metrics import REDIS_LABEL, families
from agentfield_arq.core.metrics import BUCKETS_MS, Histogram, Snapshot
from agentfield_arq.core.sentinel import sentinel_address
from agentfield_arq.core.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
SETTINGS = {f"{ENV_PREFIX}{f.name.upper()}" for f in msgspec.structs.fields(Settings)}


def _manifests() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def _one(kind: str, name: str) -> dict[str, Any]:
    [found] = [m for m in _manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize(
    "manifest", _manifests(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}"
)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_every_setting_the_manifests_and_compose_set_exists() -> None:
    named: set[str] = set()
    for manifest in _manifests():
        if manifest["kind"] == "ConfigMap":
            named |= set(manifest["data"])
        if manifest["kind"] == "Deployment":
            for container in manifest["spec"]["template"]["spec"]["containers"]:
                named |= {e["name"] for e in container.get("env", [])}
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for service in services.values():
        named |= set(service.get("environment", {}))
    named = {name for name in named if name.startswith(ENV_PREFIX)}
    assert f"{ENV_PREFIX}REDIS_URL" in named
    assert named - SETTINGS == set()


def test_the_service_budgets_and_autoscaler_select_the_pods_of_their_deployment() -> None:
    def pods(name: str) -> dict[str, str]:
        labels: dict[str, str] = _one("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        return labels

    api, worker = pods("agentfield-arq-api"), pods("agentfield-arq-worker")
    assert _one("Service", "agentfield-arq-api")["spec"]["selector"] == api
    assert _one("PodDisruptionBudget", "agentfield-arq-api")["spec"]["selector"] == {
        "matchLabels": api
    }
    assert _one("PodDisruptionBudget", "agentfield-arq-worker")["spec"]["selector"] == {
        "matchLabels": worker
    }
    scaled = _one("HorizontalPodAutoscaler", "agentfield-arq-worker")["spec"]["scaleTargetRef"]
    assert (scaled["kind"], scaled["name"]) == ("Deployment", "agentfield-arq-worker")


def test_the_sentinel_profile_monitors_the_primary_and_the_system_reaches_every_sentinel() -> None:
    services: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    sentinels = {n for n, s in services.items() if n.startswith("sentinel-")}
    assert len(sentinels) == 3
    for name in [*sentinels, "redis-replica"]:
        assert services[name]["profiles"] == ["sentinel"]
    for name in sentinels:
        assert "sentinel monitor mymaster redis 6379 2" in services[name]["command"][-1]
    command = services["redis-replica"]["command"]
    assert command[command.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    env = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "compose" / "sentinel.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["COMPOSE_PROFILES"] == "sentinel"
    address = sentinel_address(env[f"{ENV_PREFIX}REDIS_URL"])
    assert address is not None
    assert {host for host, _ in address.sentinels} == sentinels
    assert address.service == "mymaster"


def test_the_autoscaler_scales_on_a_metric_the_api_serves_and_names_its_per_redis_label() -> None:
    hpa = _one("HorizontalPodAutoscaler", "agentfield-arq-worker")
    (metric,) = hpa["spec"]["metrics"]
    none = Histogram(buckets=dict.fromkeys([*map(str, BUCKETS_MS), "+Inf"], 0), sum_ms=0, count=0)
    snapshot = Snapshot(
        by_status={}, created={}, ended={}, wait=none, run=none, agent_calls={},
        webhook_attempts={}, webhook_dead=0, queue_jobs=0, queue_by_kind={"execution": 0},
        oldest_queued_s=0.0, workers_alive=0,
    )  # fmt: skip
    served = {family.name for family in families({"0": snapshot})}
    assert metric["external"]["metric"]["name"] in served
    comment = (K8S / "autoscaler.yaml").read_text()
    assert f'selector: {{matchLabels: {{{REDIS_LABEL}: "1"}}}}' in comment
