"""Offline checks of deploy/kubernetes: schemas, probes, ports, resources, autoscaling, configuration."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = PROJECT_ROOT / "deploy" / "kubernetes"
DEPLOY_README = PROJECT_ROOT / "README.md"
SERVICE_PORT = 3000
# Oldest Kubernetes release checked (autoscaling/v2 is GA since 1.23) and the newest
# whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
CONFIG_ENV_VARS = ("SECOM_MODEL_TAG", "SECOM_THRESHOLD", "SECOM_MAX_BODY_BYTES", "BENTOML_CONFIG_OVERRIDES")
# Binary and decimal suffixes of Kubernetes resource quantities (k8s.io/apimachinery
# resource.Quantity); exponent forms such as 1e3 are not used in these manifests.
QUANTITY_FACTORS = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "": 1,
}


def parse_quantity(text: str | int | float) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match and match.group(2) in QUANTITY_FACTORS, f"unsupported quantity {text!r}"
    return float(match.group(1)) * QUANTITY_FACTORS[match.group(2)]


def manifest_files() -> list[Path]:
    return sorted(path for path in MANIFEST_DIR.glob("*.yaml") if path.name != "kustomization.yaml")


def load_resources() -> dict[str, dict]:
    resources = {}
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                resources[document["kind"]] = document
    return resources


@pytest.fixture(scope="module")
def resources() -> dict[str, dict]:
    return load_resources()


@pytest.fixture(scope="module")
def container(resources) -> dict:
    containers = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_env(container: dict) -> dict[str, str]:
    return {entry["name"]: entry.get("value") for entry in container.get("env", [])}


def bentoml_service_names() -> set[str]:
    """Collect the ``name=`` of every ``@bentoml.service`` decorator in service.py."""
    tree = ast.parse((PROJECT_ROOT / "service.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "bentoml.service":
                    keywords = {keyword.arg: keyword.value for keyword in decorator.keywords}
                    names.add(ast.literal_eval(keywords["name"]) if "name" in keywords else node.name)
    return names


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.name)
def test_manifest_matches_schema(path, version):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_expected_kinds_present(resources):
    assert set(resources) == {"Deployment", "Service", "HorizontalPodAutoscaler"}


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((MANIFEST_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(path.name for path in manifest_files())


def test_container_port(container):
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": SERVICE_PORT}


@pytest.mark.parametrize(
    ("probe", "path"),
    [("readinessProbe", "/readyz"), ("livenessProbe", "/livez"), ("startupProbe", "/livez")],
)
def test_probe_targets_bentoml_endpoint(container, probe, path):
    http_get = container[probe]["httpGet"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert http_get["path"] == path
    assert ports.get(http_get["port"], http_get["port"]) == SERVICE_PORT


def test_resources_requests_within_limits(container):
    requests = container["resources"]["requests"]
    limits = container["resources"]["limits"]
    for resource in ("cpu", "memory"):
        assert parse_quantity(requests[resource]) <= parse_quantity(limits[resource]), resource


def test_pod_runs_as_non_root(resources, container):
    pod_security = resources["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_service_routes_to_container_port(resources, container):
    service = resources["Service"]
    pod_labels = resources["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {port["name"] for port in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names or port["targetPort"] == SERVICE_PORT


def test_deployment_selector_matches_pod_labels(resources):
    deployment = resources["Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_hpa_targets_deployment(resources):
    hpa = resources["HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert target["apiVersion"] == resources["Deployment"]["apiVersion"]
    assert target["kind"] == "Deployment"
    assert target["name"] == resources["Deployment"]["metadata"]["name"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_hpa_cpu_target_has_cpu_request(resources, container):
    # Utilization is a percentage of the request, so the HPA needs a CPU request.
    metrics = resources["HorizontalPodAutoscaler"]["spec"]["metrics"]
    cpu_metrics = [m for m in metrics if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu_metrics
    assert "cpu" in container["resources"]["requests"]


def test_model_tag_default(container):
    assert container_env(container)["SECOM_MODEL_TAG"] == "secom-lstm:latest"


def test_max_body_bytes_positive_integer(container):
    assert int(container_env(container)["SECOM_MAX_BODY_BYTES"]) > 0


def test_bentoml_overrides_name_real_services(container):
    overrides = json.loads(container_env(container)["BENTOML_CONFIG_OVERRIDES"])
    assert set(overrides["services"]) <= bentoml_service_names()
    for service_config in overrides["services"].values():
        assert service_config["workers"] >= 1


@pytest.mark.parametrize("name", CONFIG_ENV_VARS)
def test_readme_documents_env_var(name):
    assert name in DEPLOY_README.read_text()


@pytest.mark.parametrize("name", CONFIG_ENV_VARS)
def test_deployment_mentions_env_var(name):
    # SECOM_THRESHOLD is optional and stays commented out, so search the text.
    assert name in (MANIFEST_DIR / "deployment.yaml").read_text()


def test_readme_names_manifest_files():
    readme = DEPLOY_README.read_text()
    for path in [*manifest_files(), MANIFEST_DIR / "kustomization.yaml"]:
        assert path.name in readme, path.name
