#!/usr/bin/env python3
"""Build the SECOM Bento into a container image, start it and call it inside the container.

The script runs ``bentoml build`` in the project root, checks that the Bento lists the
``secom-lstm`` model and runs ``bentoml containerize``. It then starts the image with no
network and no model store mounted, and calls ``/predict`` (real SECOM rows) and
``/metadata`` inside the running container with ``exec``. It prints the image size, the user
id the server runs as, the memory of the server's processes and both responses, and
writes them as JSON with ``--result-json``.

Two ways to build the image:

* Docker engine reachable (``docker info`` succeeds): plain ``bentoml containerize``,
  which pulls ``python:3.X-slim`` and installs the Bento's locked requirements from PyPI.
* Otherwise podman, for machines that reach PyPI and Debian's mirrors but no image
  registry. The script installs podman, runc and debootstrap with apt-get when they are
  missing, builds a Debian base image with debootstrap, downloads the Bento's locked
  requirements as wheels on the host and mounts them into an offline build
  (``network=none``). Base images and wheels are cached under ``--cache-dir``, keyed by
  the hash of what went into them, so a second run only rebuilds the Bento's own layers.

Exit status: 0 when every check passed, 1 when a check failed, 3 when no container
engine could be made to work (the JSON result then has ``engine_unavailable: true``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger("check_container")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "secom-lstm"
WINDOW_LENGTH = 10
N_FEATURES = 590
SERVICE_PORT = 3000

# uv version that BentoML 1.4.40's generated Dockerfile installs unless the base image
# already has it, at this version or newer.
UV_VERSION = "0.13.4"
DEBIAN_SUITE = "bookworm"
# Debian packages that the generated Dockerfile installs with apt-get, BentoML's default
# for distro "debian". The build is offline, so they must already be in the base image. Debian bookworm's
# python3 is 3.11, which is the only Python the base image can offer to `uv venv`.
DEBOOTSTRAP_PACKAGES = (
    "python3",
    "python3-pip",
    "python3-venv",
    "ca-certificates",
    "gnupg2",
    "bash",
    "build-essential",
    "git",
)
DEBIAN_PYTHON_VERSION = "3.11"
HOST_PACKAGES = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
# Bump when the way the cached base images are built changes, so old caches are not reused.
CACHE_FORMAT = "1"

# Runs inside the container with the image's Python: one HTTP request to the server on
# loopback, request and result as JSON on stdin and stdout.
IN_CONTAINER_REQUEST = r"""
import json, sys, urllib.error, urllib.request
spec = json.load(sys.stdin)
data = None if spec["body"] is None else json.dumps(spec["body"]).encode()
request = urllib.request.Request(
    "http://127.0.0.1:%d%s" % (spec["port"], spec["path"]),
    data=data, method=spec["method"], headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=spec["timeout"]) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
except OSError as error:
    print(json.dumps({"status": None, "error": repr(error)}))
    sys.exit(0)
print(json.dumps({"status": status, "body": body.decode("utf-8", "replace")}))
"""

# Runs inside the container: resident (RSS) and proportional (PSS) memory of every
# process, from /proc/PID/smaps_rollup in kB. PSS splits shared pages between the
# processes that map them, so its sum does not count the forked workers' shared pages twice.
IN_CONTAINER_MEMORY = r"""
import json, os
processes = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        with open("/proc/%s/smaps_rollup" % pid) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line and not line[0].isdigit())
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        continue
    processes.append({
        "pid": int(pid), "cmdline": cmdline[:160],
        "rss_kib": int(fields["Rss"].split()[0]), "pss_kib": int(fields["Pss"].split()[0])})
def read_first(*paths):
    for path in paths:
        try:
            with open(path) as f:
                return int(f.read())
        except (OSError, ValueError):
            pass
    return None
