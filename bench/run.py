"""Benchmark the BentoML service against the FastAPI baseline it replaces, in one run.

Starts ``bentoml serve service:SecomLSTM`` and ``bench/baseline_server.py`` on
free loopback ports, measures the bare compiled model without HTTP, drives
both servers with the same locust load, prints the tables and optionally
writes them to a Markdown page.

    python bench/run.py --data /path/to/secom.zip --markdown docs/benchmarks.md

The model comes from the BentoML model store ($BENTOML_HOME): create one with
``python import_model.py`` first.
"""

from __future__ import annotations

# locust patches the standard library for gevent on import, so it comes first.
import load  # noqa: I001

import argparse
import datetime as dt
import io
import json
import logging
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from urllib3 import encode_multipart_formdata

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from secom.data import DATA_ENV_VAR, load_secom  # noqa: E402
from secom.store import configured_model_tag  # noqa: E402

logger = logging.getLogger("bench.run")

WINDOW_LENGTH = 10
BULK_ROWS = 1000
BULK_WINDOWS = BULK_ROWS - WINDOW_LENGTH + 1
SINGLE_CONCURRENCY = (1, 8, 32, 64)
BULK_CONCURRENCY = 4
# Distinct 10-row slices sent in turn by the single-window phases.
SINGLE_BODIES = 64
READY_TIMEOUT_SECONDS = 240.0
STOP_TIMEOUT_SECONDS = 20.0
OURS = "secom (BentoML)"
BASELINE = "baseline (FastAPI)"


# -- payloads -------------------------------------------------------------------


def json_body(rows: np.ndarray) -> bytes:
    instances = [[None if np.isnan(value) else value for value in row] for row in rows.tolist()]
    return json.dumps({"instances": instances}).encode()


