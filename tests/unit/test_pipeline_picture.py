"""The pipeline picture of notebook 01: every arrow visible between the boxes it joins."""

from __future__ import annotations

import pytest
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from etl_kit import nb

pytestmark = pytest.mark.unit

GRID = [(0, 2), (1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (7, 2), (4.5, 3.1), (4.5, 0.9), (6, 0.9),
        (7.3, 0.9)]


def test_every_arrow_is_long_enough_to_see_and_runs_between_boxes() -> None:
    boxes = [(f"kind name-{i}", i % 2 == 0, xy) for i, xy in enumerate(GRID)]
    fig = nb.pipeline_picture(boxes, "pipeline")
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    drawn = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(drawn) == len(GRID) and len(arrows) == len(nb.PIPELINE_ARROWS) == 11
    to_inches = ax.transData + fig.dpi_scale_trans.inverted()  # data units -> inches on the page
    for (x0, y0), (x1, y1) in nb.PIPELINE_ARROWS:
        (a, b), (c, d) = (to_inches.transform(p) for p in ((x0, y0), (x1, y1)))
        assert ((c - a) ** 2 + (d - b) ** 2) ** 0.5 >= 0.18, ((x0, y0), (x1, y1))  # inches on a 14 in figure
        for x, y in ((x0, y0), (x1, y1)):  # ends on a box edge or in a gap, never inside a box
            assert not any(bx < x < bx + nb.BOX_W and by - nb.BOX_H / 2 < y < by + nb.BOX_H / 2
                           for bx, by in GRID), (x, y)
    assert all(a.get_zorder() > b.get_zorder() for a in arrows for b in drawn)  # drawn over the boxes
    assert all(a.get_edgecolor()[:3] == (0.0, 0.0, 0.0) for a in arrows)