print(json.dumps({
    "processes": processes,
    "cgroup_bytes": read_first("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    "cgroup_peak_bytes": read_first("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"),
}))
"""


class CheckError(RuntimeError):
    """Failure of one step of the container check, with the value and the next action in its message."""


class EngineUnavailable(CheckError):
    """Neither a Docker engine nor podman can run containers on this machine."""


@dataclass
class Engine:
    """A container engine CLI with the environment it needs."""

    name: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        return [self.name, *args]

    def run(self, *args: str, timeout: float = 120, check: bool = True, input_text: str | None = None):
        return run(self.command(*args), env=self.env, timeout=timeout, check=check, input_text=input_text)


def run(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    check: bool = True,
    input_text: str | None = None,
    stream: bool = False,
) -> subprocess.CompletedProcess:
    """Run a command and raise CheckError with its output when it fails or times out.

    With ``stream`` the command's output goes to this process's stderr as it comes
    (long builds), otherwise it is captured and returned.
    """
    logger.debug("run: %s", " ".join(command))
    full_env = {**os.environ, **(env or {})}
    try:
        completed = subprocess.run(
            command,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            input=input_text,
            text=True,
            stdout=sys.stderr if stream else subprocess.PIPE,
            stderr=subprocess.STDOUT if not stream else None,
        )
    except subprocess.TimeoutExpired as error:
        raise CheckError(f"command timed out after {timeout:.0f} s: {' '.join(command)}") from error
    except FileNotFoundError as error:
        raise CheckError(f"command not found: {command[0]} (install it or fix PATH)") from error
    if check and completed.returncode != 0:
        tail = "" if stream else "\n" + (completed.stdout or "")[-4000:]
        raise CheckError(f"command failed with exit status {completed.returncode}: {' '.join(command)}{tail}")
    return completed


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------- input data


def load_secom_rows(archive: Path, start: int, count: int) -> list[list[float | None]]:
    """Read ``count`` rows of ``secom.data`` from the UCI archive, ``NaN`` as ``None``."""
    if not archive.is_file():
        raise CheckError(f"SECOM archive not found: {archive} (set SECOM_DATA or pass --data)")
    with zipfile.ZipFile(archive) as bundle:
        member = next((name for name in bundle.namelist() if name.endswith("secom.data")), None)
        if member is None:
            raise CheckError(f"no secom.data in {archive}: members are {bundle.namelist()}")
        lines = io.TextIOWrapper(bundle.open(member), encoding="ascii").read().splitlines()
    selected = lines[start : start + count]
    if len(selected) != count:
        raise CheckError(f"{archive} has {len(lines)} rows; rows {start}..{start + count - 1} requested")
    rows = []
    for offset, line in enumerate(selected):
        values = [None if token == "NaN" else float(token) for token in line.split()]
        if len(values) != N_FEATURES:
            raise CheckError(f"row {start + offset} of {member} has {len(values)} readings, expected {N_FEATURES}")
        rows.append(values)
    return rows


# ---------------------------------------------------------------- Bento


def bentoml_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bentoml", *args]


def build_bento(project_dir: Path) -> str:
    """Run ``bentoml build`` in the project root and return the new Bento's tag."""
    if not (project_dir / "bentofile.yaml").is_file():
        raise CheckError(f"no bentofile.yaml in {project_dir} (pass the project root with --project-dir)")
    logger.info("step: bentoml build in %s", project_dir)
    completed = run(bentoml_cli("build", "--output", "tag"), cwd=project_dir, timeout=600)
    match = re.search(r"__tag__:(\S+)", completed.stdout)
    if match is None:
        raise CheckError(
            f"bentoml build printed no __tag__ line (run `bentoml build` in {project_dir} to see why):\n"
            f"{completed.stdout[-4000:]}"
        )
    return match.group(1)


def bento_model_tags(bento_info: dict[str, Any]) -> list[str]:
    """List the model tags a Bento's ``bentoml get -o yaml`` record names.

    BentoML 1.4.40 lists a new-style service's models under ``services[].models`` and
    leaves the top-level ``models`` list empty for them, so both are read.
    """
    tags = [entry["tag"] for entry in bento_info.get("models") or []]
    for service in bento_info.get("services") or []:
        tags += [entry["tag"] for entry in service.get("models") or []]
    return sorted(set(tags))


def inspect_bento(tag: str) -> tuple[dict[str, Any], Path]:
    info = yaml.safe_load(run(bentoml_cli("get", tag, "-o", "yaml")).stdout)
    path = Path(run(bentoml_cli("get", tag, "-o", "path")).stdout.strip().splitlines()[-1])
    return info, path


# ---------------------------------------------------------------- engines


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def install_host_packages() -> None:
    """Install podman, runc and debootstrap with apt-get when any is missing (needs root)."""
    missing = [package for binary, package in HOST_PACKAGES.items() if shutil.which(binary) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise EngineUnavailable(
            f"missing {', '.join(missing)} and cannot install them (needs root and apt-get): "
            "install them or run on a machine with a Docker engine"
        )
    logger.info("step: apt-get install %s", " ".join(missing))
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "update", "-q"], env=apt_env, timeout=600)
        run(["apt-get", "install", "-y", "-q", *missing], env=apt_env, timeout=900)
    except CheckError as error:
        raise EngineUnavailable(f"apt-get could not install {', '.join(missing)}: {error}") from error


