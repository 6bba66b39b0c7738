"""The deployment files checked as a platform team would use them.

Every overlay is rendered and validated strictly; every setting the manifests and the compose
file give a Rapport binary is one that binary declares (read from its own `--help`); the image
is built and run; the dev overlay is played with `podman kube play` and the compose stack is
brought up with podman-compose, and each passes the README's walk-through.

What this does not prove: there is no Kubernetes API server here, so the HPA, the
PodDisruptionBudgets, the NetworkPolicies and the native gRPC probes (and the console's HTTP
ones) are validated, not exercised (podman 4.3 runs no probes; readiness is checked by probing
each pod the way the probe would: the console by requesting its /healthz, then its pages).
Images for PostgreSQL, Redis and Jaeger are stand-ins built from this machine's packages
(`standins`), since no registry is reachable.
"""

import base64
import http.client
import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
DEPLOY = ROOT / "deploy"
OVERLAYS = ["dev", "prod"]
IMAGE = "localhost/rapport:dev"
KUBERNETES_VERSIONS = ["1.37.0", "1.34.0"]
ENV = {**os.environ, "CONTAINERS_CONF": str(Path(__file__).with_name("containers.conf"))}
# The services and the ports the deployment files give them.
PORTS = {"ingestion": 7401, "scoring": 7402, "segmentation": 7403, "alerting": 7404}
SERVICES = list(PORTS)
# The console: web pages over HTTP (not gRPC), a client of the four services.
CONSOLE = "rapport-console"
CONSOLE_PORT = 7400
# The README walk-through's key (the development key of the dev overlay and compose.yaml).
API_KEY = "rapport-dev-key"


def run(*args, check=True, timeout=300, **kw):
    """Runs a command, returning its completed process; fails the test with its output."""
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=ENV, timeout=timeout, **kw
    )
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def render(overlay):
    """The overlay's objects, as `kubectl kustomize` renders them."""
    out = run("kubectl", "kustomize", DEPLOY / "k8s" / "overlays" / overlay).stdout
    return [d for d in yaml.safe_load_all(out) if d]


# ---------------------------------------------------------------------------------------
# What the binaries accept, read from themselves.


class Accepted:
    """The flags and environment variables a binary declares in its `--help`, with defaults."""

    def __init__(self, binary):
        text = run(TARGET / binary, "--help").stdout
        self.flags = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", text, re.M))
        self.env = set(re.findall(r"\[env: ([A-Z0-9_]+)=", text))
        self.defaults = {}
        # `--help` puts both on one line, or (long help) each on its own.
        for m in re.finditer(r"\[env: ([A-Z0-9_]+)=[^\]]*\]\s+\[default: ([^\]]*)\]", text):
            self.defaults[m.group(1)] = m.group(2)


_accepted = {}


def accepted(binary):
    if binary not in _accepted:
        _accepted[binary] = Accepted(binary)
    return _accepted[binary]


def ours(container):
    """The binary a container runs, when it is one of Rapport's."""
    command = (container.get("command") or [""])[0]
    return command if command.startswith("rapport") else None


def test_help_declares_what_the_services_read():
    # The check below is only as good as this: the variables read outside flags are declared.
    for service in ["ingestion", "scoring", "segmentation", "alerting"]:
        env = accepted(f"rapport-{service}").env
        assert {"RUST_LOG", "RAPPORT_LOG_JSON", "OTEL_EXPORTER_OTLP_ENDPOINT", "DATABASE_URL"} <= env
        assert f"RAPPORT_{service.upper()}_LISTEN" in env
    assert "REDIS_URL" in accepted("rapport-scoring").env
    assert "REDIS_URL" not in accepted("rapport-ingestion").env
    console = accepted(CONSOLE).env
    assert {"RUST_LOG", "RAPPORT_LOG_JSON", "OTEL_EXPORTER_OTLP_ENDPOINT", "RAPPORT_CONSOLE_LISTEN",
            "RAPPORT_INGESTION_ADDR", "RAPPORT_SCORING_ADDR", "RAPPORT_SEGMENTATION_ADDR",
            "RAPPORT_ALERTING_ADDR"} <= console
    # It owns no tables and serves no metrics: no database URL or Secret, no scrape annotations.
    assert not {"DATABASE_URL", "RAPPORT_METRICS_LISTEN"} & console


