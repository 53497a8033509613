"""Model packages become byte-for-byte reproducible tarballs and stable assets."""
from __future__ import annotations

import gzip
import json
import io
import os
import tarfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
import pytest

from ml_constructs.packaging import ModelPackageAsset, build_model_tarball
from tests.helpers import new_app, policy_statements


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "lib").mkdir(parents=True)
    (root / "serving.properties").write_text("engine=Python\n")
    (root / "model.py").write_text("def handle(inputs):\n    return None\n")
    (root / "lib" / "util.py").write_text("X = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"junk")
    (root / "stale.pyc").write_bytes(b"junk")
    return root


def members(tarball: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tarball, "r:gz") as tar:
        return tar.getmembers()


def test_two_builds_are_identical_bytes(package: Path, tmp_path: Path):
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert build_model_tarball(package, first) == build_model_tarball(package, second)
    assert first.read_bytes() == second.read_bytes()


def test_timestamps_owners_and_creation_order_do_not_matter(package: Path, tmp_path: Path):
    before = tmp_path / "before.tar.gz"
    digest = build_model_tarball(package, before)
    # Same content, written again in another order, with other mtimes.
    for path in sorted(package.rglob("*.py"), reverse=True):
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)
        os.utime(path, (1_700_000_000, 1_700_000_000))
    assert build_model_tarball(package, tmp_path / "after.tar.gz") == digest


def test_entries_are_sorted_with_fixed_metadata_and_no_litter(package: Path, tmp_path: Path):
    out = tmp_path / "m.tar.gz"
    build_model_tarball(package, out)
    infos = members(out)
    names = [i.name for i in infos]
    assert names == ["lib", "lib/util.py", "model.py", "run.sh", "serving.properties"]
    assert {(i.uid, i.gid, i.uname, i.gname, i.mtime) for i in infos} == {(0, 0, "", "", 315532800)}
    modes = {i.name: i.mode for i in infos}
    assert modes["run.sh"] == 0o755 and modes["model.py"] == 0o644 and modes["lib"] == 0o755


def test_gzip_header_has_no_timestamp_or_name(package: Path, tmp_path: Path):
    out = tmp_path / "m.tar.gz"
    build_model_tarball(package, out)
    header = out.read_bytes()[:10]
    assert header[:2] == b"\x1f\x8b"
    assert header[3] & 0x08 == 0  # FNAME flag: no file name stored
    assert header[4:8] == b"\x00\x00\x00\x00"  # MTIME


def test_content_change_changes_the_archive(package: Path, tmp_path: Path):
    digest = build_model_tarball(package, tmp_path / "a.tar.gz")
    (package / "model.py").write_text("def handle(inputs):\n    return 1\n")
    assert build_model_tarball(package, tmp_path / "b.tar.gz") != digest


def test_extra_files_are_added_and_replace_folder_files(package: Path, tmp_path: Path):
    out = tmp_path / "m.tar.gz"
    build_model_tarball(package, out, extra_files={"serving.properties": b"engine=DeepSpeed\n", "conf/x.json": b"{}"})
    with tarfile.open(out, "r:gz") as tar:
        assert tar.extractfile("serving.properties").read() == b"engine=DeepSpeed\n"
        assert tar.extractfile("conf/x.json").read() == b"{}"
        assert "conf" in tar.getnames()


@pytest.mark.parametrize("bad", ["/etc/passwd", "../escape", "a/../../b"])
def test_extra_files_cannot_escape_the_package(package: Path, tmp_path: Path, bad: str):
    with pytest.raises(ValueError, match="must stay inside the package"):
        build_model_tarball(package, tmp_path / "m.tar.gz", extra_files={bad: b""})


def test_missing_or_empty_package_folder_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="model package folder not found"):
        build_model_tarball(tmp_path / "missing", tmp_path / "m.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model package folder is empty"):
        build_model_tarball(tmp_path / "empty", tmp_path / "m.tar.gz")


def test_archive_round_trips_through_tar(package: Path, tmp_path: Path):
    out = tmp_path / "m.tar.gz"
    build_model_tarball(package, out)
    with gzip.open(out) as gz, tarfile.open(fileobj=io.BytesIO(gz.read())) as tar:
        assert tar.extractfile("lib/util.py").read() == b"X = 1\n"


def asset_of(package: Path, outdir: Path) -> tuple[str, dict]:
    app = new_app(outdir)
    stack = cdk.Stack(app, "S")
    asset = ModelPackageAsset(stack, "Pkg", source_dir=package, extra_files={"serving.properties": b"engine=Python\n"})
    role = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    asset.grant_read(role)
    cdk.CfnOutput(stack, "ModelDataUrl", value=asset.s3_object_url)
    assembly = app.synth()
    return asset.asset.asset_hash, assembly.get_stack_by_name("S").template


def test_asset_hash_and_template_are_stable_across_synths(package: Path, tmp_path: Path):
    hash_a, template_a = asset_of(package, tmp_path / "a")
    hash_b, template_b = asset_of(package, tmp_path / "b")
    assert hash_a == hash_b and template_a == template_b
    (statement,) = policy_statements(template_a)
    assert statement["Action"] == "s3:GetObject"  # one object, no wildcard
    assert hash_a in json.dumps(statement["Resource"])
    (package / "model.py").write_text("changed = True\n")
    hash_c, _ = asset_of(package, tmp_path / "c")
    assert hash_c != hash_a


def test_render_properties_replaces_appends_and_drops_keys():
    from ml_constructs.packaging import parse_properties, render_properties

    base = "# comment\nengine=Python\noption.dtype=fp16\noption.old=1\n"
    out = render_properties(base, {"option.dtype": "bf16", "option.old": None, "option.b": 2, "option.a": True})
    assert out.decode() == "# comment\nengine=Python\noption.dtype=bf16\noption.a=true\noption.b=2\n"
    assert parse_properties(out.decode()) == {"engine": "Python", "option.dtype": "bf16", "option.a": "true", "option.b": "2"}
    with pytest.raises(ValueError, match="single-line"):
        render_properties(base, {"x": "a\nb"})