def configure_podman(cache_dir: Path) -> Engine:
    """Write a containers.conf and storage.conf for podman and check that podman runs with them.

    * runc with cgroupfs: crun fails under hybrid cgroups ("cgroups in hybrid mode not
      supported"), and cgroupfs needs no systemd.
    * default ulimits at the host's hard limit: podman's default of 1048576 open files
      is above the hard limit of some hosts, and setrlimit then fails.
    * its own image store under the cache directory, because the check tags its local
      base image with the public name the generated Dockerfile starts FROM, and that tag
      must not reach other podman users on the machine.
    """
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = "unlimited" if hard_nofile == resource.RLIM_INFINITY else str(hard_nofile)
    containers_conf = cache_dir / "containers.conf"
    containers_conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    storage_conf = cache_dir / "storage.conf"
    storage_conf.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{cache_dir / "storage"}"\n'
        f'runroot = "{cache_dir / "run"}"\n'
    )
    engine = Engine("podman", {"CONTAINERS_CONF": str(containers_conf), "CONTAINERS_STORAGE_CONF": str(storage_conf)})
    completed = engine.run("info", check=False, timeout=120)
    if completed.returncode != 0:
        raise EngineUnavailable(
            f"podman info failed with CONTAINERS_CONF={containers_conf} and CONTAINERS_STORAGE_CONF={storage_conf}; "
            f"run the same command to debug:\n{completed.stdout[-3000:]}"
        )
    return engine


def debian_mirror() -> str:
    """Return the Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        for stanza in deb822.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
            )
            suites = fields.get("Suites", "").split()
            if DEBIAN_SUITE in suites and "URIs" in fields:
                return fields["URIs"].split()[0]
    one_line = Path("/etc/apt/sources.list")
    if one_line.is_file():
        for line in one_line.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == DEBIAN_SUITE:
                return next(part for part in parts[1:] if part.startswith(("http", "file")))
    raise CheckError(f"no apt source for Debian {DEBIAN_SUITE} found in /etc/apt; cannot pick a mirror for debootstrap")


def ensure_rootfs_image(engine: Engine, cache_dir: Path) -> str:
    """Build (once) a minimal Debian image with debootstrap and import it into podman."""
    mirror = debian_mirror()
    key = sha256_text(CACHE_FORMAT, DEBIAN_SUITE, platform.machine(), *DEBOOTSTRAP_PACKAGES)[:16]
    image = f"localhost/secom-rootfs:{key}"
    if engine.run("image", "exists", image, check=False).returncode == 0:
        logger.info("step: reuse cached base image %s", image)
        return image
    logger.info("step: debootstrap %s from %s into %s (cold cache, 1 to 3 minutes)", DEBIAN_SUITE, mirror, image)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="rootfs-") as workdir:
        rootfs = Path(workdir) / "rootfs"
        run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(DEBOOTSTRAP_PACKAGES)}", DEBIAN_SUITE, str(rootfs), mirror],
            timeout=1200,
        )
        # The build has no network: an empty apt source list makes the Dockerfile's
        # `apt-get update` a no-op, and `apt-get install` then finds the packages installed.
        (rootfs / "etc/apt/sources.list").write_text("")
        for source in (rootfs / "etc/apt/sources.list.d").glob("*"):
            source.unlink()
        for cached in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            cached.unlink()
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            engine.command("import", "-", image), stdin=tar.stdout, env={**os.environ, **engine.env},
            capture_output=True, text=True, timeout=600,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise CheckError(f"podman import of {rootfs} failed: {imported.stdout[-2000:]}{imported.stderr[-2000:]}")
    return image


def locked_requirements(bento_path: Path) -> list[str]:
    """Return the Bento's locked requirement lines without index options."""
    path = bento_path / "env/python/requirements.txt"
    if not path.is_file():
        raise CheckError(f"Bento has no locked requirements at {path}")
    lines = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith(("--index-url", "--extra-index-url", "-i ")):
            continue
        lines.append(line)
    return lines


