"""The PNGs of element maps: an element that is absent does not look like signal."""

import numpy as np

from dwellwise import plots


def test_an_absent_element_is_drawn_black_and_named_so(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    bright = np.arange(16.0).reshape(4, 4)
    unmeasured = np.full((4, 4), np.nan)
    unmeasured[0] = 2.0
    maps = np.stack([bright, np.zeros((4, 4)), unmeasured])
    plots.save_element_maps(maps, ["Fe_K", "S_K", "Pb_L"], tmp_path / "m.png", clip_percentile=99.5)
    axes = [ax for ax in figures[0].axes if ax.get_title()]
    titles = {ax.get_title(): ax.images[0].get_clim() for ax in axes}
    assert titles["S_K (none)"] == (0.0, 1.0)
    assert titles["Fe_K"][0] == 0.0 and titles["Fe_K"][1] > 14.0
    assert titles["Pb_L"] == (0.0, 2.0)  # NaN pixels do not spoil the colour scale
