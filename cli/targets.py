"""``ledger targets add | update | list | retire``: the clusters a deployment can go to.

Decisions:

- ``add`` only creates: it sends ``expected_version: no_stream``, so adding a name that exists
  (or existed: retired names are not reused) is a conflict naming it, and never a silent
  replacement of its labels.
- ``update`` changes only what it names: ``--label k=v`` sets one label, ``--remove-label k``
  drops one, ``--credentials`` / ``--server`` replace that field; everything else is kept. It
  reads the target, merges (:func:`merged`, pure), and writes with the version it read as the
  expected version, so a concurrent change is never overwritten: on a conflict it reads again and
  re-applies the same changes, a few times, then gives up with exit 5.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cli import exits, http, options, output, parsers

ACCESS: Final = ("credentials", "server")
UPDATE_ATTEMPTS: Final = 5


def _path(name: str) -> str:
    return f"/v1/targets/{name}"


def _written(a: Mapping[str, Any]) -> str:
    return f"target {a['target']}: {a['event'] or 'unchanged'} (version {a['version']}, position {a['position']})"


def _table(body: Any) -> str:
    return http.table([(t["name"], http.labels_text(t["labels"]), t.get("credentials") or "-",
                        "retired" if t["retired"] else "active", t["version"]) for t in body["targets"]],
                      ["name", "labels", "credentials", "status", "version"])


def _retired(client: http.Client, name: str) -> bool:
    try:
        return bool(client.get(_path(name)).get("retired"))
    except http.ApiError:
        return False


def add(args: argparse.Namespace) -> int:
    client = options.client_from(args)
    body = {"labels": dict(args.label), "credentials": args.credentials, "server": args.server,
            "expected_version": "no_stream"}
    try:
        answer = client.request("PUT", _path(args.name), json_body=body).json()
    except http.ApiError as exc:
        if exc.status == 409 and exc.problem.get("field") == "expected_version":
            if _retired(client, args.name):
                raise exits.Failure(exits.Code.CONFLICT, f"target {args.name} was retired (version "
                                    f"{exc.problem.get('actual_version')}); a retired name is not reused") from exc
            raise exits.Failure(exits.Code.CONFLICT, f"target {args.name} already exists (version "
                                f"{exc.problem.get('actual_version')}); change it with "
                                f"'ledger targets update {args.name}'") from exc
        raise
    output.show(args, answer, _written)
    return 0


def merged(current: Mapping[str, Any], set_labels: Sequence[tuple[str, str]], remove_labels: Sequence[str],
           access: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT body that applies these changes to ``current`` (a GET /v1/targets/{name} body) and
    keeps everything else (legacy access fields, which the service no longer accepts, are left
    out). An empty string clears an access field."""
    both = {k for k, _ in set_labels} & set(remove_labels)
    if both:
        raise exits.Failure(exits.Code.USAGE, f"label {sorted(both)[0]} is both set and removed")
    missing = [k for k in remove_labels if k not in current["labels"]]
    if missing:
        raise exits.Failure(exits.Code.NOT_FOUND, f"target {current['name']} has no label {missing[0]}")
    labels = {k: v for k, v in current["labels"].items() if k not in remove_labels}
    labels.update(set_labels)
    body = {"labels": labels, **{k: current.get(k) for k in ACCESS}}
    if access.get("credentials") is not None and access.get("server") is None:
        body["server"] = None  # the server belongs to the credential: a new credential brings its own
    body.update({k: (v if v != "" else None) for k, v in access.items() if v is not None})
    return body


def update(args: argparse.Namespace) -> int:
    access = {k: getattr(args, k) for k in ACCESS}
    if not args.label and not args.remove_label and all(v is None for v in access.values()):
        raise exits.Failure(exits.Code.USAGE, "nothing to update: give --label, --remove-label, --credentials "
                            "or --server")
    client = options.client_from(args)
    for attempt in range(UPDATE_ATTEMPTS):
        current = client.read(_path(args.name))
        if current["retired"]:
            raise exits.Failure(exits.Code.CONFLICT, f"target {args.name} is retired (version "
                                f"{current['version']}); a retired target is not changed")
        body = merged(current, args.label, args.remove_label, access)
        try:
            answer = client.request("PUT", _path(args.name),
                                    json_body={**body, "expected_version": current["version"]}).json()
        except http.ApiError as exc:
            moved = exc.status == 409 and exc.problem.get("field") == "expected_version"
            if moved and attempt + 1 < UPDATE_ATTEMPTS:
                continue
            if moved:
                raise exits.Failure(exits.Code.CONFLICT, f"target {args.name} kept changing while it was "
                                    f"being updated ({UPDATE_ATTEMPTS} attempts); try again") from exc
            raise
        output.show(args, answer, _written)
        return 0
    raise AssertionError("unreachable")


