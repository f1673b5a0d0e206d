"""Artifacts: sha256 verification on open, tamper detection, path safety on the way in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from forgeml.errors import ArtifactIntegrityError, RegistryError, UsageError
from forgeml.registry import ModelVersion, NewVersion, Registry
from forgeml.registry.artifacts import hash_file, safe_join


@pytest.fixture
def version(registry: Registry, make_run, make_source) -> ModelVersion:
    files = {"model.txt": "weights-1", "meta/info.json": '{"k": 1}', "data.bin": bytes(range(256))}
    for _ in range(2):
        registry.commit_run(make_run(), NewVersion("churn", make_source(files)))
    return registry.resolve("churn@2")


def _folder(registry: Registry, version: ModelVersion) -> Path:
    return registry.artifacts_root / version.artifact_dir


def test_copied_files_match_and_are_read_only(registry: Registry, version: ModelVersion) -> None:
    folder = registry.open_artifacts(version)
    assert folder == _folder(registry, version)
    assert (folder / "meta" / "info.json").read_text() == '{"k": 1}'
    for rel, sha in version.files.items():
        assert hash_file(folder / rel)[0] == sha
        assert not stat.S_IMODE((folder / rel).stat().st_mode) & 0o222
    assert registry.open_artifacts("churn@2") == folder
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def _writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def test_modified_byte_is_detected(registry: Registry, version: ModelVersion) -> None:
    target = _writable(_folder(registry, version) / "data.bin")
    data = bytearray(target.read_bytes())
    data[100] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as info:
        registry.open_artifacts(version)
    message = str(info.value)
    expected = version.files["data.bin"][:12]
    found = hash_file(target)[0][:12]
    assert message == (
        f"artifact churn@2 file data.bin: sha256 mismatch (expected {expected}…, found {found}…)"
    )
    registry.open_artifacts("churn@1")  # the other version is untouched


def test_deleted_file_is_detected(registry: Registry, version: ModelVersion) -> None:
    (_folder(registry, version) / "meta" / "info.json").unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"churn@2 file meta/info.json: missing"):
        registry.open_artifacts(version)


def test_added_file_is_detected(registry: Registry, version: ModelVersion) -> None:
    (_folder(registry, version) / "meta" / "evil.py").write_text("import os")
    with pytest.raises(ArtifactIntegrityError, match=r"file meta/evil.py: unexpected file"):
        registry.open_artifacts(version)


def test_file_swapped_for_symlink_is_detected(
    registry: Registry, version: ModelVersion, tmp_path: Path
) -> None:
    target = _folder(registry, version) / "model.txt"
    (tmp_path / "elsewhere.txt").write_text("weights-1")
    target.unlink()
    target.symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(ArtifactIntegrityError, match=r"file model.txt: not a regular file"):
        registry.open_artifacts(version)


def test_missing_folder_is_detected(registry: Registry, version: ModelVersion) -> None:
    folder = _folder(registry, version)
    folder.rename(folder.with_name("moved"))
    with pytest.raises(ArtifactIntegrityError, match=r"artifact churn@2: folder .* is missing"):
        registry.open_artifacts(version)


def test_several_problems_are_counted(registry: Registry, version: ModelVersion) -> None:
    folder = _folder(registry, version)
    (folder / "model.txt").unlink()
    (folder / "extra.txt").write_text("x")
    with pytest.raises(ArtifactIntegrityError, match=r"model.txt: missing \(and 1 more\)"):
        registry.open_artifacts(version)


def test_forged_record_is_checked_against_the_database(
    registry: Registry, version: ModelVersion
) -> None:
    folder = _folder(registry, version)
    _writable(folder / "model.txt").write_text("tampered")
    forged = ModelVersion(
        **{**version.__dict__, "files": {"model.txt": hash_file(folder / "model.txt")[0]}}
    )
    with pytest.raises(ArtifactIntegrityError, match=r"model.txt: sha256 mismatch"):
        registry.open_artifacts(forged)


def test_symlinks_in_the_source_are_refused(
    registry: Registry, make_run, make_source, tmp_path: Path
) -> None:
    source = make_source()
    (tmp_path / "secret").write_text("s")
    (source / "link.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(UsageError, match=r"contains a symlink: link.txt"):
        registry.commit_run(make_run(), NewVersion("churn", source))
    (source / "link.txt").unlink()
    (source / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UsageError, match="contains a symlink: dirlink"):
        registry.commit_run(make_run(), NewVersion("churn", source))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_special_files_in_the_source_are_refused(registry: Registry, make_run, make_source):
    source = make_source()
    os.mkfifo(source / "pipe")
    with pytest.raises(UsageError, match="non-regular file: pipe"):
        registry.commit_run(make_run(), NewVersion("churn", source))


def test_missing_or_empty_source_is_refused(registry: Registry, make_run, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        registry.commit_run(make_run(), NewVersion("churn", tmp_path / "nope"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match="has no files"):
        registry.commit_run(make_run(), NewVersion("churn", tmp_path / "empty"))


@pytest.mark.parametrize(
    "relative", ["../x", "/etc/passwd", "a/../../x", "a//b", "./a", "a\\b", "", "a/."]
)
def test_safe_join_refuses_paths_leaving_the_root(tmp_path: Path, relative: str) -> None:
    with pytest.raises(RegistryError, match="leaves the artifacts root"):
        safe_join(tmp_path, relative)


def test_safe_join_refuses_a_linked_folder_leading_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(RegistryError, match="leaves the artifacts root"):
        safe_join(root, "out/x")
    assert safe_join(root, "in/x") == root.resolve() / "in" / "x"
