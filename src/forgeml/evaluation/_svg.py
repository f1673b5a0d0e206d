"""Matplotlib figures rendered to deterministic, inlinable SVG strings.

Figures are built with the object-oriented API (``matplotlib.figure.Figure`` on an Agg
canvas), never through ``pyplot``: no window is opened, the process-wide backend a user
chose (in a notebook, say) is left alone, and no global figure registry keeps figures
alive, so nothing needs closing. Style and the SVG hash salt are set with
``rc_context`` for the duration of one plot only.

>>> with figure((2.0, 1.5)) as fig:
...     _ = fig.add_subplot().plot([0, 1], [0, 1])
...     svg = to_svg(fig, "A line")
>>> svg.startswith("<svg") and "<title>A line</title>" in svg
True
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

__all__ = ["PALETTE", "figure", "namespace_ids", "plain", "to_svg"]

PALETTE = (
    "#1f5fa8",
    "#e07b39",
    "#2a9d8f",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#d67fb5",
    "#7f7f7f",
    "#b5a642",
    "#4fa3c7",
)
MUTED = "#9aa3ad"
INK = "#2b2f36"

_RC: dict[RcKeyType, Any] = {
    # A fixed salt makes the ids matplotlib derives from it (clip paths, markers) stable.
    "svg.hashsalt": "forgeml",
    "svg.fonttype": "path",  # glyphs as paths: looks the same everywhere, needs no font file
    "font.family": "DejaVu Sans",  # ships with matplotlib, so output is machine-independent
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "axes.edgecolor": "#b8c0c8",
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e6e9ed",
    "grid.linewidth": 0.7,
    "xtick.color": "#5b6470",
    "ytick.color": "#5b6470",
    "text.color": INK,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "savefig.dpi": 90,  # only rasterised artists (large scatters) use it
    "path.simplify": True,
}

_HEADER = re.compile(r"\A.*?(?=<svg)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_SVG_OPEN = re.compile(r"<svg\b[^>]*>")
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(\bid="|href="#|url\(#)([^")]+)(?=[")])')
_MATHTEXT = str.maketrans({"$": r"\$"})


def plain(text: object, limit: int = 40) -> str:
    """A user string made safe for a matplotlib label: ``$`` would start mathtext (and an
    unbalanced one raises), so it is escaped; long strings are cut with an ellipsis.

    >>> plain("price in $ (USD)")
    'price in \\\\$ (USD)'
    >>> plain("x" * 50, limit=10)
    'xxxxxxxxx…'
    """
    s = str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.translate(_MATHTEXT)


@contextmanager
def figure(size: tuple[float, float]) -> Iterator[Figure]:
    """A new figure of ``size`` inches under forgeml's plot style (matplotlib is
    imported here, on first use, so importing forgeml.evaluation stays cheap)."""
    import matplotlib
    from cycler import cycler
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rc: dict[RcKeyType, Any] = {**_RC, "axes.prop_cycle": cycler(color=PALETTE)}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        try:
            yield fig
        finally:
            fig.clear()


def to_svg(fig: Figure, title: str) -> str:
    """The figure as an ``<svg>`` element with a ``<title>``: no XML prolog or doctype,
    no comments, no metadata (so no date), ready to inline in HTML. Call inside
    :func:`figure` so the style's SVG settings apply."""
    buf = io.StringIO()
    fig.savefig(
        buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
    )
    svg = _HEADER.sub("", buf.getvalue(), count=1)
    svg = _METADATA.sub("", _COMMENT.sub("", svg))
    label = html.escape(title, quote=True)
    opening = _SVG_OPEN.search(svg)
    assert opening is not None
    tag = opening.group(0)[:-1] + f' role="img" aria-label="{label}">'
    return svg[: opening.start()] + tag + f"<title>{label}</title>" + svg[opening.end() :]


def namespace_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and every reference to one) so several SVGs can share one HTML
    page without clashing ids.

    >>> namespace_ids('<g id="a"/><use xlink:href="#a"/><p clip-path="url(#a)"/>', "roc")
    '<g id="roc-a"/><use xlink:href="#roc-a"/><p clip-path="url(#roc-a)"/>'
    """
    ids = set(_ID.findall(svg))

    def rename(m: re.Match[str]) -> str:
        name = m.group(2)
        return f"{m.group(1)}{prefix}-{name}" if name in ids else m.group(0)

    return _REF.sub(rename, svg)