def ensure_wheelhouse(requirements: list[str], python_version: str, cache_dir: Path) -> Path:
    """Download the locked requirements and uv as wheels for the image's Python and CPU."""
    key = sha256_text(CACHE_FORMAT, python_version, platform.machine(), UV_VERSION, *requirements)[:16]
    wheelhouse = cache_dir / "wheels" / key
    if (wheelhouse / ".complete").is_file():
        logger.info("step: reuse cached wheels %s", wheelhouse)
        return wheelhouse
    logger.info("step: pip download %d locked requirements into %s", len(requirements), wheelhouse)
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    requirements_file = wheelhouse / "requirements.txt"
    requirements_file.write_text("\n".join([*requirements, f"uv=={UV_VERSION}"]) + "\n")
    # Debian bookworm has glibc 2.36, so every manylinux wheel up to glibc 2.36 runs in
    # the image, and pip needs each of those platform tags named.
    arch = platform.machine()
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 4, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    abi = "cp" + python_version.replace(".", "")
    run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--quiet", "--no-deps", "--only-binary=:all:",
            "--python-version", python_version, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none",
            *(option for name in platforms for option in ("--platform", name)),
            "--dest", str(wheelhouse), "-r", str(requirements_file),
        ],
        timeout=1200,
    )
    (wheelhouse / ".complete").write_text("")
    return wheelhouse


def ensure_uv_base_image(engine: Engine, rootfs_image: str, wheelhouse: Path, cache_dir: Path) -> str:
    """Build (once) the rootfs image with uv installed and uv set to install offline."""
    key = sha256_text(CACHE_FORMAT, rootfs_image, UV_VERSION)[:16]
    image = f"localhost/secom-uv-base:{key}"
    if engine.run("image", "exists", image, check=False).returncode == 0:
        logger.info("step: reuse cached base image %s", image)
        return image
    logger.info("step: build %s with uv %s", image, UV_VERSION)
    uv_wheels = sorted(wheelhouse.glob(f"uv-{UV_VERSION}-*.whl"))
    if not uv_wheels:
        raise CheckError(f"no uv {UV_VERSION} wheel in {wheelhouse}; delete that folder and rerun")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="uv-base-") as context:
        shutil.copy(uv_wheels[0], context)
        # UV_OFFLINE, not UV_NO_INDEX: the Bento's requirements.txt names --index-url,
        # which UV_NO_INDEX does not override. UV_NO_CACHE keeps uv's unpacked wheels
        # out of the image layer, as BentoML's cache mount does under BuildKit.
        (Path(context) / "Containerfile").write_text(
            f"FROM {rootfs_image}\n"
            "ENV UV_OFFLINE=1 UV_FIND_LINKS=/wheels UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 \\\n"
            "    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_INDEX=1\n"
            f"COPY {uv_wheels[0].name} /tmp/\n"
            f"RUN python3 -m pip install --no-cache-dir /tmp/{uv_wheels[0].name} && rm /tmp/{uv_wheels[0].name}\n"
        )
        engine.run("build", "--network=none", "--tag", image, context, timeout=600)
    return image


