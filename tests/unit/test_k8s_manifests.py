"""The cluster rung: deploy/k8s is valid Kubernetes (the schemas kubernetes-validate ships,
offline), wired to the ports and settings the code uses, and its Kafka topics are the ones
runtime.adapters.topics declares. The overlays are rendered with `kubectl kustomize` when
kubectl is installed."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from runtime.adapters.settings import Settings
from runtime.adapters.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = ("dev", "prod")
SERVICE_MONITOR = K8S / "components" / "service-monitor"
# Oldest Kubernetes the manifests promise to run on (native gRPC probes are GA since 1.27).
KUBERNETES_VERSION = "1.32"
SERVICES = ("booth", "expo", "warehouse", "bureau", "notify")
# The bureau runs exactly one replica (base/bureau.yaml says why): no HPA.
SCALED = ("booth", "expo", "warehouse", "notify")
KUSTOMIZE_KINDS = {"Kustomization", "Component"}
MONGODB_SECRET = "chuhai-mongodb"
SMTP_SECRET = "chuhai-smtp"
IMAGE_UID = 10001


Document = dict[str, Any]


def load_documents(text: str) -> list[Document]:
    return [doc for doc in YAML(typ="safe").load_all(text) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def base_documents() -> list[Document]:
    kustomization = load_documents((BASE / "kustomization.yaml").read_text())[0]
    return [
        doc
        for resource in kustomization["resources"]
        for doc in load_documents((BASE / resource).read_text())
    ]


def find(documents: list[Document], kind: str, name: str) -> Document:
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def kinds_named(documents: list[Document], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in documents if d["kind"] == kind}


def setting_default(field: str) -> Any:
    return Settings.model_fields[field].default


def grpc_port(service: str) -> int:
    return setting_default(f"{service}_grpc_port")


def metrics_port(service: str) -> int:
    return setting_default(f"{service}_metrics_port")


def container(deployment: Document) -> Document:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def validate_kubernetes(doc: Document) -> None:
    """Strict: an unknown or misspelt field fails too, not only a wrong type."""
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(p) for p in error.path)
        problem = f"{error.message} at {where}"
    else:
        return
    pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {problem}")


def literals(entries: list[str]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in entries)


def generator_literals(kustomization: Document, key: str, name: str) -> dict[str, str]:
    (generator,) = [g for g in kustomization.get(key, []) if g["name"] == name]
    return literals(generator["literals"])


# --- every file ----------------------------------------------------------------------


def check_kafka_topic(doc: Document) -> None:
    assert doc["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert doc["metadata"]["labels"]["strimzi.io/cluster"]
    spec = doc["spec"]
    assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1
    assert isinstance(spec["replicas"], int) and spec["replicas"] >= 1
    assert all(isinstance(v, str) for v in spec["config"].values())


def check_service_monitor(doc: Document) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["spec"]["selector"]["matchLabels"]
    for endpoint in doc["spec"]["endpoints"]:
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


CUSTOM_RESOURCE_CHECKS = {"KafkaTopic": check_kafka_topic, "ServiceMonitor": check_service_monitor}


def check_kustomization(path: Path, doc: Document) -> None:
    assert doc["apiVersion"].startswith("kustomize.config.k8s.io/")
    for entry in (*doc.get("resources", []), *doc.get("components", [])):
        assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"


def check_document(path: Path, doc: Document) -> None:
    kind = doc["kind"]
    if kind in KUSTOMIZE_KINDS:
        check_kustomization(path, doc)
    elif kind in CUSTOM_RESOURCE_CHECKS:
        # No schema ships for custom resources; these checks stand in for one.
        CUSTOM_RESOURCE_CHECKS[kind](doc)
    else:
        validate_kubernetes(doc)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_validates(path: Path) -> None:
    documents = load_documents(path.read_text())
    assert documents, f"{path} holds no document"
    for doc in documents:
        check_document(path, doc)


def test_secrets_are_placeholders_or_dev_only() -> None:
    secrets = [
        (path, doc)
        for path in manifest_files()
        for doc in load_documents(path.read_text())
        if doc["kind"] == "Secret"
    ]
    assert secrets, "the prod Secret template is missing"
    referenced = {
        (path.parent / entry).resolve()
        for path in manifest_files()
        if path.name == "kustomization.yaml"
        for entry in load_documents(path.read_text())[0].get("resources", [])
    }
    for path, secret in secrets:
        # A template: never applied, no encoded (real-looking) data, only placeholders.
        assert path.resolve() not in referenced, f"{path} must not be applied by kustomize"
        assert "data" not in secret
        assert all(re.search(r"<[a-z0-9-]+>", v) for v in secret["stringData"].values())
    # The dev Secret is generated from a value that holds no credentials.
    dev = load_documents((K8S / "overlays" / "dev" / "kustomization.yaml").read_text())[0]
    uri = generator_literals(dev, "secretGenerator", MONGODB_SECRET)["MONGODB_URI"]
    assert uri.startswith("mongodb://") and "@" not in uri


# --- the Kafka topics ----------------------------------------------------------------


def load_topics_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_topics", ROOT / "scripts" / "k8s_topics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kafka_topics_file_is_what_the_script_generates_now() -> None:
    committed = (BASE / "kafka-topics.yaml").read_text()
    assert committed == load_topics_script().render_topics(), (
        "deploy/k8s/base/kafka-topics.yaml is stale: run .venv/bin/python scripts/k8s_topics.py"
    )


def test_kafka_topics_are_the_declared_topics() -> None:
    documents = load_documents((BASE / "kafka-topics.yaml").read_text())
    by_name = {doc["spec"]["topicName"]: doc for doc in documents}
    assert len(by_name) == len(documents) == len(ALL_TOPICS)
    for topic in ALL_TOPICS:
        doc = by_name[topic.name]
        assert doc["kind"] == "KafkaTopic"
        assert doc["apiVersion"] == "kafka.strimzi.io/v1beta2"
        # A valid Kubernetes object name (DNS subdomain).
        assert re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", doc["metadata"]["name"])
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "chuhai"
        assert doc["spec"]["partitions"] == topic.partitions
        assert doc["spec"]["config"] == topic.configs()
        assert doc["spec"]["replicas"] == 3


def test_topics_script_writes_and_checks(tmp_path: Path) -> None:
    script = load_topics_script()
    output = tmp_path / "topics.yaml"
    assert script.main(["--output", str(output), "--check"]) == 1
    assert script.main(["--output", str(output), "--replicas", "1", "--cluster", "k"]) == 0
    documents = load_documents(output.read_text())
    assert {d["spec"]["replicas"] for d in documents} == {1}
    assert {d["metadata"]["labels"]["strimzi.io/cluster"] for d in documents} == {"k"}
    # Stale against the defaults, current against the arguments it was written with.
    assert script.main(["--output", str(output), "--check"]) == 1
    written_with = ["--replicas", "1", "--cluster", "k"]
    assert script.main(["--output", str(output), "--check", *written_with]) == 0


# --- the base, as written --------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> list[Document]:
    return base_documents()


def dockerfile_uid() -> int:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    user = re.search(r"--uid (\d+)", text)
    assert user, "deploy/Dockerfile creates no user with a fixed uid"
    uid = int(user.group(1))
    assert re.search(rf"^USER {uid}\b", text, re.MULTILINE)
    return uid


@pytest.mark.parametrize("name", SERVICES)
def test_deployment_runs_the_image_as_its_user(base: list[Document], name: str) -> None:
    deployment = find(base, "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert main["image"] == "chuhai"
    assert main["command"] == ["python", "-m", name]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID == dockerfile_uid()
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= main["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= main["resources"]["limits"].keys()
    assert main["envFrom"] == [{"configMapRef": {"name": "chuhai-config"}}]
    (mongodb,) = [e for e in main["env"] if e["name"] == "MONGODB_URI"]
    assert mongodb["valueFrom"]["secretKeyRef"] == {"name": MONGODB_SECRET, "key": "MONGODB_URI"}


@pytest.mark.parametrize("name", SERVICES)
def test_probes_speak_grpc_health_on_the_grpc_port(base: list[Document], name: str) -> None:
    main = container(find(base, "Deployment", name))
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports["grpc"] == grpc_port(name)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert main[probe]["grpc"] == {"port": grpc_port(name), "service": ""}, probe
    # The startup probe waits longer than liveness would (slow MongoDB connects).
    startup, liveness = main["startupProbe"], main["livenessProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert startup["periodSeconds"] * startup["failureThreshold"] > (
        liveness["periodSeconds"] * liveness["failureThreshold"]
    )


@pytest.mark.parametrize("name", SERVICES)
def test_metrics_are_annotated_and_exposed(base: list[Document], name: str) -> None:
    deployment = find(base, "Deployment", name)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port(name)),
        "prometheus.io/path": "/metrics",
    }
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert ports["metrics"] == metrics_port(name)


@pytest.mark.parametrize("name", SERVICES)
def test_service_selects_the_pods_and_exposes_their_ports(base: list[Document], name: str) -> None:
    deployment = find(base, "Deployment", name)
    service = find(base, "Service", name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container_ports = {p["name"] for p in container(deployment)["ports"]}
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == container_ports
    expected = {"grpc": grpc_port(name), "metrics": metrics_port(name)}
    if name == "bureau":
        expected["http"] = setting_default("bureau_web_port")
    assert ports == expected
    budget = find(base, "PodDisruptionBudget", name)
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("name", SCALED)
def test_domain_services_scale_on_cpu(base: list[Document], name: str) -> None:
    autoscaler = find(base, "HorizontalPodAutoscaler", name)
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    # The HPA owns the count: a replicas field would be reset by every `kubectl apply`.
    assert "replicas" not in find(base, "Deployment", name)["spec"]


def test_the_bureau_runs_exactly_one_replica(base: list[Document]) -> None:
    assert "bureau" not in kinds_named(base, "HorizontalPodAutoscaler")
    bureau = find(base, "Deployment", "bureau")
    assert bureau["spec"]["replicas"] == 1
    # Never two consumers of the bureau's group at once, not even during a rollout.
    assert bureau["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"]: e.get("value") for e in container(bureau)["env"]}
    assert env["BUREAU_WEB_HOST"] == "0.0.0.0"


def test_notify_gets_its_smtp_server_from_the_config_and_its_password_from_a_secret(
    base: list[Document],
) -> None:
    kustomization = load_documents((BASE / "kustomization.yaml").read_text())[0]
    config = generator_literals(kustomization, "configMapGenerator", "chuhai-config")
    assert config["NOTIFY_GRPC_TARGET"] == f"notify:{grpc_port('notify')}"
    assert "SMTP_PASSWORD" not in config
    for name in SERVICES:
        env = {e["name"]: e for e in container(find(base, "Deployment", name))["env"]}
        if name != "notify":
            assert "SMTP_PASSWORD" not in env, name
            continue
        # Optional: a server without login (the dev overlay's catcher) needs no Secret.
        assert env["SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": SMTP_SECRET,
            "key": "SMTP_PASSWORD",
            "optional": True,
        }
    overlays = {
        name: generator_literals(kustomization, "configMapGenerator", "chuhai-config")
        for name, kustomization in zip(OVERLAYS, iter_overlay_kustomizations(), strict=True)
    }
    # Each overlay names its server: dev a catcher without TLS, prod the bureau's.
    assert overlays["dev"]["SMTP_HOST"] == "mailpit"
    assert overlays["dev"]["SMTP_STARTTLS"] == "false"
    assert overlays["prod"]["SMTP_HOST"] and "SMTP_STARTTLS" not in overlays["prod"]
    assert config["SMTP_STARTTLS"] == "true"
    template = load_documents((K8S / "overlays" / "prod" / "smtp-secret.template.yaml").read_text())
    assert set(find(template, "Secret", SMTP_SECRET)["stringData"]) == {"SMTP_PASSWORD"}


def env_secret_names() -> set[str]:
    """The Secrets the services read variables from (others are mounted as files)."""
    return {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in base_documents()
        if d["kind"] == "Deployment"
        for e in container(d)["env"]
        if "valueFrom" in e
    }


def manifest_env_names() -> set[str]:
    base_kustomization = load_documents((BASE / "kustomization.yaml").read_text())[0]
    names = set(generator_literals(base_kustomization, "configMapGenerator", "chuhai-config"))
    for deployment in (d for d in base_documents() if d["kind"] == "Deployment"):
        names |= {e["name"] for e in container(deployment)["env"]}
    for path in manifest_files():
        for doc in load_documents(path.read_text()):
            if doc["kind"] == "Secret" and doc["metadata"]["name"] in env_secret_names():
                names |= set(doc["stringData"])
            if doc["kind"] in KUSTOMIZE_KINDS:
                for generator in (
                    *doc.get("configMapGenerator", []),
                    *doc.get("secretGenerator", []),
                ):
                    names |= set(literals(generator.get("literals", [])))
    return names


def test_every_env_var_is_a_setting() -> None:
    names = manifest_env_names()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "GRPC_HOST", "METRICS_HOST"} <= names
    unknown = {name for name in names if name.lower() not in Settings.model_fields}
    assert not unknown, f"not fields of runtime.adapters.settings.Settings: {sorted(unknown)}"


def test_config_listens_everywhere_and_targets_the_services() -> None:
    kustomization = load_documents((BASE / "kustomization.yaml").read_text())[0]
    config = generator_literals(kustomization, "configMapGenerator", "chuhai-config")
    assert config["GRPC_HOST"] == config["METRICS_HOST"] == "0.0.0.0"
    for name in SERVICES:
        assert config[f"{name.upper()}_GRPC_TARGET"] == f"{name}:{grpc_port(name)}"
    # Strimzi names the bootstrap Service of Kafka "chuhai" like this.
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "chuhai-kafka-bootstrap:9092"


SERVICE_KEY_SECRET = "chuhai-service-key"
SERVICE_KEYS_CONFIG_MAP = "chuhai-service-keys"
KEYS_TEMPLATE = K8S / "overlays" / "prod" / "service-keys.template.yaml"


def mounted_file(deployment: Document, path: str) -> tuple[Document, str]:
    """The pod volume that holds ``path`` in the container, and the key it comes from."""
    main = container(deployment)
    (mount,) = [m for m in main["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    file_name = path.removeprefix(mount["mountPath"] + "/")
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    source = volume.get("secret") or volume["configMap"]
    (item,) = [i for i in source["items"] if i["path"] == file_name]
    return volume, item["key"]


@pytest.mark.parametrize("name", SERVICES)
def test_services_read_their_key_and_the_service_key_set_from_mounts(
    base: list[Document], name: str
) -> None:
    kustomization = load_documents((BASE / "kustomization.yaml").read_text())[0]
    config = generator_literals(kustomization, "configMapGenerator", "chuhai-config")
    deployment = find(base, "Deployment", name)
    key_volume, key = mounted_file(deployment, config["AUTH_SERVICE_KEY_FILE"])
    assert key_volume["secret"]["secretName"] == SERVICE_KEY_SECRET
    assert key == "signing-key.pem"
    # Readable by the image's user through its group, by nobody else.
    assert key_volume["secret"]["defaultMode"] == 0o440
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["fsGroup"] == IMAGE_UID
    keys_volume, key_set = mounted_file(deployment, config["AUTH_JWKS_FILE"])
    assert keys_volume["configMap"]["name"] == SERVICE_KEYS_CONFIG_MAP
    assert key_set == "jwks.json"
    assert config["AUTH_SERVICE_ISSUER"] == setting_default("auth_service_issuer")
    assert config["AUTH_AUDIENCE"] == setting_default("auth_audience")


def test_the_key_templates_name_what_the_pods_mount() -> None:
    documents = load_documents(KEYS_TEMPLATE.read_text())
    secret = find(documents, "Secret", SERVICE_KEY_SECRET)
    assert set(secret["stringData"]) == {"signing-key.pem"}
    config_map = find(documents, "ConfigMap", SERVICE_KEYS_CONFIG_MAP)
    assert set(config_map["data"]) == {"jwks.json"}
    assert re.search(r"<[a-z0-9-]+>", config_map["data"]["jwks.json"])


# --- the overlays, rendered ------------------------------------------------------------


def kustomize(directory: Path) -> list[Document]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not on PATH: the overlays are not rendered (`kubectl kustomize`); "
            "install kubectl to run these tests"
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Document]]:
    """Each overlay as `kubectl apply -k` would send it."""
    return {name: kustomize(K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture
def dev(rendered: dict[str, list[Document]]) -> list[Document]:
    return rendered["dev"]


@pytest.fixture
def prod(rendered: dict[str, list[Document]]) -> list[Document]:
    return rendered["prod"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_renders_every_service_and_validates(
    rendered: dict[str, list[Document]], name: str
) -> None:
    documents = rendered[name]
    for doc in documents:
        check_document(K8S / "overlays" / name, doc)
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert kinds_named(documents, kind) == set(SERVICES), kind
    assert kinds_named(documents, "HorizontalPodAutoscaler") == set(SCALED)
    assert len([d for d in documents if d["kind"] == "KafkaTopic"]) == len(ALL_TOPICS)
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    for service in SERVICES:
        deployment = find(documents, "Deployment", service)
        main = container(deployment)
        # The generated ConfigMap's hashed name reaches every pod.
        assert main["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(metrics_port(service))
        assert main["readinessProbe"]["grpc"]["port"] == grpc_port(service)


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    parsed = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    assert parsed, f"memory {quantity} is not in Ki, Mi or Gi"
    return int(parsed.group(1)) * units[parsed.group(2)]


def image_tags(documents: list[Document]) -> set[str]:
    return {container(d)["image"].rsplit(":", 1)[1] for d in documents if d["kind"] == "Deployment"}


def mongodb_secret_refs(documents: list[Document]) -> set[str]:
    return {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in documents
        if d["kind"] == "Deployment"
        for e in container(d)["env"]
        if e["name"] == "MONGODB_URI"
    }


def test_dev_is_small_single_replica_with_a_generated_secret(dev: list[Document]) -> None:
    assert {d["metadata"].get("namespace") for d in dev} == {"chuhai-dev"}
    assert image_tags(dev) == {"dev"}
    for name in SCALED:
        assert find(dev, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] == 1
    assert find(dev, "Deployment", "bureau")["spec"]["replicas"] == 1
    assert {d["spec"]["replicas"] for d in dev if d["kind"] == "KafkaTopic"} == {1}
    (secret,) = [d for d in dev if d["kind"] == "Secret"]
    assert mongodb_secret_refs(dev) == {secret["metadata"]["name"]}
    # No identity provider: the key pair's own key set (a file) verifies every token.
    (config,) = [d for d in dev if d["kind"] == "ConfigMap"]
    assert config["data"]["AUTH_ISSUER"] == "chuhai-development"
    assert "AUTH_JWKS_URL" not in config["data"]


def test_prod_is_replicated_larger_and_expects_its_secret(
    dev: list[Document], prod: list[Document]
) -> None:
    assert {d["metadata"].get("namespace") for d in prod} == {"chuhai"}
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image_tags(prod) == {version}
    for name in SCALED:
        spec = find(prod, "HorizontalPodAutoscaler", name)["spec"]
        assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
    assert find(prod, "Deployment", "bureau")["spec"]["replicas"] == 1
    for name in SERVICES:
        prod_memory = container(find(prod, "Deployment", name))["resources"]["limits"]["memory"]
        dev_memory = container(find(dev, "Deployment", name))["resources"]["limits"]["memory"]
        assert memory_bytes(prod_memory) > memory_bytes(dev_memory), name
    for topic in (d for d in prod if d["kind"] == "KafkaTopic"):
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == "2"
    # The operator creates the Secrets: the overlay renders none and refers to their names.
    assert not [d for d in prod if d["kind"] == "Secret"]
    assert mongodb_secret_refs(prod) == {MONGODB_SECRET}
    notify_env = container(find(prod, "Deployment", "notify"))["env"]
    (smtp,) = [e for e in notify_env if e["name"] == "SMTP_PASSWORD"]
    assert smtp["valueFrom"]["secretKeyRef"]["name"] == SMTP_SECRET
    # People's tokens come from the bureau's identity provider, over HTTPS.
    (config,) = [d for d in prod if d["kind"] == "ConfigMap"]
    assert config["data"]["AUTH_JWKS_URL"].startswith("https://")
    assert config["data"]["AUTH_ISSUER"] != setting_default("auth_issuer")
    for name in SERVICES:
        volumes = find(prod, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        secrets = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        assert secrets == {SERVICE_KEY_SECRET}


def test_service_monitor_component_renders_on_the_base(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        # kustomize takes only relative paths.
        f"resources: [{os.path.relpath(BASE, tmp_path)}]\n"
        f"components: [{os.path.relpath(SERVICE_MONITOR, tmp_path)}]\n"
    )
    documents = kustomize(tmp_path)
    (monitor,) = [d for d in documents if d["kind"] == "ServiceMonitor"]
    check_service_monitor(monitor)
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        d
        for d in documents
        if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
    ]
    assert {d["metadata"]["name"] for d in selected} == set(SERVICES)
    for service in selected:
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}


def iter_overlay_kustomizations() -> Iterator[Document]:
    for name in OVERLAYS:
        yield load_documents((K8S / "overlays" / name / "kustomization.yaml").read_text())[0]


def test_overlays_leave_the_service_monitor_optional() -> None:
    # Clusters without the Prometheus operator's CRDs must still apply every overlay.
    for kustomization in iter_overlay_kustomizations():
        assert "components" not in kustomization
    assert "ServiceMonitor" not in {d["kind"] for d in base_documents()}
