"""A strict reader of LightGBM's text model format, run before LightGBM parses a file.

LightGBM's own parser trusts its input: a ``tree_sizes`` line that disagrees with the trees
makes it read past the buffer and abort the process, a mangled ``parameters:`` line
segfaults it, and child or feature indices out of range become out-of-bounds reads at
prediction time. So a model file is checked line by line against the grammar forgeml's
models use (numerical splits only, no linear trees), each tree's structure is checked, and
LightGBM is handed a rebuilt text holding only the validated header (without
``tree_sizes``, so it parses trees one by one within bounds) and trees. The sections after
the trees (importances, parameters) are not passed on, but they must be there, ending with
the ``pandas_categorical:`` line the Python package writes last: a cut file is refused.

>>> text = sanitize(_EXAMPLE, n_features=1, n_trees=1, objective="regression")
>>> text.splitlines()[:3]
['tree', 'version=v4', 'num_class=1']
>>> sanitize(_EXAMPLE.replace("left_child=-1", "left_child=7"), n_features=1, n_trees=1,
...          objective="regression")
Traceback (most recent call last):
...
forgeml.errors.ArtifactIntegrityError: LightGBM model: tree 0: child index out of range
"""

from __future__ import annotations

import re

import numpy as np

from forgeml.errors import ArtifactIntegrityError
from forgeml.models._trees import check_tree

__all__ = ["sanitize"]

_INT = r"-?\d{1,10}"
_FLOAT = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?"
_INTS = re.compile(rf"(?:{_INT}(?: {_INT})*)?")
_FLOATS = re.compile(rf"(?:{_FLOAT}(?: {_FLOAT})*)?")
_KEY_VALUE = re.compile(r"([a-z_]+)=(.*)")
_OBJECTIVE = re.compile(r"(binary|multiclass|regression)(?: [a-z_]+:[-+.0-9eE]{1,32})*")
_FEATURE_INFO = re.compile(rf"none|\[{_FLOAT}:{_FLOAT}\]")
_FEATURE_NAME = re.compile(r"[^\s=\[\]:,]{1,256}")

_HEADER_REQUIRED = (
    "version",
    "num_class",
    "num_tree_per_iteration",
    "label_index",
    "max_feature_idx",
    "objective",
    "feature_names",
    "feature_infos",
)
_HEADER_OPTIONAL = ("tree_sizes",)  # dropped: it is what lets LightGBM read out of bounds

# Tree fields: (kind, length) with length "n" = num_leaves, "i" = num_leaves - 1.
_TREE_FIELDS: dict[str, tuple[str, str]] = {
    "split_feature": ("int", "i"),
    "split_gain": ("float", "i"),
    "threshold": ("float", "i"),
    "decision_type": ("int", "i"),
    "left_child": ("int", "i"),
    "right_child": ("int", "i"),
    "leaf_value": ("float", "n"),
    "leaf_weight": ("float", "n"),
    "leaf_count": ("int", "n"),
    "internal_value": ("float", "i"),
    "internal_weight": ("float", "i"),
    "internal_count": ("int", "i"),
}
_TREE_KEYS = frozenset({"num_leaves", "num_cat", "is_linear", "shrinkage", *_TREE_FIELDS})
_END = "end of trees"