def containerize_with_podman(engine: Engine, tag: str, bento_path: Path, python_version: str, cache_dir: Path) -> str:
    dockerfile = (bento_path / "env/docker/Dockerfile").read_text()
    match = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    if match is None:
        raise CheckError(f"no FROM line in {bento_path / 'env/docker/Dockerfile'}")
    from_image = match.group(1)
    if python_version != DEBIAN_PYTHON_VERSION:
        raise CheckError(
            f"the Bento asks for Python {python_version}, but the offline base image has Debian "
            f"{DEBIAN_SUITE}'s Python {DEBIAN_PYTHON_VERSION}: set docker.python_version: "
            f'"{DEBIAN_PYTHON_VERSION}" in bentofile.yaml'
        )
    rootfs_image = ensure_rootfs_image(engine, cache_dir)
    wheelhouse = ensure_wheelhouse(locked_requirements(bento_path), python_version, cache_dir)
    uv_base = ensure_uv_base_image(engine, rootfs_image, wheelhouse, cache_dir)
    # The generated Dockerfile starts FROM a public image that cannot be pulled here, so
    # in this check's own image store that name points to the local base instead.
    engine.run("tag", uv_base, from_image)
    remove_older_bento_images(engine, tag)
    logger.info("step: bentoml containerize %s with podman (no network, wheels from %s)", tag, wheelhouse)
    run(
        bentoml_cli(
            "containerize", tag, "--backend", "podman",
            "--opt", "network=none", "--opt", f"volume={wheelhouse}:/wheels:ro",
        ),
        env=engine.env, timeout=1200, stream=True,
    )
    return image_name(tag)


def remove_older_bento_images(engine: Engine, tag: str) -> None:
    """Remove earlier runs' images of this Bento from the check's own store.

    The newest one stays: its layers are the build cache, so an unchanged
    requirements set skips the `uv pip install` layer on the next run.
    """
    name = tag.split(":")[0]
    listed = engine.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.CreatedAt}}",
                        "--filter", f"reference={name}").stdout.split("\n")
    images = sorted((line.split(" ", 1) for line in listed if line.strip()), key=lambda item: item[1], reverse=True)
    for image, _created in images[1:]:
        logger.info("step: remove older image %s", image)
        engine.run("rmi", image, check=False)


def image_name(bento_tag: str) -> str:
    return bento_tag if ":" in bento_tag else f"{bento_tag}:latest"


# ---------------------------------------------------------------- running container


