"""Shared bench plumbing: an embedded PostgreSQL in a temp dir, the service as a subprocess,
wrk as the load generator, peak RSS from /proc, and writing figures to docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ledger import pgembed, secrets

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


class Postgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        self.server = pgembed.EmbeddedPostgres(self.dir / "pg")

    def postmaster(self) -> int:
        """The server's postmaster PID (its backends are the processes under it)."""
        return int((self.server.pgdata / "postmaster.pid").read_text().split()[0])

    def __enter__(self) -> str:
        return self.server.start()

    def __exit__(self, *exc: object) -> None:
        self.server.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


# The admin token every benchmarked service starts with (LEDGER_ADMIN_TOKEN), and the header that
# sends it: the service denies every request but /healthz and /readyz without one.
TOKEN = secrets.new()
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def start_service(database_url: str, data_dir: Path, *, module: tuple[str, ...] = ("cli.main", "serve"),
                  log: Path | None = None, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """``ledger serve`` as a subprocess. The benchmarks that read one process's CPU time or RSS
    (append, export, rebuild, fanout) pass ``LEDGER_PROCESSES="single"`` so that their pid is the
    whole service; bench/isolation.py measures the default multi-process service (``tree``).
    ``log``: where its output goes (else the bench's own)."""
    port = pgembed.free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_HTTP_PORT": str(port),
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_LOG_LEVEL": "WARNING",
        "LEDGER_ADMIN_TOKEN": TOKEN,
        **env,
    }
    output = log.open("ab") if log is not None else None
    proc = subprocess.Popen([sys.executable, "-m", *module], cwd=ROOT, env=full_env,
                            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT if output else None)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz", proc)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (a multi-process ``ledger serve``'s children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_all(pids: list[int]) -> float:
    """:func:`cpu_seconds` summed over ``pids`` (a process gone meanwhile counts nothing)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def wrk(url: str, script: Path, *, connections: int, seconds: int, threads: int = 1) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk as the load generator: apt-get install -y wrk")
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    result: dict[str, float] = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["requests_per_s"] = float(rps.group(1)) if rps else float("nan")
    count = re.search(r"(\d+) requests in", out)
    result["requests"] = float(count.group(1)) if count else float("nan")
    for pct in ("50", "99"):
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        if match:
            value = float(match.group(1))
            result[f"p{pct}_ms"] = value / 1000 if match.group(2) == "us" else value * (1000 if match.group(2) == "s" else 1)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


def record(section: str, body: str) -> None:
    """Replace (or add) ``## section`` in docs/benchmarks.md with ``body``."""
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\nFigures measured by `bench/`; each beside its raw baseline from the same run.\n"
    header = f"## {section}\n"
    block = header + "\n" + body.strip() + "\n"
    if header in text:
        start = text.index(header)
        nxt = text.find("\n## ", start + len(header))
        text = text[:start] + block + (text[nxt:] if nxt != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)