# ---------------------------------------------------------------------------------------
# The manifests, statically.


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_strictly(overlay, version):
    rendered = run("kubectl", "kustomize", DEPLOY / "k8s" / "overlays" / overlay).stdout
    done = run(
        ROOT / ".venv" / "bin" / "kubernetes-validate", "--strict", "--quiet", "-k", version, "-",
        input=rendered, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "ConfigMap", "NetworkPolicy"} <= kinds


def objects(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def keys_of(source):
    return set(source.get("data") or {}) | set(source.get("stringData") or {})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_in_the_manifests_is_one_the_binaries_accept(overlay):
    docs = render(overlay)
    maps, secrets = objects(docs, "ConfigMap"), objects(docs, "Secret")
    services = objects(docs, "Service")
    shared = {}  # a ConfigMap or Secret given whole (envFrom) -> the binaries reading it
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    checked = 0
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            binary = ours(container)
            if binary is None:
                continue
            checked += 1
            known = accepted(binary)
            where = f"{overlay}: {deployment['metadata']['name']}/{container['name']}"
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            for name in env:
                assert name in known.env, f"{where}: {binary} does not read {name}"
            for flag in container.get("args", []):
                if flag.startswith("--"):
                    assert flag.split("=")[0] in known.flags, f"{where}: {binary} has no {flag}"
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                shared.setdefault(ref["name"], set()).add(binary)
                found = maps.get(ref["name"]) or secrets.get(ref["name"]) or {}
                env.update((k, (found.get("data") or {}).get(k)) for k in keys_of(found))
            # The port it listens on is the one declared, probed and served.
            listen = next(v for k, v in env.items() if k.endswith("_LISTEN") and k in known.env)
            port = int(listen.rsplit(":", 1)[1])
            assert listen.startswith("0.0.0.0:"), f"{where}: listens on {listen}, not every interface"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            serving = [s for s in services.values()
                       if s["spec"].get("selector", {}).items() <= labels.items()]
            assert serving, f"{where}: no Service selects it"
            # The peers it calls are Services, on ports they serve.
            for name, value in env.items():
                if name.endswith("_ADDR") and name in known.env and value:
                    host, _, peer_port = value.rpartition(":")
                    assert host in services, f"{where}: {name}={value} names no Service"
                    served = [p["port"] for p in services[host]["spec"]["ports"]]
                    assert int(peer_port) in served, f"{where}: {name}={value}"
            pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            if binary == CONSOLE:
                # HTTP pages: probed on /healthz, behind a regular ClusterIP Service (the ingress
                # in front balances requests); no metrics, no database, so no Secret.
                assert port == CONSOLE_PORT and ports == {"http": port}, where
                for probe in ("readinessProbe", "livenessProbe"):
                    assert container[probe]["httpGet"] == {"path": "/healthz", "port": port}, f"{where}: {probe}"
                annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
                assert not any(k.startswith("prometheus.io/") for k in annotations), where
                assert not any("secretRef" in source for source in container.get("envFrom", [])), where
                for service in serving:
                    assert service["spec"].get("type", "ClusterIP") == "ClusterIP", where
                    assert service["spec"].get("clusterIP") != "None", f"{where}: headless"
                    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("http", port)], where
                # The grace period covers preStop and the page loads in flight, with a margin.
                assert pod["terminationGracePeriodSeconds"] >= pre_stop + 10, where
            else:
                assert ports["grpc"] == port, where
                for probe in ("readinessProbe", "livenessProbe"):
                    assert container[probe]["grpc"]["port"] == port, f"{where}: {probe}"
                metrics = env.get("RAPPORT_METRICS_LISTEN")
                assert metrics and int(metrics.rsplit(":", 1)[1]) == ports["metrics"], where
                annotations = deployment["spec"]["template"]["metadata"]["annotations"]
                assert int(annotations["prometheus.io/port"]) == ports["metrics"], where
                for service in serving:
                    assert service["spec"]["clusterIP"] == "None", f"{where}: not headless"
                    assert [p["port"] for p in service["spec"]["ports"]] == [port], where
                # The grace period covers the drain: preStop, the pause, in-flight calls, 5 s.
                pause = int(env.get("RAPPORT_DRAIN_PAUSE_SECS") or known.defaults["RAPPORT_DRAIN_PAUSE_SECS"])
                timeout = int(env.get("RAPPORT_DRAIN_TIMEOUT_SECS") or known.defaults["RAPPORT_DRAIN_TIMEOUT_SECS"])
                assert pod["terminationGracePeriodSeconds"] >= pre_stop + pause + timeout + 5, where
            # Files it is told to read are in a volume it mounts.
            mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            for name, value in env.items():
                if value and value.startswith("/etc/rapport/"):
                    volume = next(n for n, m in mounts.items() if value.startswith(m + "/"))
                    config = maps[volumes[volume]["configMap"]["name"]]
                    assert value.rsplit("/", 1)[1] in config["data"], f"{where}: {value} missing"
            # Locked down as the image allows.
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
            assert security["capabilities"]["drop"] == ["ALL"]
            assert pod["securityContext"]["runAsNonRoot"], where
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"):
                assert key in labels, f"{where}: no {key} label"
    assert checked == 5
    # A ConfigMap or Secret given whole holds only settings some binary reading it accepts.
    for name, binaries in shared.items():
        source = maps.get(name) or secrets.get(name)
        if source is None:
            assert overlay == "prod" and name == "rapport-secrets", f"{overlay}: {name} missing"
            continue
        for key in keys_of(source):
            assert any(key in accepted(b).env for b in binaries), f"{overlay}: {name}.{key} is read by none of {sorted(binaries)}"


