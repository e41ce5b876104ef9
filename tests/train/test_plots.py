"""train.plots: figures a person reads instead of tables."""

import math

import train.plots


def test_differences_plot_has_one_legend_of_every_series_beside_the_panels(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(train.plots, "save_figure", lambda fig, path: saved.append(fig) or path)
    panels = {"random": {"base": {"de": (0.01, -0.02, 0.04), "it": (0.02, -0.01, 0.05)}},
              "speaker": {"base": {"de": (0.0, -0.03, 0.03)}, "nas": {"en": (0.03, math.nan, math.nan)}}}
    train.plots.plot_differences(panels, tmp_path / "d.png", "difference")
    fig = saved[0]
    first, last = fig.axes
    assert first.get_legend() is None
    legend = last.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["de", "it", "en"]
    # anchored right of the last panel, so that no interval is hidden under it
    assert legend.get_bbox_to_anchor().x0 >= last.get_window_extent().x1
    train.plots.plt.close(fig)
