"""``forgeml models export``: write a registered model in another ecosystem's format.

``mlflow``: an MLflow model folder — ``MLmodel`` with a ``python_function`` flavor whose
loader is :mod:`forgeml.workflow.mlflow_pyfunc`, an input signature built from the model's
input schema, ``requirements.txt``/``python_env.yaml``, and the forgeml model files under
``model/``. ``mlflow.pyfunc.load_model`` loads it and predicts exactly what
``forgeml predict`` does. No pickle is involved at any step.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from forgeml._optional import require
from forgeml.errors import UsageError

__all__ = ["export_model"]

_MLFLOW_TYPES = {
    "int": "long",
    "float": "double",
    "bool": "boolean",
    "string": "string",
    "categorical": "string",
    "text": "string",
    # JSON clients (MLflow scoring server, MLServer, KServe) send timestamps as ISO strings;
    # the feature pipeline parses them, so the signature asks for strings.
    "datetime": "string",
    "id": "string",
}


def export_model(registry: str, ref: str, out: Path, *, format: str = "mlflow") -> dict[str, Any]:
    """Export ``ref`` from ``registry`` to the folder ``out`` (which must not exist)."""
    if format != "mlflow":
        raise UsageError(f"--format: unknown export format {format!r} (known: mlflow)")
    out = Path(out)
    if out.exists():
        raise UsageError(f"--out {out}: already exists; choose a new folder")
    from forgeml.models.bundle import load_bundle
    from forgeml.workflow.workspace import Workspace

    mlflow = require("mlflow", extra="mlflow", feature="exporting to MLflow")
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    with Workspace.from_uri(registry).open_registry(create=False) as reg:
        version = reg.resolve(ref)
        source = reg.open_artifacts(version)
        bundle = load_bundle(source)  # verifies the files before we copy them
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            shutil.copytree(source, staging / "model")
            inputs = Schema(
                [
                    ColSpec(_MLFLOW_TYPES.get(kind, "string"), name, required=False)
                    for name, kind in bundle.input_schema.items()
                ]
            )
            outputs = _output_schema(bundle, ColSpec, Schema)
            model = Model()
            mlflow.pyfunc.add_to_model(
                model,
                loader_module="forgeml.workflow.mlflow_pyfunc",
                data="model",
                python_env="python_env.yaml",
            )
            model.signature = ModelSignature(inputs=inputs, outputs=outputs)
            model.metadata = {"forgeml_model": version.name, "forgeml_version": version.version}
            model.save(str(staging / "MLmodel"))
            from forgeml import __version__

            (staging / "requirements.txt").write_text(f"forgeml=={__version__}\n")
            (staging / "python_env.yaml").write_text(
                f"python: {platform.python_version()}\nbuild_dependencies:\n  - pip\n"
                "dependencies:\n  - -r requirements.txt\n"
            )
            staging.replace(out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return {
        "model": f"{version.name}@{version.version}",
        "format": format,
        "path": str(out),
        "inputs": list(bundle.input_schema),
    }


def _output_schema(bundle: Any, col_spec: Any, schema: Any) -> Any:
    if bundle.task.kind == "regression":
        return schema([col_spec("double", "prediction")])
    label = {bool: "boolean", int: "long", float: "double"}.get(
        type(bundle.task.classes[0]), "string"
    )
    cols = [col_spec(label, "prediction")]
    cols += [col_spec("double", f"proba_{c}") for c in bundle.task.classes]
    return schema(cols)