def npy_bytes(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(rows, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def npy_multipart(rows: np.ndarray) -> tuple[bytes, str]:
    """Encode rows as the multipart upload that ``bentoml.SyncHTTPClient`` sends for a ``Path`` argument."""
    return encode_multipart_formdata({"readings": ("rows.npy", npy_bytes(rows), "application/octet-stream")})


@dataclass(frozen=True)
class Workloads:
    single_json: load.Request
    bulk_json: load.Request
    bulk_npy: load.Request


def build_workloads(readings: np.ndarray) -> Workloads:
    step = (len(readings) - WINDOW_LENGTH) // SINGLE_BODIES
    singles = tuple(json_body(readings[i * step : i * step + WINDOW_LENGTH]) for i in range(SINGLE_BODIES))
    bulk_rows = readings[:BULK_ROWS]
    multipart, content_type = npy_multipart(bulk_rows)
    return Workloads(
        single_json=load.Request("/predict", singles, "application/json", 1),
        bulk_json=load.Request("/predict", (json_body(bulk_rows),), "application/json", BULK_WINDOWS),
        bulk_npy=load.Request("/predict_array", (multipart,), content_type, BULK_WINDOWS),
    )


# -- servers --------------------------------------------------------------------


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str
    log_path: Path
    cold_start_seconds: float = float("nan")
    processes_after_load: int = 0

    def resident_bytes(self) -> int:
        """Resident memory of the server process and all its descendants.

        Pages shared between processes (the Python runtime, TensorFlow's
        libraries) are counted once per process, so this is an upper bound.
        """
        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def process_count(self) -> int:
        try:
            return 1 + len(psutil.Process(self.process.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return 0

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # The server was started in its own session, so its process group
        # contains exactly the processes it spawned.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s of SIGTERM; sending SIGKILL", self.name, STOP_TIMEOUT_SECONDS)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_server(name: str, command: list[str], port: int, env: dict[str, str], log_dir: Path) -> Server:
    """Start a server and wait until GET /readyz returns 200; the wait is its cold start."""
    log_path = log_dir / f"{name.split()[0]}.log"
    logger.info("Starting %s: %s", name, shlex.join(command))
    start = time.monotonic()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log_path)
    while time.monotonic() - start < READY_TIMEOUT_SECONDS:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready; see {log_path}")
        try:
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as response:
                if response.status == 200:
                    server.cold_start_seconds = time.monotonic() - start
                    logger.info("%s ready after %.1f s", name, server.cold_start_seconds)
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT_SECONDS:.0f} s; see {log_path}")


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def probabilities(document: dict) -> np.ndarray:
    return np.asarray([p["probability"] for p in document["predictions"]])


def check_agreement(ours: Server, baseline: Server, workloads: Workloads, readings: np.ndarray) -> list[str]:
    """Check that both servers and both input formats return the same probabilities for the same rows."""
    notes = []
    body = workloads.bulk_json.bodies[0]
    status_ours, doc_ours = post(ours.url + "/predict", body, "application/json")
    status_base, doc_base = post(baseline.url + "/predict", body, "application/json")
    if status_ours != 200 or status_base != 200:
        raise RuntimeError(f"bulk JSON check failed: HTTP {status_ours} from {OURS}, {status_base} from {BASELINE}")
    difference = np.max(np.abs(probabilities(doc_ours) - probabilities(doc_base)))
    notes.append(f"Largest probability difference, {OURS} vs {BASELINE}, over {BULK_WINDOWS} windows: {difference:.2e}")

    import bentoml  # imported late: bentoml's import is slow and only this check needs it

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rows.npy"
        path.write_bytes(npy_bytes(readings[:BULK_ROWS]))
        with bentoml.SyncHTTPClient(ours.url, timeout=60) as client:
            doc_array = client.predict_array(readings=path)
    difference = np.max(np.abs(probabilities(doc_ours) - probabilities(doc_array)))
    notes.append(f"Largest probability difference, /predict (JSON) vs /predict_array (.npy via bentoml.SyncHTTPClient): {difference:.2e}")
    return notes


# -- measurement ----------------------------------------------------------------


def _run_ceiling(data: str, model_tag: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, str(REPO_ROOT / "bench" / "ceiling.py"), "--data", data, "--model-tag", model_tag, *extra]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ceiling_result(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=300)
    if process.returncode != 0:
        raise RuntimeError(f"bench/ceiling.py failed with code {process.returncode}:\n{stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def measure_ceiling(data: str, model_tag: str) -> dict:
    """Measure the bare model two ways and keep the faster as the ceiling.

    One process with TensorFlow's default threads, and one process per CPU
    with one thread each, measuring the same seconds (the layout the service
    runs in: XLA's compiled LSTM uses about one core per call).
    """
    single = _ceiling_result(_run_ceiling(data, model_tag))
    n_processes = os.cpu_count() or 1
    # Loading TensorFlow and compiling every batch size takes about 15 s per process.
    start_at = f"{time.time() + 45:.3f}"
    processes = [_run_ceiling(data, model_tag, "--threads", "1", "--start-at", start_at) for _ in range(n_processes)]
    parallel = [_ceiling_result(process) for process in processes]
    parallel_rate = sum(result["windows_per_second"] for result in parallel)
    ceiling = dict(single)
    ceiling["single_process_windows_per_second"] = single["windows_per_second"]
    ceiling["parallel_windows_per_second"] = parallel_rate
    ceiling["parallel_processes"] = n_processes
    ceiling["windows_per_second"] = max(single["windows_per_second"], parallel_rate)
    return ceiling


@dataclass(frozen=True)
class Row:
    workload: str
    users: int
    server: str
    result: load.PhaseResult


def run_phases(
    plan: list[tuple[str, load.Request, int, list[Server]]], seconds: float, max_requests: int
) -> list[Row]:
    rows = []
    for workload, request, users, servers in plan:
        for server in servers:
            logger.info("Load: %s, %d users, %s", workload, users, server.name)
            result = load.run_phase(server.url, request, users=users, max_seconds=seconds, max_requests=max_requests)
            logger.info(
                "  %.1f requests/s, %.0f windows/s, p50 %.0f ms, p99 %.0f ms, %d errors %s",
                result.requests_per_second,
                result.windows_per_second,
                result.p50_ms,
                result.p99_ms,
                result.failures,
                result.status_counts or "",
            )
            rows.append(Row(workload, users, server.name, result))
    return rows


# -- report ---------------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"


def format_load_table(rows: list[Row]) -> str:
    lines = [
        "| Workload | Users | Server | Requests/s | Windows/s | p50 ms | p95 ms | p99 ms | Errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for index, row in enumerate(rows):
        r = row.result
        errors = str(r.failures) + (f" ({', '.join(f'{n} x {s}' for s, n in r.status_counts.items())})" if r.status_counts else "")
        lines.append(
            f"| {row.workload} | {row.users} | {row.server} | {r.requests_per_second:.1f} | {r.windows_per_second:,.0f} "
            f"| {r.p50_ms:.0f} | {r.p95_ms:.0f} | {r.p99_ms:.0f} | {errors} |"
        )
        previous = rows[index - 1] if index else None
        if row.server == BASELINE and previous is not None and previous.server == OURS:
            o, b = previous.result, r
            lines.append(
                f"| | | ratio ours / baseline | {ratio(o.requests_per_second, b.requests_per_second)} "
                f"| {ratio(o.windows_per_second, b.windows_per_second)} | {ratio(o.p50_ms, b.p50_ms)} "
                f"| {ratio(o.p95_ms, b.p95_ms)} | {ratio(o.p99_ms, b.p99_ms)} | |"
            )
    return "\n".join(lines)


def find(rows: list[Row], workload: str, users: int, server: str) -> load.PhaseResult:
    return next(r.result for r in rows if r.workload == workload and r.users == users and r.server == server)


def format_targets(rows: list[Row], ceiling: dict) -> tuple[str, str]:
    """Return the ceiling comparison and the pass/fail list of the targets, both as Markdown."""
    limit = ceiling["windows_per_second"]
    bulk_json = find(rows, f"{BULK_ROWS} rows, JSON", BULK_CONCURRENCY, OURS)
    bulk_npy = find(rows, f"{BULK_ROWS} rows, .npy", BULK_CONCURRENCY, OURS)
    ceiling_lines = [
        "| Measurement | Windows/s | Fraction of ceiling |",
        "|---|---:|---:|",
        f"| Bare compiled model, batches of {ceiling['batch_windows']}, no HTTP, one process, TensorFlow's default threads "
        f"| {ceiling['single_process_windows_per_second']:,.0f} | {ceiling['single_process_windows_per_second'] / limit:.2f} |",
        f"| Bare compiled model, batches of {ceiling['batch_windows']}, no HTTP, {ceiling['parallel_processes']} processes "
        f"of one thread at once | {ceiling['parallel_windows_per_second']:,.0f} | "
        f"{ceiling['parallel_windows_per_second'] / limit:.2f} |",
        f"| {OURS}, {BULK_ROWS} rows per request, JSON, {BULK_CONCURRENCY} users | {bulk_json.windows_per_second:,.0f} | {bulk_json.windows_per_second / limit:.2f} |",
        f"| {OURS}, {BULK_ROWS} rows per request, .npy, {BULK_CONCURRENCY} users | {bulk_npy.windows_per_second:,.0f} | {bulk_npy.windows_per_second / limit:.2f} |",
        "",
        f"One window in process: {ceiling['compiled_one_window_ms']:.2f} ms through the compiled call, "
        f"{ceiling['predict_one_window_ms']:.1f} ms through `keras.Model.predict` (medians).",
    ]

    ours32 = find(rows, "1 window, JSON", 32, OURS)
    base32 = find(rows, "1 window, JSON", 32, BASELINE)
    ours1 = find(rows, "1 window, JSON", 1, OURS)
    ours64 = find(rows, "1 window, JSON", 64, OURS)
    best_bulk = max(bulk_json.windows_per_second, bulk_npy.windows_per_second)
    checks = [
        (
            "1 window, 32 users: throughput >= 10x baseline",
            ours32.requests_per_second >= 10 * base32.requests_per_second,
            f"{ratio(ours32.requests_per_second, base32.requests_per_second)}",
        ),
        ("1 window, 32 users: p99 <= 1/5 of baseline", ours32.p99_ms * 5 <= base32.p99_ms, f"{ours32.p99_ms:.0f} ms vs {base32.p99_ms:.0f} ms"),
        ("1 window, 32 users: no errors", ours32.failures == 0, f"{ours32.failures} errors"),
        ("Bulk: >= 50% of the in-process ceiling", best_bulk >= 0.5 * limit, f"{best_bulk / limit:.2f} of ceiling"),
        ("1 window, 1 user: p50 <= 10 ms", ours1.p50_ms <= 10, f"{ours1.p50_ms:.0f} ms"),
        ("1 window, 64 users: no 503", "503" not in ours64.status_counts, f"{ours64.status_counts.get('503', 0)} x 503"),
    ]
    target_lines = ["| Target | Result | Measured |", "|---|---|---|"]
    target_lines += [f"| {name} | {'met' if met else 'MISSED'} | {value} |" for name, met, value in checks]
    return "\n".join(ceiling_lines), "\n".join(target_lines)


def format_servers_table(servers: list[Server], memory: dict[str, int]) -> str:
    lines = ["| Server | Cold start s (command to /readyz 200) | Processes | Resident memory MiB, after load |", "|---|---:|---:|---:|"]
    for server in servers:
        lines.append(f"| {server.name} | {server.cold_start_seconds:.1f} | {server.processes_after_load} | {memory[server.name] / 2**20:,.0f} |")
    return "\n".join(lines)


def describe_machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for package in ("bentoml", "tensorflow", "keras", "fastapi", "uvicorn", "locust"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package if package != 'tensorflow' else 'tensorflow-cpu')}")
        except Exception:  # noqa: BLE001 - a missing version only shortens the description
            continue
    load1, load5, _ = os.getloadavg()
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"{', '.join(versions)}. Load average before the run: {load1:.2f} (1 min), {load5:.2f} (5 min)."
    )


# -- main -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get(DATA_ENV_VAR), help=f"path of the UCI secom.zip archive (default: ${DATA_ENV_VAR})")
    parser.add_argument("--model-tag", default=configured_model_tag(), help="BentoML model tag (default: $SECOM_MODEL_TAG or secom-lstm:latest)")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured duration of each load phase, after a 2 s warm-up (default 12)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="request limit of each load phase (default 20000)")
    parser.add_argument("--markdown", type=Path, help="also write the report to this Markdown file, e.g. docs/benchmarks.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.data:
        logger.error("No SECOM archive given; pass --data PATH or set %s", DATA_ENV_VAR)
        return 2
    import bentoml

    try:
        model_tag = str(bentoml.models.get(args.model_tag).tag)
    except bentoml.exceptions.NotFound:
        logger.error("Model %s is not in the BentoML model store; create it with `python import_model.py`", args.model_tag)
        return 2

    started = dt.datetime.now(dt.timezone.utc)
    machine = describe_machine()
    command = shlex.join(["python", *sys.argv])
    data = load_secom(args.data)
    readings = data.readings
    workloads = build_workloads(readings)

    env = {**os.environ, "SECOM_MODEL_TAG": model_tag, "BENTOML_DO_NOT_TRACK": "true"}
    bentoml_cli = str(Path(sys.executable).with_name("bentoml"))
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="secom-bench-") as log_dir:
        try:
            port = free_loopback_port()
            ours = start_server(
                OURS, [bentoml_cli, "serve", "service:SecomLSTM", "--host", "127.0.0.1", "--port", str(port)], port, env, Path(log_dir)
            )
            servers.append(ours)
            port = free_loopback_port()
            baseline = start_server(
                BASELINE,
                [sys.executable, str(REPO_ROOT / "bench" / "baseline_server.py"), "--port", str(port), "--model-tag", model_tag],
                port,
                env,
                Path(log_dir),
            )
            servers.append(baseline)
            notes = check_agreement(ours, baseline, workloads, readings)
            single_plan = [("1 window, JSON", workloads.single_json, users, [ours, baseline]) for users in SINGLE_CONCURRENCY]
            rows = run_phases(single_plan, args.seconds, args.max_requests)
            # Measured next to the bulk phases, with both servers idle, because
            # other jobs on a shared machine change the CPU time available.
            logger.info("Measuring the in-process ceiling of model %s", model_tag)
            ceiling = measure_ceiling(args.data, model_tag)
            logger.info("Ceiling: %.0f windows/s", ceiling["windows_per_second"])
            bulk_plan = [
                (f"{BULK_ROWS} rows, JSON", workloads.bulk_json, BULK_CONCURRENCY, [ours, baseline]),
                (f"{BULK_ROWS} rows, .npy", workloads.bulk_npy, BULK_CONCURRENCY, [ours]),
            ]
            rows += run_phases(bulk_plan, args.seconds, args.max_requests)
            memory = {server.name: server.resident_bytes() for server in servers}
            for server in servers:
                server.processes_after_load = server.process_count()
        except BaseException:
            for server in servers:
                logger.error("Log of %s (%s), last lines:\n%s", server.name, server.log_path, server.log_path.read_text()[-3000:])
            raise
        finally:
            for server in servers:
                server.stop()

    ceiling_table, targets_table = format_targets(rows, ceiling)
    report = "\n\n".join(
        [
            "## Load: ours against the baseline",
            format_load_table(rows),
            "## In-process ceiling",
            ceiling_table,
            "## Targets",
            targets_table,
            "## Servers",
            format_servers_table(servers, memory),
            "\n".join(f"- {note}" for note in notes),
        ]
    )
    print()
    print(report)
    if args.markdown:
        header = "\n".join(
            [
                "# Benchmarks",
                "",
                "Generated by `bench/run.py`; do not edit by hand. Rerun the command to update it.",
                "",
                f"- Date: {started:%Y-%m-%d %H:%M} UTC",
                f"- Machine: {machine}",
                f"- Command: `{command}`",
                f"- Model: `{model_tag}`; data: the UCI SECOM archive, sha256 `{data.sha256}`",
                f"- Load: locust {'FastHttpUser'} users on 127.0.0.1, each sending its next request when the previous "
                f"one returns; every phase has a 2 s warm-up, then runs {args.seconds:.0f} s or {args.max_requests} "
                "requests. Latency percentiles are locust's (rounded to 10 ms above 100 ms). The load generator shares "
                "the CPUs with the servers.",
            ]
        )
        args.markdown.write_text(header + "\n\n" + report + "\n")
        logger.info("Wrote %s", args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