def test_the_shipped_rules_are_the_built_in_ones():
    rules = DEPLOY / "k8s" / "base" / "rules"
    domain = ROOT / "crates" / "domain"
    assert (rules / "scorecard.toml").read_text() == (domain / "scorecard.toml").read_text()
    assert (rules / "alerting.toml").read_text() == (domain / "alerting.toml").read_text()


def compose():
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def env_file(path):
    return {
        k: v for k, v in (
            line.split("=", 1) for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
    }


def test_every_setting_in_the_compose_file_is_one_the_binaries_accept():
    services = compose()["services"]
    shared = {}
    ours_ = 0
    for name, service in services.items():
        binary = (service.get("command") or [""])[0]
        if not binary.startswith("rapport"):
            continue
        ours_ += 1
        known = accepted(binary)
        for key in service.get("environment", {}):
            assert key in known.env, f"compose {name}: {binary} does not read {key}"
        for file in service.get("env_file", []):
            shared.setdefault(file, set()).add(binary)
        port = int(service["environment"][f"RAPPORT_{name.upper()}_LISTEN"].rsplit(":", 1)[1])
        if binary == CONSOLE:
            # HTTP: no `rapport probe` (gRPC) and no HTTP client in the image, so no healthcheck;
            # published on the loopback for the browser, and calling the services by name.
            assert port == CONSOLE_PORT and service["ports"] == [f"127.0.0.1:{port}:{port}"], name
            assert "env_file" not in service, f"compose {name}: given the services' secrets"
            for peer in ["scoring", "segmentation", "alerting"]:
                assert service["environment"][f"RAPPORT_{peer.upper()}_ADDR"] == f"{peer}:{PORTS[peer]}", name
                assert peer in service["depends_on"], name
            continue
        probe = service["healthcheck"]["test"]
        assert probe[1:3] == ["rapport", "probe"] and probe[3].endswith(f":{port}"), name
    assert ours_ == 5
    assert services["scoring"]["scale"] == 2
    for file, binaries in shared.items():
        for key in env_file(DEPLOY / file):
            assert any(key in accepted(b).env for b in binaries), f"{file}: {key} is read by no service"


# ---------------------------------------------------------------------------------------
# The image and the stand-ins, built here.


@pytest.fixture(scope="session")
def images():
    """Builds the image from cargo's debug binaries, and the stand-ins; maps the images the
    deployment files name to the ones to run here."""
    run(DEPLOY / "image" / "build", "--profile", "debug", "--tag", IMAGE, timeout=600)
    lines = run(Path(__file__).with_name("standins"), TARGET, timeout=600).stdout.split()
    return dict(line.split("=", 1) for line in lines)


def test_image_runs_each_binary_as_non_root_without_a_shell(images):
    info = json.loads(run("podman", "image", "inspect", IMAGE).stdout)[0]
    assert info["Config"]["User"] == "65532:65532"
    for binary in ["rapport", "rapport-ingestion", "rapport-scoring", "rapport-segmentation", "rapport-alerting",
                   "rapport-console"]:
        version = run("podman", "run", "--rm", "--read-only", "--cap-drop=ALL", IMAGE, binary, "--version")
        assert version.stdout.startswith(binary), version.stdout
    for shell in ["sh", "/bin/sh", "bash"]:
        assert run("podman", "run", "--rm", IMAGE, shell, "-c", "true", check=False).returncode != 0


class Network:
    """A podman network with DNS, removed (with everything on it) at the end."""

    def __init__(self):
        self.name = f"rapport-check-{uuid.uuid4().hex[:8]}"
        run("podman", "network", "create", self.name)

    def cli(self, *args, addrs, volumes=(), check=True):
        """Runs the `rapport` CLI from the image on this network."""
        flags = ["--rm", "--network", self.name, "-e", f"RAPPORT_API_KEY={API_KEY}"]
        for service, addr in addrs.items():
            flags += ["-e", f"RAPPORT_{service.upper()}_ADDR={addr}"]
        for v in volumes:
            flags += ["-v", v]
        return run("podman", "run", *flags, IMAGE, "rapport", *args, check=check)

    def probe(self, addr, wait=120):
        return self.cli("probe", addr, "--wait-secs", wait, addrs={}, check=False)

    @classmethod
    def existing(cls, name):
        """A network something else made (a compose project's)."""
        network = cls.__new__(cls)
        network.name = name
        return network

    def remove(self):
        run("podman", "network", "rm", "-f", self.name, check=False)


def walk_through(network, addrs):
    """The README walk-through's first steps: import the examples, read health, see alerts."""
    examples = f"{ROOT / 'examples'}:/examples:ro"
    imported = network.cli("import", "/examples/events.jsonl", addrs=addrs, volumes=[examples])
    assert "accepted 11" in imported.stdout and "rejected 3" in imported.stdout, imported.stdout
    deadline = time.monotonic() + 90
    while True:
        health = network.cli("health", "alice", "bob", "carol", "--json", addrs=addrs, check=False)
        alerts = network.cli("alerts", "--json", addrs=addrs, check=False)
        if health.returncode == 0 and alerts.returncode == 0 and "health_below" in alerts.stdout:
            break
        assert time.monotonic() < deadline, f"no health alert for bob:\n{health.stdout}{health.stderr}\n{alerts.stdout}{alerts.stderr}"
        time.sleep(2)
    scores = json.loads(health.stdout)
    assert len(scores) == 3, health.stdout
    bob_alerts = [a for a in json.loads(alerts.stdout) if a.get("customer_id") == "bob"]
    assert any(a.get("rule") == "health_below" for a in bob_alerts), alerts.stdout


def console_request(host, port, method, path, body=None, headers=None):
    """One HTTP request to the console (no proxy, no redirects): status, headers, body."""
    connection = http.client.HTTPConnection(host, port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode(errors="replace")
    finally:
        connection.close()


def console_walk_through(host, port, wait=120):
    """The console, as a browser reaches it: /healthz answers 200 "ok" (its probe), the
    README's sign-in with the development key works, and pages drawn from scoring,
    segmentation and alerting show the walk-through's customers and alert."""
    deadline = time.monotonic() + wait
    while True:
        try:
            status, _, body = console_request(host, port, "GET", "/healthz")
            if status == 200 and body.strip() == "ok":
                break
        except OSError as error:
            status, body = None, str(error)
        assert time.monotonic() < deadline, f"the console on {host}:{port} never became healthy: {status} {body}"
        time.sleep(1)
    form = urllib.parse.urlencode({"name": "Deploy Check", "key": API_KEY})
    status, headers, body = console_request(
        host, port, "POST", "/signin", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers.get("Set-Cookie"), f"sign-in: {status}\n{body[:2000]}"
    cookie = {"Cookie": headers["Set-Cookie"].split(";", 1)[0]}
    # The customer page's recent events come from ingestion: every service is reached.
    for path, shows in [("/customers", "bob"), ("/customers/bob", 'data-kind="survey"'),
                        ("/alerts", "health_below"), ("/segments", "Tiers and segments")]:
        status, _, body = console_request(host, port, "GET", path, headers=cookie)
        assert status == 200 and shows in body, f"console {path}: {status}\n{body[:2000]}"


def pod_address(pod):
    """The IP address of a played pod on its network (from its infra container)."""
    infra = run("podman", "pod", "inspect", pod, "--format", "{{.InfraContainerID}}").stdout.strip()
    address = run("podman", "inspect", infra, "--format",
                  "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}").stdout.strip()
    assert address, f"{pod} has no address"
    return address


def traced(container_logs):
    """The services whose spans reached the OTLP receiver, by trace."""
    traces = {}
    for m in re.finditer(r"span service=(\S+) name=\S+ trace=(\w+)", container_logs):
        traces.setdefault(m.group(2), set()).add(m.group(1))
    return traces


def wait_for_one_trace(jaeger, ingestion):
    """Waits until the Jaeger stand-in (container `jaeger`) holds a trace with spans of both
    ingestion and scoring; fails with both containers' logs after 90 s."""
    deadline = time.monotonic() + 90
    while True:
        spans = run("podman", "logs", jaeger, check=False).stdout
        if any({"rapport-ingestion", "rapport-scoring"} <= s for s in traced(spans).values()):
            return
        assert time.monotonic() < deadline, spans[-2000:] + container_log(ingestion)[-4000:]
        time.sleep(1)


def podman_secret(name, secret):
    """Creates the Secret as podman 4.3's kube play reads it: a JSON map of base64 values
    (kube play of a Secret object stores YAML that its own reader then refuses)."""
    data = dict(secret.get("data") or {})
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = base64.b64encode(value.encode()).decode()
    run("podman", "secret", "create", name, "-", input=json.dumps(data))


def test_dev_overlay_plays_with_podman_and_passes_the_walk_through(images, tmp_path):
    docs = render("dev")
    text = yaml.safe_dump_all(docs)
    for named, local in images.items():
        text = text.replace(f"image: {named}", f"image: {local}")
    docs = list(yaml.safe_load_all(text))
    secrets = objects(docs, "Secret")
    maps = [d for d in docs if d["kind"] == "ConfigMap"]
    services = objects(docs, "Service")
    network = Network()
    played, pods = [], []
    try:
        for name, secret in secrets.items():
            podman_secret(name, secret)
        # Each Deployment is played on its own, with its Service's name as a network alias:
        # the DNS name a headless Service gives, answering every replica's address.
        for deployment in (d for d in docs if d["kind"] == "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            alias = next(n for n, s in services.items() if s["spec"]["selector"].items() <= labels.items())
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            port = container["ports"][0]["containerPort"]
            # podman 4.3 publishes every containerPort on the host, where replicas (and every
            # service's metrics port) would collide; on the network they are reachable anyway.
            for c in deployment["spec"]["template"]["spec"]["containers"]:
                c.pop("ports", None)
            file = tmp_path / f"{deployment['metadata']['name']}.yaml"
            file.write_text(yaml.safe_dump_all(maps + [deployment]))
            run("podman", "kube", "play", "--network", f"{network.name}:alias={alias}", file, timeout=600)
            played.append(file)
            for i in range(deployment["spec"]["replicas"]):
                pods.append((f"{deployment['metadata']['name']}-pod-{i}", port, ours(container)))
        # Ready, each pod by itself, as its readiness probe asks (the console's is HTTP: it is
        # checked with its pages below).
        for pod, port, binary in pods:
            if binary and binary != CONSOLE:
                probe = network.probe(f"{pod}:{port}")
                assert probe.returncode == 0, f"{pod} never served:\n{probe.stderr}\n{logs(pod)}"
        walk_through(network, {s: f"rapport-{s}:{p}" for s, p in PORTS.items()})
        assert sum(1 for p, _, b in pods if b == "rapport-scoring") == 2
        consoles = [(pod, port) for pod, port, b in pods if b == CONSOLE]
        assert len(consoles) == 1, pods
        for pod, port in consoles:
            try:
                console_walk_through(pod_address(pod), port)
            except AssertionError as error:
                pytest.fail(f"{error}\n{logs(pod)}")
        wait_for_one_trace("jaeger-pod-0-jaeger", "rapport-ingestion-pod-0-ingestion")
    finally:
        for file in played:
            run("podman", "kube", "down", file, check=False)
        for name in secrets:
            run("podman", "secret", "rm", name, check=False)
        for config in maps:  # kube play makes a volume of each ConfigMap it mounts
            run("podman", "volume", "rm", "-f", config["metadata"]["name"], check=False)
        network.remove()


def container_log(name):
    """What a container wrote, standard output and error."""
    done = run("podman", "logs", name, check=False)
    return done.stdout + done.stderr


def logs(pod):
    """Everything the pod's containers wrote."""
    names = run("podman", "ps", "-a", "--filter", f"pod={pod}", "--format", "{{.Names}}", check=False).stdout.split()
    return "".join(container_log(n) for n in names if not n.endswith("-infra"))


def test_compose_stack_comes_up_and_passes_the_walk_through(images):
    project = f"rapport-check-{uuid.uuid4().hex[:8]}"
    env = {
        "RAPPORT_IMAGE": IMAGE,
        "POSTGRES_IMAGE": images["docker.io/library/postgres:15"],
        "REDIS_IMAGE": images["docker.io/library/redis:7"],
        "JAEGER_IMAGE": images["docker.io/jaegertracing/all-in-one:1.75.0"],
    }
    compose_cmd = [ROOT / ".venv" / "bin" / "podman-compose", "-p", project, "-f", DEPLOY / "compose.yaml"]
    ENV.update(env)
    try:
        run(*compose_cmd, "up", "-d", timeout=600)
        network = Network.existing(f"{project}_default")
        for service, port in PORTS.items():
            probe = network.probe(f"{service}:{port}")
            assert probe.returncode == 0, f"{service} never served: {probe.stderr}"
        for replica in (1, 2):
            assert network.probe(f"{project}_scoring_{replica}:7402").returncode == 0
        walk_through(network, {s: f"{s}:{p}" for s, p in PORTS.items()})
        # The console, on the port compose publishes for the browser.
        try:
            console_walk_through("127.0.0.1", CONSOLE_PORT)
        except AssertionError as error:
            pytest.fail(f"{error}\n{container_log(f'{project}_console_1')}")
        wait_for_one_trace(f"{project}_jaeger_1", f"{project}_ingestion_1")
        # SIGTERM: every service and the console, PID 1 in its container, drains and exits 0
        # by itself inside its grace period (podman would kill it at the end: exit 137).
        run(*compose_cmd, "stop", "-t", "30", "console", *SERVICES, timeout=300)
        states = run("podman", "ps", "-a", "--filter", f"label=io.podman.compose.project={project}",
                     "--format", "{{.Names}} {{.ExitCode}}").stdout
        exits = [line.rsplit(" ", 1) for line in states.splitlines()]
        exits = [(name, code) for name, code in exits if any(s in name for s in [*SERVICES, "console"])]
        assert len(exits) == 6 and all(code == "0" for _, code in exits), states
    finally:
        run(*compose_cmd, "down", "-v", "-t", "5", check=False, timeout=300)
        for key in env:
            ENV.pop(key, None)