def container_request(engine: Engine, container: str, method: str, path: str, body: Any = None,
                      timeout: float = 120) -> dict[str, Any]:
    spec = json.dumps({"port": SERVICE_PORT, "method": method, "path": path, "body": body, "timeout": timeout})
    completed = engine.run("exec", "-i", container, "python3", "-c", IN_CONTAINER_REQUEST,
                           input_text=spec, timeout=timeout + 30, check=False)
    if completed.returncode != 0:
        return {"status": None, "error": completed.stdout[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def container_running(engine: Engine, container: str) -> bool:
    completed = engine.run("inspect", "--format", "{{.State.Running}}", container, check=False)
    return completed.stdout.strip() == "true"


def wait_until_ready(engine: Engine, container: str, timeout: float) -> float:
    """Poll ``/readyz`` inside the container every 2 s and return the seconds until it returned 200."""
    started = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        if not container_running(engine, container):
            logs = engine.run("logs", container, check=False).stdout[-6000:]
            raise CheckError(f"container {container} exited before it was ready; its log ends:\n{logs}")
        last = container_request(engine, container, "GET", "/readyz", timeout=10)
        if last.get("status") == 200:
            return time.monotonic() - started
        time.sleep(2)
    logs = engine.run("logs", container, check=False).stdout[-6000:]
    raise CheckError(f"/readyz not 200 within {timeout:.0f} s (last: {last}); container log ends:\n{logs}")


def measure_memory(engine: Engine, container: str) -> dict[str, Any]:
    completed = engine.run("exec", container, "python3", "-c", IN_CONTAINER_MEMORY, check=False)
    if completed.returncode != 0:
        return {"error": completed.stdout[-2000:]}
    sample = json.loads(completed.stdout.strip().splitlines()[-1])
    processes = sample["processes"]

    def mebibytes(value: int | None) -> float | None:
        return None if value is None else round(value / 2**20, 1)

    return {
        "processes": processes,
        "rss_sum_mib": round(sum(entry["rss_kib"] for entry in processes) / 1024, 1),
        "pss_sum_mib": round(sum(entry["pss_kib"] for entry in processes) / 1024, 1),
        "cgroup_mib": mebibytes(sample["cgroup_bytes"]),
        "cgroup_peak_mib": mebibytes(sample["cgroup_peak_bytes"]),
    }


def exercise_container(engine: Engine, image: str, rows: list[list[float | None]],
                       bulk_rows: list[list[float | None]], ready_timeout: float, result: dict[str, Any]) -> None:
    """Start the image without network or mounts, call the service inside it, stop it.

    Memory is sampled after the first small request and again after ``bulk_rows``
    (when given) went through in one request, the largest load a sizing should cover.
    """
    container = f"secom-check-{os.getpid()}"
    result["container"] = container
    logger.info("step: %s run %s as %s (--network=none, no volumes)", engine.name, image, container)
    engine.run("run", "--detach", "--network=none", "--name", container, image, timeout=120)
    try:
        result["ready_seconds"] = round(wait_until_ready(engine, container, ready_timeout), 1)
        logger.info("step: /readyz returned 200 after %.1f s", result["ready_seconds"])
        result["uid"] = int(engine.run("exec", container, "id", "-u").stdout.strip())
        result["image_user"] = engine.run("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()

        logger.info("step: POST /predict with %d SECOM rows inside the container", len(rows))
        result["predict"] = container_request(engine, container, "POST", "/predict", {"instances": rows})
        logger.info("step: POST /metadata inside the container")
        result["metadata"] = container_request(engine, container, "POST", "/metadata", {})
        for name in ("predict", "metadata"):
            response = result[name]
            if response.get("status") == 200:
                response["json"] = json.loads(response.pop("body"))
        result["memory"] = {"after_predict": measure_memory(engine, container)}

        if bulk_rows:
            logger.info("step: POST /predict with %d SECOM rows in one request inside the container", len(bulk_rows))
            mark = time.monotonic()
            bulk = container_request(engine, container, "POST", "/predict", {"instances": bulk_rows}, timeout=300)
            result["bulk_predict"] = {
                "rows": len(bulk_rows),
                "status": bulk.get("status"),
                "seconds": round(time.monotonic() - mark, 2),
                "predictions": len(json.loads(bulk["body"])["predictions"]) if bulk.get("status") == 200 else None,
                "error": None if bulk.get("status") == 200 else (bulk.get("body") or bulk.get("error", ""))[:2000],
            }
            result["memory"]["after_bulk_predict"] = measure_memory(engine, container)
        result["log_tail"] = engine.run("logs", container, check=False).stdout[-3000:]
    finally:
        engine.run("rm", "--force", container, check=False, timeout=120)


def image_size_bytes(engine: Engine, image: str) -> int:
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


# ---------------------------------------------------------------- checks


def verify(result: dict[str, Any], n_rows: int) -> list[str]:
    """Return a message per failed check of a run, or an empty list when all passed."""
    failures = []
    if not any(tag.split(":")[0] == MODEL_NAME for tag in result["bento_models"]):
        failures.append(f"Bento {result['bento_tag']} lists no {MODEL_NAME} model: {result['bento_models']}")
    if result.get("uid") in (None, 0):
        failures.append(f"server runs as uid {result.get('uid')}, expected a non-root user")
    predict = result.get("predict", {})
    if predict.get("status") != 200:
        failures.append(f"/predict returned {predict.get('status')}: {predict.get('body') or predict.get('error')}")
    else:
        predictions = predict["json"].get("predictions", [])
        expected = n_rows - WINDOW_LENGTH + 1
        if len(predictions) != expected:
            failures.append(f"/predict returned {len(predictions)} predictions for {n_rows} rows, expected {expected}")
        bad = [p for p in predictions if not 0.0 <= float(p.get("probability", -1)) <= 1.0]
        if bad:
            failures.append(f"/predict returned probabilities outside [0, 1]: {bad}")
    bulk = result.get("bulk_predict")
    if bulk is not None:
        expected = bulk["rows"] - WINDOW_LENGTH + 1
        if bulk["status"] != 200:
            failures.append(f"/predict with {bulk['rows']} rows returned {bulk['status']}: {bulk['error']}")
        elif bulk["predictions"] != expected:
            failures.append(f"/predict returned {bulk['predictions']} predictions for {bulk['rows']} rows, expected {expected}")
    metadata = result.get("metadata", {})
    if metadata.get("status") != 200:
        failures.append(f"/metadata returned {metadata.get('status')}: {metadata.get('body') or metadata.get('error')}")
    elif not str(metadata["json"].get("model_tag", "")).startswith(f"{MODEL_NAME}:"):
        failures.append(f"/metadata model_tag is {metadata['json'].get('model_tag')!r}, expected {MODEL_NAME}:<version>")
    return failures


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "secom-container-check"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, default=PROJECT_ROOT,
                        help="project root with bentofile.yaml (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=os.environ.get("SECOM_DATA"),
                        help="UCI SECOM zip archive (default: $SECOM_DATA)")
    parser.add_argument("--start-row", type=int, default=0, help="first secom.data row sent to /predict")
    parser.add_argument("--rows", type=int, default=12,
                        help=f"number of rows sent to /predict, at least {WINDOW_LENGTH} (default: %(default)s)")
    parser.add_argument("--bulk-rows", type=int, default=1567,
                        help="rows, from row 0, sent in one more /predict request before memory is "
                             "measured again; 0 skips it (default: %(default)s, the whole data set)")
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("SECOM_CONTAINER_CACHE") or default_cache_dir()),
                        help="podman image store, base images and wheels kept between runs "
                             "(default: $SECOM_CONTAINER_CACHE or %(default)s)")
    parser.add_argument("--engine", choices=("auto", "docker", "podman"), default="auto",
                        help="auto: docker when `docker info` succeeds, else podman (default: %(default)s)")
    parser.add_argument("--ready-timeout", type=float, default=300, help="seconds to wait for /readyz")
    parser.add_argument("--remove-image", action="store_true",
                        help="remove the Bento's image after the check; by default it stays as the "
                             "layer cache of the next run (podman removes older images of the Bento)")
    parser.add_argument("--result-json", type=Path, help="write the result as JSON to this file")
    parser.add_argument("--verbose", action="store_true", help="log every command")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("no SECOM archive: set SECOM_DATA or pass --data")
    if args.bulk_rows and args.bulk_rows < WINDOW_LENGTH:
        parser.error(f"--bulk-rows must be 0 or at least {WINDOW_LENGTH}, got {args.bulk_rows}")
    if args.rows < WINDOW_LENGTH:
        parser.error(f"--rows must be at least {WINDOW_LENGTH}, got {args.rows}")
    return args