def list_targets(args: argparse.Namespace) -> int:
    body = options.client_from(args).read("/v1/targets", selector=args.selector,
                                          include_retired="true" if args.all else None)
    output.show(args, body, _table)
    return 0


def retire(args: argparse.Namespace) -> int:
    answer = options.client_from(args).request("DELETE", _path(args.name)).json()
    output.show(args, answer, lambda a: f"target {a['target']} retired (position {a['position']})")
    return 0


def _access_flags(parser: argparse.ArgumentParser, *, updating: bool) -> None:
    if updating:
        parser.add_argument("--credentials", "-c", metavar="NAME",
                            help="another credential of the operator's credentials file (default: unchanged)")
        parser.add_argument("--server", help="the API server URL, checked to be the credential's "
                            "(default: unchanged; '' clears it)")
    else:
        parser.add_argument("--credentials", "-c", required=True, metavar="NAME",
                            help="a credential of the operator's credentials file (it brings the API server)")
        parser.add_argument("--server", help="the API server URL, checked to be the credential's (optional)")


def register(sub: parsers.Subparsers) -> None:
    group = parsers.command(
        sub, "targets", summary="register, update, list and retire target clusters",
        description="Target clusters: where deployments go, chosen by their labels.",
        example_lines=["ledger targets add eu-1 --credentials eu-1 -l region=eu",
                       "ledger targets update eu-1 --label tier=prod --remove-label canary",
                       "ledger targets list -l region=eu"])
    tsub = parsers.subcommands(group, "targets_command")

    new = parsers.command(
        tsub, "add", summary="register a new target (an existing name is an error)",
        description="Register a new target cluster. A name that exists, or existed (a retired name is "
                    "not reused),\nis refused with exit 5; change a target with 'ledger targets update'.",
        example_lines=["ledger targets add eu-1 --credentials eu-1 -l region=eu -l tier=prod",
                       "ledger targets add us-1 -c us-1 --server https://us-1.example:6443 -l region=us"])
    new.add_argument("name", type=options.name, help="target name (a DNS-1123 label)")
    _access_flags(new, updating=False)
    new.add_argument("--label", "-l", action="append", type=options.label, default=[], metavar="KEY=VALUE",
                     help="a label (repeat for more)")
    new.set_defaults(func=add)

    change = parsers.command(
        tsub, "update", summary="change some of a target's labels or access fields",
        description="Change only what is named: --label sets a label, --remove-label drops one, --credentials\n"
                    "and --server replace that field; everything else is kept. Written with the version read\n"
                    "as the expected version, so a concurrent change is never overwritten.",
        example_lines=["ledger targets update eu-1 --label tier=prod --label zone=a",
                       "ledger targets update eu-1 --remove-label canary",
                       "ledger targets update eu-1 --credentials eu-1b"])
    change.add_argument("name", type=options.name, help="target name")
    change.add_argument("--label", "-l", action="append", type=options.label, default=[], metavar="KEY=VALUE",
                        help="set this label (repeat for more)")
    change.add_argument("--remove-label", action="append", default=[], metavar="KEY",
                        help="remove this label (repeat for more)")
    _access_flags(change, updating=True)
    change.set_defaults(func=update)

    listing = parsers.command(
        tsub, "list", summary="list targets, optionally by label selector",
        description="List the registered targets, active ones unless --all.",
        example_lines=["ledger targets list", "ledger targets list -l 'region in (eu,us),tier!=staging'"])
    listing.add_argument("--selector", "-l", help="Kubernetes label selector, e.g. region=eu,tier!=canary "
                         "(default: every target)")
    listing.add_argument("--all", action="store_true", help="include retired targets")
    listing.set_defaults(func=list_targets)

    gone = parsers.command(
        tsub, "retire", summary="retire a target (its name is not reused)",
        description="Retire a target: deployments no longer go to it, and its name is not reused.",
        example_lines=["ledger targets retire eu-1"])
    gone.add_argument("name", type=options.name, help="target name")
    gone.set_defaults(func=retire)

    for parser in (new, change, listing, gone):
        options.add_client_flags(parser)
        output.add_flags(parser)
