"""The public surface of forgeml.features is exactly its ``__all__``."""

from __future__ import annotations

import forgeml.features as features


def test_public_names() -> None:
    assert sorted(features.__all__) == ["FeaturePipeline", "FittedFeatures", "Matrix"]
    public = {n for n in vars(features) if not n.startswith("_")}
    # submodules are reachable as attributes once imported; everything else is in __all__
    assert public - set(features.__all__) <= {
        "annotations",
        "base",
        "categorical",
        "datetime_parts",
        "fitted",
        "hashing",
        "inputs",
        "numeric",
        "pipeline",
        "records",
        "scalars",
        "streaming",
        "target_encoding",
        "text",
        "timestamps",
    }
