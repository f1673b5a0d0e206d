"""Write the reference kustomize files in deploy/k8s/ from the renderer.

    python deploy/gen_reference.py            # rewrite deploy/k8s/
    python deploy/gen_reference.py --check    # exit 1 if deploy/k8s/ is stale

The reference is exactly what ``forgeml deploy k8s`` renders for a model called ``model``,
version 1, with the default options: the same code writes both, and ``tests/deploy``
fails when the files here differ from it. ``deploy/Dockerfile`` is written by hand (it
builds from this source tree) and is checked by the same Dockerfile lint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from forgeml.deploy import ScalingOptions, k8s_files

K8S = Path(__file__).resolve().parent / "k8s"
REFERENCE = ScalingOptions().for_model("model", 1)


def expected() -> dict[Path, str]:
    """The reference files, by absolute path."""
    return {K8S / rel: text for rel, text in k8s_files(REFERENCE).items()}


def stale() -> list[Path]:
    """Files that differ from the renderer, are missing, or should not be there."""
    want = expected()
    have = {p for p in K8S.rglob("*") if p.is_file()} if K8S.is_dir() else set()
    wrong = [p for p, text in want.items() if not p.is_file() or p.read_text() != text]
    return sorted([*wrong, *(have - set(want))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if deploy/k8s is stale")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for path in bad:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if bad else 0
    want = expected()
    for path in {p for p in K8S.rglob("*") if p.is_file()} - set(want):
        path.unlink()
    for path, text in want.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
