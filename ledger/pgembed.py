"""A private PostgreSQL server kept under the ledger's data directory.

So that `make run` needs nothing installed by hand: the server binaries come from the pgserver
wheel (PostgreSQL 16) or, where present, from the system's PostgreSQL packages. The cluster is
created on first use and listens on 127.0.0.1 only, on a free port, with trust authentication.
PostgreSQL refuses to run as root, so as root the server runs as an unprivileged system user.

A server that is already running on the same data directory (for instance after the owning
process was killed) is adopted, not started twice.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SYSTEM_USER: Final = "ledgerpg"


class EmbeddedPostgresError(RuntimeError):
    pass


def find_bin_dir() -> Path:
    override = os.environ.get("LEDGER_PG_BIN")
    candidates: list[Path] = [Path(override)] if override else []
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(system)
    for candidate in candidates:
        if (candidate / "postgres").exists() and (candidate / "initdb").exists():
            return candidate
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found: install the pgserver package (make run does), "
        "set LEDGER_PG_BIN, or set LEDGER_DATABASE_URL to an existing server"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _ensure_traversable(path: Path) -> None:
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            part.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in ``pgdata``; ``start()`` returns its connection URL."""

    pgdata: Path
    options: dict[str, str] = field(default_factory=dict)
    bin_dir: Path = field(default_factory=find_bin_dir)
    port: int | None = None

    @property
    def log_file(self) -> Path:
        return self.pgdata / "server.log"

    def _run(self, args: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            user = _ensure_system_user()
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        try:
            completed: subprocess.CompletedProcess[str] = subprocess.run(
                args,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=str(self.pgdata),
                stdin=subprocess.DEVNULL,
                **kwargs,  # type: ignore[call-overload]
            )
            return completed
        except subprocess.CalledProcessError as exc:
            log = self.log_file.read_text()[-4000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed ({exc.returncode}): {exc.stderr.strip()}\n{log}"
            ) from exc

    def _prepare(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = _ensure_system_user()
            _ensure_traversable(self.bin_dir)
            _ensure_traversable(self.pgdata.parent)
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)
        self.pgdata.chmod(0o700)
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D", str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U", "postgres",
                ]
            )

    def running_port(self) -> int | None:
        """The port of a live postmaster on this data directory, if there is one."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4:
            return None
        try:
            os.kill(int(lines[0]), 0)
        except (ProcessLookupError, ValueError):
            return None
        except PermissionError:
            pass
        return int(lines[3])

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise EmbeddedPostgresError("embedded PostgreSQL is not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        self._prepare()
        port = self.running_port()
        if port is not None:
            self.port = port
            return self.url()
        self.port = self.port or free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
            **self.options,
        }
        opts = " ".join(f"-c {k}={v}" if v else f"-c {k}=''" for k, v in settings.items())
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D", str(self.pgdata),
                "-l", str(self.log_file),
                "-w", "-t", "60",
                "-o", opts,
                "start",
            ]
        )
        return self.url()

    def restart(self) -> str:
        """Start this cluster again after its server died, on the same port (connection URLs stay
        valid). Never initdb: a data directory that is gone is an error, not a fresh start."""
        if not (self.pgdata / "PG_VERSION").exists():
            raise EmbeddedPostgresError(f"{self.pgdata} holds no PostgreSQL cluster any more")
        return self.start()

    def stop(self, mode: str = "fast") -> None:
        if self.running_port() is None:
            return
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)


def start_or_join(data_dir: Path, *, stop_adopted: bool = False) -> tuple[str, EmbeddedPostgres | None]:
    """The URL of the embedded PostgreSQL under ``data_dir``, and the server the caller must stop
    when done (None: leave it running).

    A server this call starts is the caller's to stop. One already running on that data directory
    belongs to someone else (the service, when a command such as ``ledger rebuild`` runs beside it)
    and is left running, unless ``stop_adopted``: ``ledger serve`` adopts a server whose owner died.
    """
    server = EmbeddedPostgres(data_dir.resolve() / "pg")
    owned = server if stop_adopted or server.running_port() is None else None
    return server.start(), owned
