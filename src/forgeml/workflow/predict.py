"""``forgeml predict``: score files with a registered model, streamed in chunks.

The input is read chunk by chunk (never whole), each chunk goes through the model's saved
feature pipeline, and the predictions are written as Parquet, atomically. Every parsed
input row gets exactly one output row, in input order. Values that do not fit the model's
column types are scored as missing and the row is flagged in an ``_issues`` column naming
those columns; lines that cannot be parsed at all are reported and written to a
``rejected`` Parquet file with their line numbers — never dropped silently.

Two output layouts:

* **One file** (a single input file, the local engine): ``--out x.parquet`` is written as a
  temp file in the same folder and renamed at the end; unreadable lines go to
  ``x.rejected.parquet`` beside it.
* **A folder of part files** (the input names a folder or a glob, or ``--engine ray``):
  ``--out scored/`` receives ``part-00000.parquet``... (the local engine writes one part
  per input file, in the input's order; Ray one per write task, in input order), a
  ``_manifest.json`` (model, rows per part, totals) and, when some lines were unreadable,
  ``_rejected.parquet`` with the file each came from. The folder is built under a temp
  name beside ``--out`` and renamed at the end, so a failure leaves nothing half-written;
  an existing ``--out`` folder is replaced only when it is empty or a previous output of
  ``forgeml predict`` (it has the manifest).

``engine="ray"`` scores Parquet files with Ray Data (:mod:`forgeml.engine.ray_data`): the
model's verified files travel to the workers as bytes through Ray's object store, each
worker loads the bundle once and applies the same :func:`_score_chunk` as the local
engine, so both engines give the same predictions; the output's row count is checked
against the input files' footers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from forgeml.errors import DataError, DataSourceError, UsageError
from forgeml.workflow.reporting import NullReporter, Reporter

__all__ = ["ENGINES", "BundleScorer", "PredictResult", "predict_file"]

ENGINES = ("local", "ray")
MANIFEST = "_manifest.json"
MANIFEST_FORMAT = "forgeml-predictions"
REJECTED = "_rejected.parquet"


@dataclass
class PredictResult:
    model: str
    version: int
    input: str
    output: str
    n_input: int
    n_scored: int
    n_unreadable: int
    rejected_path: str | None
    seconds: float
    missing_columns: list[str] = field(default_factory=list)
    n_flagged: int = 0
    engine: str = "local"
    layout: str = "file"  # "file": one Parquet file; "folder": part files + _manifest.json
    n_files: int = 1
    parts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "output": self.output,
            "n_input": self.n_input,
            "n_scored": self.n_scored,
            "n_unreadable": self.n_unreadable,
            "rejected": self.rejected_path,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.n_scored / self.seconds) if self.seconds > 0 else None,
            "missing_columns": self.missing_columns,
            "n_flagged": self.n_flagged,
            "engine": self.engine,
            "layout": self.layout,
            "n_files": self.n_files,
            "parts": self.parts,
        }


@dataclass
class _Counts:
    """What scoring one stream of batches found."""

    n_input: int = 0
    n_scored: int = 0
    n_flagged: int = 0
    missing: set[str] = field(default_factory=set)
    bad_lines: list[Any] = field(default_factory=list)


def predict_file(
    ref: str,
    input: str,
    out: Path,
    *,
    registry: str = ".forgeml",
    delimiter: str = ",",
    chunk_rows: int = 262_144,
    keep_columns: bool = True,
    reporter: Reporter | None = None,
    engine: str = "local",
    workers: int | None = None,
) -> PredictResult:
    """Score ``input`` (a file, a folder or a glob; local path or fsspec URI) with the
    model ``ref`` and write ``out``: a Parquet file, or a folder of part files when the
    input names a folder or a glob or ``engine`` is ``"ray"`` (see the module docstring).

    ``workers`` (Ray only) caps the scoring tasks running at once; default: every CPU.
    """
    from forgeml.config.spec import DataSpec
    from forgeml.data import open_source

    reporter = reporter or NullReporter()
    started = time.monotonic()
    if engine not in ENGINES:
        raise UsageError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers: expected a positive number, got {workers}")
    out = Path(out)
    reporter.stage("load", ref)
    bundle, model_files = _load_model(ref, registry, with_files=engine == "ray")
    source = open_source(
        DataSpec(source=input, delimiter=delimiter, chunk_rows=max(1_000, chunk_rows))
    )
    files = getattr(source, "files", None)
    if engine == "ray" or (files is not None and not files.single):
        _check_out_folder(out)
        _check_not_inside(out, files)
        if engine == "ray":
            return _predict_ray(
                bundle,
                model_files,
                source,
                out,
                chunk_rows,
                keep_columns,
                workers,
                reporter,
                started,
            )
        return _predict_many(bundle, source, out, keep_columns, reporter, started)
    return _predict_one(bundle, source, out, keep_columns, reporter, started)


# --- the model --------------------------------------------------------------------------------


def _load_model(ref: str, registry: str, *, with_files: bool) -> tuple[Any, dict[str, bytes]]:
    """The bundle ``ref`` resolves to (every artifact's sha256 verified first) and, when
    asked, the bytes of its files (to ship to Ray workers), from one resolution."""
    from forgeml.models.bundle import load_bundle
    from forgeml.workflow.workspace import Workspace

    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        version = reg.resolve(ref)
        directory = reg.open_artifacts(version)
        bundle = load_bundle(directory)
        files = _bundle_files(directory) if with_files else {}
    bundle.metadata = {**(bundle.metadata or {}), "name": version.name, "version": version.version}
    return bundle, files


def _bundle_files(directory: Path) -> dict[str, bytes]:
    """The bundle's own files (its manifest and the files it lists), as bytes."""
    from forgeml.models.bundle import MANIFEST as BUNDLE_MANIFEST

    manifest = json.loads((directory / BUNDLE_MANIFEST).read_text())
    names = [BUNDLE_MANIFEST, *manifest.get("files", {})]
    return {name: (directory / name).read_bytes() for name in names}


class BundleScorer:
    """Scores Arrow tables with a model bundle given as its files' bytes; picklable.

    Sent to Ray workers (:func:`forgeml.engine.ray_data.score_parquet_on_ray`): the bundle
    is loaded (sha256 of every file checked by ``load_bundle``) on the first call in each
    process and kept; it never travels pickled. ``key`` names the model files and options,
    so a worker reuses a loaded bundle only for the same model.
    """

    def __init__(
        self,
        files: dict[str, bytes],
        keep_columns: bool,
        bundle: Any = None,
        conform: list[tuple[str, Any]] | None = None,
    ) -> None:
        digest = hashlib.sha256(b"keep" if keep_columns else b"drop")
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        digest.update(repr([(c, str(t)) for c, t in conform or []]).encode())
        self.files = files
        self.keep_columns = keep_columns
        self.conform = list(conform or [])
        self.key = digest.hexdigest()
        self._bundle = bundle

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_bundle": None}

    def bundle(self) -> Any:
        if self._bundle is None:
            from forgeml.models.bundle import load_bundle

            with tempfile.TemporaryDirectory(prefix="forgeml-model-") as tmp:
                root = Path(tmp).resolve()
                for name, data in self.files.items():
                    target = (root / name).resolve()
                    if root not in target.parents:
                        raise DataError(f"model file {name!r} escapes the model folder")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                self._bundle = load_bundle(root)
        return self._bundle

    def __call__(self, table: Any) -> Any:
        import polars as pl

        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        scored, _, _ = _score_chunk(self.bundle(), frame, self.keep_columns, self.conform)
        return scored.to_arrow()


# --- scoring ----------------------------------------------------------------------------------


def _score_chunk(
    bundle: Any, frame: Any, keep_columns: bool, conform: list[tuple[str, Any]] | None = None
) -> tuple[Any, int, set[str]]:
    """One chunk through the model, the same for every engine: ``(scored frame, rows
    flagged in _issues, model columns missing from the chunk)``. ``conform``, when the
    input files' schemas differ, is the one schema they are all read in first."""
    import polars as pl

    if conform:
        frame = _conformed(frame, conform)

    missing = {c for c in bundle.input_schema if c not in frame.columns}
    typed, issues = _typed(frame, bundle.input_schema, bundle.datetime_formats or {})
    n_flagged = int(issues.is_not_null().sum())
    scored = _typed_predictions(bundle, bundle.predict_frame(typed)).with_columns(issues)
    if scored.height != frame.height:  # an internal invariant, checked on every chunk
        raise DataError(f"row count mismatch in a chunk: {frame.height} in, {scored.height} out")
    if keep_columns:
        clash = [c for c in scored.columns if c in frame.columns]
        frame = frame.rename({c: f"input_{c}" for c in clash})
        scored = pl.concat([frame, scored], how="horizontal")
    return scored, n_flagged, missing


def _conformed(frame: Any, conform: list[tuple[str, Any]]) -> Any:
    """``frame`` in the one schema of all input files: ``conform``'s columns in its order
    and types (cast by Arrow, as a Parquet reader given that schema does; absent ones
    null), then any other column (Hive partition values)."""
    import polars as pl
    import pyarrow as pa

    columns = []
    for name, arrow_type in conform:
        if name not in frame.columns:
            columns.append(pl.Series(name, pa.nulls(frame.height, arrow_type)))
            continue
        series = frame.get_column(name)
        if series.dtype != pl.Series(pa.array([], type=arrow_type)).dtype:
            try:
                series = pl.Series(name, series.to_arrow().cast(arrow_type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(
                    f"column {name!r}: cannot give it one type ({arrow_type}) across the "
                    f"input files: {exc}"
                ) from exc
        columns.append(series)
    named = {name for name, _ in conform}
    columns.extend(frame.get_column(c) for c in frame.columns if c not in named)
    return pl.DataFrame(columns)


def _typed_predictions(bundle: Any, predictions: Any) -> Any:
    """``predictions`` with the ``prediction`` column typed like the model's labels even
    when there are no rows (an empty chunk would otherwise give a column of type Null, and
    part files whose schemas disagree)."""
    import polars as pl

    if predictions.schema.get("prediction") != pl.Null:
        return predictions
    classes = list(getattr(bundle.task, "classes", None) or [])
    dtype = pl.Series(classes).dtype if classes else pl.Float64
    return predictions.with_columns(pl.col("prediction").cast(dtype))


def _stream_to_parquet(
    bundle: Any,
    source: Any,
    path: Path,
    keep_columns: bool,
    reporter: Reporter,
    rows_before: int = 0,
    conform: list[tuple[str, Any]] | None = None,
) -> _Counts:
    """Score ``source`` batch by batch into the Parquet file ``path`` (not atomic: the
    callers write temp names), one output row per parsed input row."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts = _Counts()
    writer: pq.ParquetWriter | None = None
    try:
        for batch in source.iter_batches():
            counts.bad_lines.extend(batch.bad_lines)
            frame = batch.frame
            counts.n_input += frame.height
            scored, flagged, missing = _score_chunk(bundle, frame, keep_columns, conform)
            counts.n_flagged += flagged
            counts.missing |= missing
            table = scored.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            elif table.schema != writer.schema:
                try:
                    table = table.cast(writer.schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                    raise DataError(
                        f"{source.description}: rows from {counts.n_input - frame.height + 1} "
                        f"on have column types that differ from the first rows' ({exc})"
                    ) from exc
            writer.write_table(table)
            counts.n_scored += scored.height
            reporter.rows(rows_before + counts.n_input)
        if writer is None:  # an input with a header and no rows: still write a valid file
            empty = _typed_predictions(
                bundle, bundle.predict_frame(pl.DataFrame({c: [] for c in bundle.input_schema}))
            )
            pq.write_table(pa.Table.from_pylist([], schema=empty.to_arrow().schema), path)
        else:
            writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.close()
    return counts


def _predict_one(
    bundle: Any, source: Any, out: Path, keep_columns: bool, reporter: Reporter, started: float
) -> PredictResult:
    """One input file (or SQL source) -> one Parquet file, written atomically."""
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise DataSourceError(f"--out {out}: expected a .parquet file name")
    if not out.parent.exists():
        raise DataSourceError(f"--out {out}: folder {out.parent} does not exist")
    reporter.stage("predict", f"{source.description} -> {out}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        counts = _stream_to_parquet(bundle, source, tmp, keep_columns, reporter)
        _fsync(tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    rejected = None
    if counts.bad_lines:
        rejected = out.with_name(out.stem + ".rejected.parquet")
        _rejected_frame(counts.bad_lines).write_parquet(rejected)
    _warn(reporter, counts, rejected)
    return _result(bundle, source, out, counts, rejected, started)


def _predict_many(
    bundle: Any, source: Any, out: Path, keep_columns: bool, reporter: Reporter, started: float
) -> PredictResult:
    """Several input files -> a folder with one part file per input file, in order."""
    import polars as pl

    names = list(_per_file(source))
    conform = None
    if source.format == "parquet":  # every footer read first: a broken file fails up front
        conform = _parquet_inputs(source.files, bundle.input_schema).conform
    reporter.stage("predict", f"{source.description} ({len(names)} files) -> {out}/")
    total = _Counts()
    parts: list[dict[str, Any]] = []
    rejected: list[Any] = []
    with _staged_folder(out) as tmp:
        for i, (name, sub) in enumerate(names):
            part = tmp / f"part-{i:05d}.parquet"
            counts = _stream_to_parquet(
                bundle, sub, part, keep_columns, reporter, total.n_input, conform
            )
            _fsync(part)
            parts.append({"file": part.name, "source": name, "rows": counts.n_scored})
            total.n_input += counts.n_input
            total.n_scored += counts.n_scored
            total.n_flagged += counts.n_flagged
            total.missing |= counts.missing
            total.bad_lines.extend(counts.bad_lines)
            if counts.bad_lines:
                frame = _rejected_frame(counts.bad_lines)
                rejected.append(
                    frame.with_columns(_file=pl.lit(name)).select("_file", *frame.columns)
                )
        if rejected:
            _write_fsynced(tmp / REJECTED, lambda p: pl.concat(rejected).write_parquet(p))
        _write_manifest(tmp, bundle, source, "local", parts, total)
    rejected_path = out / REJECTED if rejected else None
    _warn(reporter, total, rejected_path)
    result = _result(bundle, source, out, total, rejected_path, started)
    result.layout, result.n_files = "folder", len(names)
    result.parts = [p["file"] for p in parts]
    return result


def _predict_ray(
    bundle: Any,
    model_files: dict[str, bytes],
    source: Any,
    out: Path,
    chunk_rows: int,
    keep_columns: bool,
    workers: int | None,
    reporter: Reporter,
    started: float,
) -> PredictResult:
    """Parquet files scored with Ray Data into a folder of part files; the output's row
    count is checked against the input files' footers."""
    import pyarrow.parquet as pq

    from forgeml.engine.ray_data import score_parquet_on_ray

    files = getattr(source, "files", None)
    if files is None or source.format != "parquet":
        raise DataSourceError(
            f"--engine ray reads Parquet files; {source.description} is "
            f"{getattr(source, 'format', 'not a file source')}: use --engine local, or "
            "convert it to Parquet first"
        )
    found = _parquet_inputs(files, bundle.input_schema)
    n_rows = found.n_rows
    reporter.stage(
        "predict",
        f"{source.description} ({len(files.paths)} file(s), {n_rows:,} rows) on Ray -> {out}/",
    )
    scorer = BundleScorer(model_files, keep_columns, bundle=bundle, conform=found.conform)
    filesystem, paths = _arrow_filesystem(files)
    counts = _Counts(n_input=n_rows, missing=found.missing)
    with _staged_folder(out) as tmp:
        done = score_parquet_on_ray(
            paths,
            tmp,
            scorer,
            workers=workers,
            batch_rows=chunk_rows,
            filesystem=filesystem,
            partition_base_dir=files.root,
            schema=found.arrow_schema(),
            total_rows=n_rows,
        )
        part_paths = [Path(p) for p in done.parts]
        if not part_paths:  # no rows anywhere: still one valid (empty) part with the columns
            empty = tmp / "part-00000.parquet"
            pq.write_table(scorer(found.schemas[0].empty_table()), empty)
            part_paths = [empty]
        parts: list[dict[str, Any]] = []
        for part in part_paths:
            _fsync(part)
            issues = pq.read_table(part, columns=["_issues"]).column("_issues")
            parts.append({"file": part.name, "rows": len(issues)})
            counts.n_scored += len(issues)
            counts.n_flagged += len(issues) - issues.null_count
        reporter.rows(counts.n_scored)
        if counts.n_scored != n_rows:
            raise DataError(
                f"row count mismatch: the input files hold {n_rows:,} rows, Ray wrote "
                f"{counts.n_scored:,} (on a multi-node cluster --out must be a folder every "
                "node can write); nothing was written"
            )
        _write_manifest(tmp, bundle, source, "ray", parts, counts)
    _warn(reporter, counts, None)
    result = _result(bundle, source, out, counts, None, started)
    result.engine, result.layout, result.n_files = "ray", "folder", len(files.paths)
    result.parts = [p["file"] for p in parts]
    return result


@dataclass
class _ParquetInputs:
    n_rows: int
    schemas: list[Any]  # each file's Arrow schema
    missing: set[str]  # model columns some file lacks
    conform: list[tuple[str, Any]] | None  # the one schema, when the files' schemas differ

    def arrow_schema(self) -> Any:
        import pyarrow as pa

        return pa.schema(self.conform) if self.conform else None


def _parquet_inputs(files: Any, schema: dict[str, str]) -> _ParquetInputs:
    """Every input file's footer, read up front (a file that is not Parquet is an error
    that names it, raised before any work starts): rows, schemas, the model columns some
    file lacks, and, when the files' schemas differ, one schema to read them all in: every
    column, typed as in the files where they agree, else with the common type when Arrow
    can widen them (``int64`` and ``double``: ``double``), else as text — so that all
    part files of the output share one schema and both engines see the same values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = 0
    schemas = []
    missing: set[str] = set()
    for path in files.paths:
        name = _display(files.fs, path)
        try:
            with files.fs.open(path, "rb") as fh:
                meta = pq.read_metadata(fh)
            arrow_schema = meta.schema.to_arrow_schema()
        except PermissionError as exc:
            raise DataSourceError(f"data.source: cannot read {name}: permission denied") from exc
        except (pa.ArrowException, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataSourceError(
                f"data.source: {name} is not a valid Parquet file ({reason})"
            ) from exc
        schemas.append(arrow_schema)
        present = set(arrow_schema.names) | _partition_keys(path, files.root)
        missing |= {c for c in schema if c not in present}
        total += meta.num_rows
    types: dict[str, list[Any]] = {}
    for arrow_schema in schemas:
        for f in arrow_schema:
            types.setdefault(f.name, []).append(f.type)
    if all(s.equals(schemas[0]) for s in schemas):
        return _ParquetInputs(total, schemas, missing, None)
    conform = []
    for column, found in types.items():
        arrow_type = found[0]
        if any(t != arrow_type for t in found):
            try:
                fields = [pa.schema([pa.field(column, t)]) for t in found]
                unified = pa.unify_schemas(fields, promote_options="permissive")
                arrow_type = unified.field(column).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                arrow_type = pa.large_string()
        conform.append((column, arrow_type))
    return _ParquetInputs(total, schemas, missing, conform)


def _partition_keys(path: str, root: str | None) -> set[str]:
    """Hive partition columns (``key=value`` folders) between ``root`` and ``path``."""
    if not root:
        return set()
    try:
        parts = PurePosixPath(path).relative_to(PurePosixPath(root)).parts[:-1]
    except ValueError:
        return set()
    return {p.split("=", 1)[0] for p in parts if "=" in p}


def _arrow_filesystem(files: Any) -> tuple[Any, list[str]]:
    """A pyarrow filesystem for Ray to read ``files`` with (``None``: the local disk)."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(files.fs, LocalFileSystem):
        return None, list(files.paths)
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(files.fs)), list(files.paths)


# --- output folders ---------------------------------------------------------------------------


def _check_out_folder(out: Path) -> None:
    """``--out`` as a folder of part files: its parent exists, and it is absent, empty or a
    previous ``forgeml predict`` output (which is replaced)."""
    if not out.parent.exists():
        raise DataSourceError(f"--out {out}: folder {out.parent} does not exist")
    if out.is_file() or (out.exists() and not out.is_dir()):
        raise DataSourceError(
            f"--out {out}: is a file; with a folder or glob as input, or --engine ray, "
            "--out names a folder that receives part files"
        )
    if out.is_dir() and any(out.iterdir()) and not _is_predictions_folder(out):
        raise DataSourceError(
            f"--out {out}: the folder holds files forgeml predict did not write; "
            "choose a new or empty folder"
        )


def _check_not_inside(out: Path, files: Any) -> None:
    """``--out`` must not lie in the input folder: the next run would read the
    predictions as input."""
    from fsspec.implementations.local import LocalFileSystem

    if files is None or not files.root or not isinstance(files.fs, LocalFileSystem):
        return
    root = Path(files.root).resolve()
    target = out.resolve()
    if target == root or root in target.parents:
        raise DataSourceError(
            f"--out {out}: is inside the input folder {files.source}; a later run would "
            "read the predictions as input: choose a folder outside it"
        )


def _is_predictions_folder(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT


@contextmanager
def _staged_folder(out: Path) -> Iterator[Path]:
    """A temp folder beside ``out`` to fill; on success it becomes ``out`` (replacing a
    previous predictions folder), on failure it is removed with everything in it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        _fsync_dir(tmp)
        _check_out_folder(out)  # again: something may have appeared there meanwhile
        if out.exists():
            old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
        _fsync_dir(out.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_manifest(
    folder: Path,
    bundle: Any,
    source: Any,
    engine: str,
    parts: list[dict[str, Any]],
    counts: _Counts,
) -> None:
    meta = bundle.metadata or {}
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": 1,
        "model": str(meta.get("name", "")),
        "version": int(meta.get("version", 0)),
        "input": source.description,
        "engine": engine,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_rows": counts.n_scored,
        "n_flagged": counts.n_flagged,
        "n_unreadable": len(counts.bad_lines),
        "parts": parts,
    }
    _write_fsynced(folder / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2)))


def _write_fsynced(path: Path, write: Any) -> None:
    write(path)
    _fsync(path)


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse it
        pass
    finally:
        os.close(fd)


# --- inputs -----------------------------------------------------------------------------------


def _per_file(source: Any) -> Iterator[tuple[str, Any]]:
    """``(name, source)`` for each file of a multi-file source: the same reader and options,
    one file each (Hive partition columns kept), named by its own path in messages."""
    from forgeml.config.redact import hide_password
    from forgeml.data.locations import Files

    files = source.files
    for path in files.paths:
        name = hide_password(_display(files.fs, path))
        one = copy.copy(source)
        one.files = Files(files.fs, [path], name, single=True, root=files.root)
        one.description = name
        yield name, one


def _display(fs: Any, path: str) -> str:
    """How messages name a file: its local path, or its URI on a remote filesystem."""
    from fsspec.implementations.local import LocalFileSystem

    return path if isinstance(fs, LocalFileSystem) else str(fs.unstrip_protocol(path))


# --- results ----------------------------------------------------------------------------------


def _rejected_frame(bad_lines: list[Any]) -> Any:
    import polars as pl

    return pl.DataFrame(
        {
            "_line": [b.line for b in bad_lines],
            "_raw": [b.text for b in bad_lines],
            "reason": [b.reason for b in bad_lines],
        },
        schema={"_line": pl.Int64, "_raw": pl.String, "reason": pl.String},
    )


def _warn(reporter: Reporter, counts: _Counts, rejected: Path | None) -> None:
    if counts.bad_lines:
        reporter.warn(f"{len(counts.bad_lines)} unreadable line(s) written to {rejected}")
    if counts.n_flagged:
        reporter.warn(
            f"{counts.n_flagged:,} row(s) had values that do not fit the model's column types; "
            "they were scored with those values as missing and are flagged in the _issues column"
        )
    if counts.missing:
        reporter.warn(
            f"input lacks column(s) {', '.join(sorted(counts.missing))}: treated as missing values"
        )


def _result(
    bundle: Any, source: Any, out: Path, counts: _Counts, rejected: Path | None, started: float
) -> PredictResult:
    meta = bundle.metadata or {}
    return PredictResult(
        model=str(meta.get("name", "")),
        version=int(meta.get("version", 0)),
        input=source.description,
        output=str(out),
        n_input=counts.n_input + len(counts.bad_lines),
        n_scored=counts.n_scored,
        n_unreadable=len(counts.bad_lines),
        rejected_path=str(rejected) if rejected else None,
        seconds=time.monotonic() - started,
        missing_columns=sorted(counts.missing),
        n_flagged=counts.n_flagged,
    )


def _typed(frame: Any, schema: dict[str, str], formats: dict[str, str]) -> tuple[Any, Any]:
    """Cast ``frame``'s model columns to their training types; a ``_issues`` column names,
    per row, the columns whose values did not fit (null when none)."""
    import polars as pl

    from forgeml.config.spec import ColumnSpec
    from forgeml.data import cast_to_schema

    present = {
        c: ColumnSpec(type=kind, datetime_format=formats.get(c))
        for c, kind in schema.items()
        if c in frame.columns
    }
    if not present:
        return frame, pl.Series("_issues", [None] * frame.height, dtype=pl.String)
    cast, failed = cast_to_schema(frame.select(list(present)), present)
    issues = failed.select(
        pl.concat_str(
            [pl.when(pl.col(c)).then(pl.lit(c)) for c in failed.columns],
            separator=", ",
            ignore_nulls=True,
        ).alias("_issues")
    )["_issues"]
    issues = pl.Series("_issues", issues).replace("", None)
    return frame.with_columns(cast), issues
