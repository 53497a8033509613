"""Reproducible ``model.tar.gz`` files: same inputs, same bytes.

What varies between two ordinary ``tar czf`` runs, and what is fixed here:
entry order (sorted by path), timestamps (a fixed mtime), owners (uid/gid 0,
no names), permissions (0644, or 0755 for executables and directories), the
gzip header's timestamp and file name (zero and empty). Editor and build
litter (``__pycache__``, ``*.pyc``, ``.DS_Store``) never enters a package.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Mapping

# 1980-01-01T00:00:00Z: a fixed, valid-everywhere timestamp (zip and tar alike).
FIXED_MTIME = 315532800
EXCLUDED_NAMES = frozenset({"__pycache__", ".DS_Store", ".pytest_cache", ".ipynb_checkpoints"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", "~")


def build_model_tarball(
    source_dir: Path | str,
    output: Path | str,
    *,
    extra_files: Mapping[str, bytes] | None = None,
) -> str:
    """Pack ``source_dir`` (plus ``extra_files``, which win) into ``output``.

    ``extra_files`` maps archive paths (``serving.properties``,
    ``compiled/manifest.json``) to their bytes, for files rendered from
    configuration. Returns the sha256 hex digest of the written archive.
    """
    source = Path(source_dir)
    if not source.is_dir():
        raise FileNotFoundError(f"model package folder not found: {source}")
    entries: dict[str, tuple[bytes, bool]] = {}
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in EXCLUDED_NAMES for part in rel.parts) or path.name.endswith(EXCLUDED_SUFFIXES):
            continue
        if path.is_file():
            executable = bool(path.stat().st_mode & stat.S_IXUSR)
            entries[rel.as_posix()] = (path.read_bytes(), executable)
    for name, data in (extra_files or {}).items():
        clean = Path(name).as_posix()
        if clean.startswith(("/", "../")) or "/../" in clean:
            raise ValueError(f"extra file path must stay inside the package, got {name!r}")
        entries[clean] = (data, False)
    if not entries:
        raise ValueError(f"model package folder is empty: {source}")

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in sorted(_parent_dirs(entries)):
            tar.addfile(_info(directory, tarfile.DIRTYPE, 0o755, 0))
        for name in sorted(entries):
            data, executable = entries[name]
            tar.addfile(_info(name, tarfile.REGTYPE, 0o755 if executable else 0o644, len(data)), io.BytesIO(data))

    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    archive = compressed.getvalue()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(archive)
    os.replace(tmp, out)
    return hashlib.sha256(archive).hexdigest()


def _parent_dirs(names: Mapping[str, object]) -> set[str]:
    dirs: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return dirs


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