def _fail(message: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(f"LightGBM model: {message}")


def _numbers(value: str, kind: str, length: int, *, what: str) -> np.ndarray:
    pattern = _INTS if kind == "int" else _FLOATS
    if pattern.fullmatch(value) is None:
        raise _fail(f"{what}: malformed number list")
    arr = np.array(
        value.split(" ") if value else [], dtype=np.int64 if kind == "int" else np.float64
    )
    if arr.shape[0] != length:
        raise _fail(f"{what}: {arr.shape[0]} values, expected {length}")
    if kind == "float" and not np.isfinite(arr).all():
        raise _fail(f"{what}: non-finite values")
    return arr


def _fields(lines: list[str], allowed: frozenset[str], *, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        match = _KEY_VALUE.fullmatch(line)
        if match is None or match.group(1) not in allowed:
            raise _fail(f"{what}: unexpected line {line[:60]!r}")
        if match.group(1) in out:
            raise _fail(f"{what}: {match.group(1)} given twice")
        out[match.group(1)] = match.group(2)
    return out


def _header(lines: list[str], n_features: int, objective: str) -> tuple[list[str], int]:
    """Checked header lines (without ``tree_sizes``) and the trees per iteration."""
    if not lines or lines[0] != "tree":
        raise _fail("does not start with 'tree'")
    body = [line for line in lines[1:] if line]
    fields = _fields(body, frozenset(_HEADER_REQUIRED + _HEADER_OPTIONAL), what="header")
    missing = [key for key in _HEADER_REQUIRED if key not in fields]
    if missing:
        raise _fail(f"header lacks {', '.join(missing)}")
    if fields["version"] != "v4":
        raise _fail(f"unsupported format version {fields['version'][:20]!r}")
    num_class = _numbers(fields["num_class"], "int", 1, what="num_class")[0]
    per_iter = _numbers(fields["num_tree_per_iteration"], "int", 1, what="num_tree_per_iteration")[
        0
    ]
    if per_iter != num_class or not 1 <= num_class <= 10_000:
        raise _fail("inconsistent class count")
    if _numbers(fields["label_index"], "int", 1, what="label_index")[0] != 0:
        raise _fail("unexpected label_index")
    if _numbers(fields["max_feature_idx"], "int", 1, what="max_feature_idx")[0] != n_features - 1:
        raise _fail(f"the model does not read {n_features} features")
    match = _OBJECTIVE.fullmatch(fields["objective"])
    if match is None or match.group(1) != objective:
        raise _fail(f"objective {fields['objective'][:40]!r} is not {objective!r}")
    names = fields["feature_names"].split(" ")
    infos = fields["feature_infos"].split(" ")
    if len(names) != n_features or not all(_FEATURE_NAME.fullmatch(n) for n in names):
        raise _fail("malformed feature_names")
    if len(infos) != n_features or not all(_FEATURE_INFO.fullmatch(i) for i in infos):
        raise _fail("malformed feature_infos (categorical features are not supported)")
    kept = ["tree", *(f"{key}={fields[key]}" for key in _HEADER_REQUIRED)]
    return kept, int(per_iter)


def _tree(lines: list[str], index: int, n_features: int) -> None:
    what = f"tree {index}"
    fields = _fields(lines, _TREE_KEYS, what=what)
    absent = sorted(_TREE_KEYS - set(fields))
    if absent:
        raise _fail(f"{what} lacks {', '.join(absent)}")
    n = int(_numbers(fields["num_leaves"], "int", 1, what=what)[0])
    if not 1 <= n <= 1 << 20:
        raise _fail(f"{what}: bad num_leaves")
    if fields["num_cat"] != "0" or fields["is_linear"] != "0":
        raise _fail(f"{what}: categorical splits and linear trees are not supported")
    _numbers(fields["shrinkage"], "float", 1, what=f"{what} shrinkage")
    arrays: dict[str, np.ndarray] = {}
    for key, (kind, size) in _TREE_FIELDS.items():
        length = n if size == "n" else n - 1
        if n == 1 and fields[key] == "":
            length = 0  # a single-leaf tree leaves some fields empty
        arrays[key] = _numbers(fields[key], kind, length, what=f"{what} {key}")
    if arrays["leaf_value"].shape[0] != n:
        raise _fail(f"{what}: leaf_value has {arrays['leaf_value'].shape[0]} values")
    decision = arrays["decision_type"]
    missing_type = (decision >> 2) & 3
    if np.any((decision < 0) | (decision > 15) | ((decision & 1) != 0) | (missing_type == 3)):
        raise _fail(f"{what}: unsupported decision_type")
    # One node numbering for the structure check: internal nodes 0..n-2, leaf j is n-1+j
    # (LightGBM writes a child leaf j as ~j, a negative number).
    leaves = np.full(n, -1, dtype=np.int64)
    if n > 1 and max(arrays["left_child"].max(), arrays["right_child"].max()) >= n - 1:
        raise _fail(f"{what}: child index out of range")
    left, right = (
        np.concatenate([np.where(c >= 0, c, (n - 1) + ~c), leaves])
        for c in (arrays["left_child"], arrays["right_child"])
    )
    feature = np.concatenate([arrays["split_feature"], leaves])
    check_tree(left, right, feature, n_features, what=f"LightGBM model: {what}")


def sanitize(text: str, *, n_features: int, n_trees: int, objective: str) -> str:
    """The model text LightGBM may safely parse, or :class:`ArtifactIntegrityError`.

    ``objective`` is ``binary``, ``multiclass`` or ``regression``; ``n_trees`` is the total
    number of trees expected (rounds x trees per round).
    """
    lines = text.split("\n")
    try:
        end = lines.index(_END)
    except ValueError:
        raise _fail("no 'end of trees' line (truncated?)") from None
    tail = [line for line in lines[end + 1 :] if line]
    if "end of parameters" not in tail or not tail[-1].startswith("pandas_categorical:"):
        raise _fail("the file is incomplete (truncated?)")
    starts = [i for i in range(end) if lines[i].startswith("Tree=")]
    if not starts:
        raise _fail("no trees")
    header, per_iter = _header(lines[: starts[0]], n_features, objective)
    if len(starts) != n_trees or n_trees % per_iter:
        raise _fail(f"{len(starts)} trees, expected {n_trees}")
    out = [*header, ""]
    for index, (start, stop) in enumerate(zip(starts, [*starts[1:], end], strict=True)):
        if lines[start] != f"Tree={index}":
            raise _fail(f"expected 'Tree={index}', found {lines[start][:30]!r}")
        block = lines[start + 1 : stop]
        while block and block[-1] == "":
            block.pop()
        _tree(block, index, n_features)
        out += [lines[start], *block, "", ""]
    out += [_END, ""]
    return "\n".join(out)


_EXAMPLE = """tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=0
objective=regression
feature_names=Column_0
feature_infos=[0:3]
tree_sizes=300

Tree=0
num_leaves=2
num_cat=0
split_feature=0
split_gain=1
threshold=1.5
decision_type=2
left_child=-1
right_child=-2
leaf_value=0.25 0.75
leaf_weight=2 2
leaf_count=2 2
internal_value=0.5
internal_weight=4
internal_count=4
is_linear=0
shrinkage=1


end of trees

parameters:
end of parameters

pandas_categorical:null
"""
