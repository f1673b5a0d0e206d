"""skops files loaded against a trust list that lives here, in forgeml's code.

skops refuses types outside its defaults plus a caller's list, but its defaults trust every
scikit-learn estimator and many NumPy functions — enough to rebuild a ``Pipeline`` around a
``FunctionTransformer(numpy.exp)``. A random forest needs far less, so forgeml is stricter:
every type named anywhere in the file (read from its ``schema.json``, before any object is
built) must be in :data:`TRUST_LIST`, every node must use a loader in :data:`LOADERS`, and
every archive member must be stored uncompressed (no zip bombs). Only then does
``skops.io.loads(data, trusted=TRUST_LIST)`` run.

>>> "sklearn.tree._tree.Tree" in TRUST_LIST
True
>>> loads(b"not a zip", what="model.skops")
Traceback (most recent call last):
...
forgeml.errors.ArtifactIntegrityError: model.skops: not a skops archive (File is not a zip file)
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

from forgeml.errors import ArtifactIntegrityError

__all__ = ["LOADERS", "TRUST_LIST", "dumps", "loads", "types_in"]

# Exactly the types a fitted RandomForestClassifier/Regressor is made of.
TRUST_LIST: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.int64",
    "numpy.ndarray",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
)

# skops node kinds that only rebuild containers, arrays and trusted objects; the kinds that
# call functions or methods (FunctionNode, MethodNode, ReduceNode, ...) are not here.
LOADERS: frozenset[str] = frozenset(
    {
        "DictNode",
        "JsonNode",
        "ListNode",
        "NdArrayNode",
        "ObjectNode",
        "TreeNode",
        "TupleNode",
        "TypeNode",
    }
)


def dumps(obj: Any) -> bytes:
    """``obj`` as skops bytes (uncompressed, which :func:`loads` requires)."""
    import skops.io as sio

    return bytes(sio.dumps(obj))


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__class__" in item or "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def types_in(data: bytes, *, what: str = "skops file") -> tuple[set[str], set[str]]:
    """``(types, loaders)`` named anywhere in a skops file, read without building anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                    raise ArtifactIntegrityError(f"{what}: member {info.filename!r} is compressed")
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ArtifactIntegrityError(f"{what}: not a skops archive ({exc})") from exc
    types: set[str] = set()
    loaders: set[str] = set()
    for node in _nodes(schema):
        module, cls, loader = node.get("__module__"), node.get("__class__"), node.get("__loader__")
        if not (isinstance(module, str) and isinstance(cls, str) and isinstance(loader, str)):
            raise ArtifactIntegrityError(f"{what}: malformed schema node")
        types.add(f"{module}.{cls}")
        loaders.add(loader)
    if not types:
        raise ArtifactIntegrityError(f"{what}: empty schema")
    return types, loaders


def loads(data: bytes, *, what: str = "skops file") -> Any:
    """Build the object in ``data`` if every type and loader in it is trusted.

    Raises :class:`ArtifactIntegrityError` naming the untrusted types otherwise.
    """
    types, loaders = types_in(data, what=what)
    import skops.io as sio

    try:
        flagged = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises many types for a malformed archive
        raise ArtifactIntegrityError(f"{what}: unreadable skops archive ({exc})") from exc
    untrusted = sorted((types | flagged) - set(TRUST_LIST))
    if untrusted:
        raise ArtifactIntegrityError(
            f"{what}: refusing to load types outside forgeml's trust list: {', '.join(untrusted)}"
        )
    odd = sorted(loaders - LOADERS)
    if odd:
        raise ArtifactIntegrityError(f"{what}: refusing skops node kinds {', '.join(odd)}")
    return sio.loads(data, trusted=list(TRUST_LIST))
