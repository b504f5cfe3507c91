"""``python -m emulator``: serve emulated clusters standalone until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from emulator.server import Emulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m emulator", description="Serve emulated Kubernetes API servers."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--clusters", default="", help="comma-separated cluster names to create, e.g. a,b,c")
    parser.add_argument("--auto-create", action="store_true", help="create clusters on their first request")
    parser.add_argument(
        "--rollout-delay",
        type=float,
        default=0.0,
        help="seconds until a Deployment, StatefulSet, DaemonSet or Job becomes ready (default 0)",
    )
    parser.add_argument(
        "--bookmark-interval", type=float, default=60.0, help="seconds between watch bookmarks (default 60)"
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    names = [n.strip() for n in args.clusters.split(",") if n.strip()]
    settings = {"rollout_delay": args.rollout_delay, "bookmark_interval": args.bookmark_interval}
    emulator = Emulator(names, auto_create=args.auto_create, cluster_settings=settings)
    base = await emulator.start(args.host, args.port)
    print(f"emulator listening on {base} (admin: {base}/_emulator/clusters)", flush=True)
    for name in names:
        print(f"  cluster {name}: {emulator.cluster_url(name)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
