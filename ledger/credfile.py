"""Loading the operator's credentials file, and reloading it when it changes (no restart).

``Watched`` holds the last good catalogue. :meth:`Watched.refresh` compares the file's (and every
kubeconfig's it names) inode, size and modification time with what was loaded and reloads on a
difference; it is cheap enough to call before every registration and every client the applier
makes, and a background poll (api.lifecycle) calls it too so that listeners (the applier) learn of
a change without waiting for work.

A malformed file at start stops start-up with a message naming the field (``CredentialsFileError``
is a ``SettingsError``). A malformed file on reload keeps the last good catalogue, logs the error
and counts it (``errors``, exported as a metric): an operator's typo never takes every cluster
away. A path that was given but does not exist is malformed; the default path (``credentials.yaml``
in the data directory) may be absent, which means an empty catalogue until it appears.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import yaml

from ledger import credentials
from ledger import settings as settings_mod

log = logging.getLogger(__name__)

DEFAULT_NAME: Final = "credentials.yaml"
Stamp = tuple[tuple[str, int, int, int, int], ...]


class CredentialsFileError(settings_mod.SettingsError):
    pass


def path_of(settings: settings_mod.Settings) -> tuple[Path, bool]:
    """The file to read and whether the operator named it (else it may be absent)."""
    if settings.credentials is not None:
        return settings.credentials, True
    return settings.data_dir / DEFAULT_NAME, False


def _stamp(paths: Iterable[str | Path]) -> Stamp:
    found = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append((str(path), -1, -1, -1, -1))
        else:
            found.append((str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)


def _yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsFileError(f"{what}: cannot read {path}: {exc.__class__.__name__}: "
                                   f"{getattr(exc, 'strerror', None) or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CredentialsFileError(f"{what}: {path} is not valid YAML{where}") from None


def load(path: Path, *, required: bool) -> tuple[credentials.Catalogue, Stamp]:
    """The catalogue in ``path`` and the stamp it was loaded at; raises CredentialsFileError."""
    if not required and not path.exists():
        return credentials.EMPTY, _stamp([path])
    stamp_before = _stamp([path])
    base = path.resolve().parent
    doc = _yaml(path, "credentials file")
    try:
        listed = credentials.entries(doc, base)
        found: dict[str, credentials.Credential] = {}
        kubeconfigs: list[Path] = []
        for name, (entry, kubeconfig) in listed.items():
            kubeconfig_doc = None
            if kubeconfig is not None:
                kubeconfigs.append(kubeconfig)
                kubeconfig_doc = _yaml(kubeconfig, f"credentials.{name}.kubeconfig")
            found[name] = credentials.resolve(name, entry, base, kubeconfig_doc)
    except credentials.CredentialsFileError as exc:
        raise CredentialsFileError(f"credentials file {path}: {exc}") from None
    return found, stamp_before + _stamp(sorted(set(kubeconfigs)))


class Watched:
    """The operator's catalogue, reloaded when its files change."""

    def __init__(self, path: Path, *, required: bool) -> None:
        self.path = path
        self.required = required
        self.catalogue, self._stamp = load(path, required=required)
        self.errors = 0
        self.reloads = 0
        self.last_error: str | None = None
        self._listeners: list[Callable[[credentials.Catalogue, credentials.Catalogue], None]] = []
        log.info("credentials file %s: %d credential(s)%s", path, len(self.catalogue),
                 "" if required or path.exists() else " (absent; targets can be registered once it exists)")

    @classmethod
    def from_settings(cls, settings: settings_mod.Settings) -> Watched:
        path, required = path_of(settings)
        return cls(path, required=required)

    @classmethod
    def fixed(cls, catalogue: credentials.Catalogue) -> Watched:
        """A catalogue that never changes (no file), for tools that are handed one."""
        watched = cls.__new__(cls)
        watched.path, watched.required = Path(os.devnull), False
        watched.catalogue, watched._stamp = catalogue, ()
        watched.errors, watched.reloads, watched.last_error = 0, 0, None
        watched._listeners = []
        return watched

    def listen(self, listener: Callable[[credentials.Catalogue, credentials.Catalogue], None]) -> None:
        """Call ``listener(old, new)`` after every reload that changed the catalogue."""
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[credentials.Catalogue, credentials.Catalogue], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def current(self) -> credentials.Catalogue:
        self.refresh()
        return self.catalogue

    def refresh(self) -> bool:
        """Reload if a file changed; True when the catalogue did."""
        if not self._stamp or _stamp(p[0] for p in self._stamp) == self._stamp:
            return False
        try:
            catalogue, stamp = load(self.path, required=self.required)
        except CredentialsFileError as exc:
            self._stamp = _stamp(p[0] for p in self._stamp)  # log once per change, not per call
            self.errors += 1
            self.last_error = str(exc)
            log.error("%s; keeping the %d credential(s) loaded before", exc, len(self.catalogue))
            return False
        self._stamp, self.last_error = stamp, None
        if catalogue == self.catalogue:
            return False
        old, self.catalogue = self.catalogue, catalogue
        self.reloads += 1
        changed = sorted(n for n in set(old) | set(catalogue) if old.get(n) != catalogue.get(n))
        log.info("credentials file %s reloaded: %d credential(s); changed: %s", self.path, len(catalogue),
                 ", ".join(changed))
        for listener in list(self._listeners):
            listener(old, catalogue)
        return True