def check(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Run every step, filling ``result`` as it goes so a failed run still reports its progress."""
    timings: dict[str, float] = {}
    result["timings_seconds"] = timings
    started = time.monotonic()
    rows = load_secom_rows(args.data, args.start_row, args.rows)
    bulk_rows = load_secom_rows(args.data, 0, args.bulk_rows) if args.bulk_rows else []
    result["rows"] = {"start": args.start_row, "count": args.rows}

    mark = time.monotonic()
    tag = build_bento(args.project_dir.resolve())
    bento_info, bento_path = inspect_bento(tag)
    timings["bento_build"] = round(time.monotonic() - mark, 1)
    result["bento_tag"] = tag
    result["bento_models"] = bento_model_tags(bento_info)
    logger.info("step: Bento %s lists models %s", tag, result["bento_models"])

    engine_name = args.engine
    if engine_name == "auto":
        engine_name = "docker" if docker_available() else "podman"
    result["engine"] = engine_name
    mark = time.monotonic()
    if engine_name == "docker":
        # NOTE: untested, because no Docker engine was reachable where this check was
        # written; only the podman path has run.
        engine = Engine("docker")
        logger.info("step: bentoml containerize %s with the Docker engine", tag)
        run(bentoml_cli("containerize", tag), timeout=1800, stream=True)
        image = image_name(tag)
    else:
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        install_host_packages()
        engine = configure_podman(args.cache_dir)
        python_version = str((bento_info.get("image") or {}).get("python_version") or DEBIAN_PYTHON_VERSION)
        image = containerize_with_podman(engine, tag, bento_path, python_version, args.cache_dir)
    timings["containerize"] = round(time.monotonic() - mark, 1)
    result["image"] = image
    result["image_size_bytes"] = image_size_bytes(engine, image)

    mark = time.monotonic()
    try:
        exercise_container(engine, image, rows, bulk_rows, args.ready_timeout, result)
    finally:
        timings["run_and_call"] = round(time.monotonic() - mark, 1)
        if args.remove_image:
            engine.run("rmi", image, check=False)
    timings["total"] = round(time.monotonic() - started, 1)
    result["failures"] = verify(result, len(rows))
    result["ok"] = not result["failures"]


def summarize_response(response: dict[str, Any]) -> dict[str, Any]:
    """Shorten a response for the console: long lists become their length and first items."""
    if "json" not in response:
        return response
    summary = {}
    for key, value in response["json"].items():
        if isinstance(value, list) and len(value) > 5 and key != "predictions":
            summary[key] = f"<{len(value)} items: {', '.join(map(str, value[:3]))}, ...>"
        else:
            summary[key] = value
    return summary


def report(result: dict[str, Any]) -> None:
    """Print the figures a reader checks first, then the responses."""
    size = result.get("image_size_bytes")
    print(f"engine:           {result.get('engine')}")
    print(f"bento:            {result.get('bento_tag')} (models: {', '.join(result.get('bento_models', []))})")
    if size is not None:
        print(f"image:            {result.get('image')} {size / 1e6:.0f} MB ({size} bytes)")
    print(f"uid in container: {result.get('uid')} (image user {result.get('image_user')!r})")
    print(f"ready after:      {result.get('ready_seconds')} s")
    for moment, memory in result.get("memory", {}).items():
        if "rss_sum_mib" in memory:
            print(f"memory {moment}: RSS sum {memory['rss_sum_mib']} MiB, PSS sum {memory['pss_sum_mib']} MiB, "
                  f"cgroup {memory['cgroup_mib']} MiB (peak {memory['cgroup_peak_mib']} MiB), "
                  f"{len(memory['processes'])} processes")
    if "bulk_predict" in result:
        print(f"bulk predict:     {json.dumps(result['bulk_predict'])}")
    print(f"timings (s):      {json.dumps(result.get('timings_seconds', {}))}")
    for name in ("predict", "metadata"):
        response = result.get(name, {})
        print(f"{name}: HTTP {response.get('status')}")
        print(json.dumps(summarize_response(response), indent=2)[:6000])
    for failure in result.get("failures", []):
        print(f"FAILED: {failure}")
    if result.get("error"):
        print(f"FAILED: {result['error']}")
    print("container check passed" if result.get("ok") else "container check failed")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result: dict[str, Any] = {"ok": False}
    try:
        check(args, result)
        status = 0 if result["ok"] else 1
    except EngineUnavailable as error:
        logger.error("no container engine: %s", error)
        result.update(engine_unavailable=True, error=str(error))
        status = 3
    except CheckError as error:
        logger.error("%s", error)
        result["error"] = str(error)
        status = 1
    if args.result_json:
        args.result_json.write_text(json.dumps(result, indent=2))
    report(result)
    return status


if __name__ == "__main__":
    sys.exit(main())
