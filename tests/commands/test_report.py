"""``nni-decouple report`` on short real searches (DARTS, and DOTS with its topology weights and stages),
the per-epoch architecture record behind it, its TensorBoard copy, and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from nni_decouple.cli import main
from nni_decouple.runner.recorder import HISTORY_FILE, append_record, read_history
from nni_decouple.viz.report import SECTIONS

TINY = ["--epochs", "2", "--train-limit", "256", "--layers", "3", "--channels", "4", "--nodes", "2", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """DARTS, DOTS (one op-search and one topology-search epoch) and DNAS (per-layer cells), 2 epochs each."""
    root = tmp_path_factory.mktemp("report-runs")
    out = {}
    for method in ("darts", "dots", "dnas"):
        out[method] = root / method
        assert main(["search", method, *TINY, "--out", str(out[method])]) == 0
        assert main(["report", str(out[method])]) == 0
    return out


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.ids.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))


def _section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert m, sid
    return m.group(1)


def test_history_records_every_epoch(runs):
    for method in ("darts", "dots"):
        run = runs[method]
        history = read_history(run)
        assert [r["epoch"] for r in history] == [0, 1, 2], method
        final = json.loads((run / "arch_probs.json").read_text())
        assert history[-1]["skip_connections"] == final["skip_connections"]
        assert history[-1]["genotype"]["normal"] == json.loads((run / "genotype.json").read_text())["normal"]
        for record in history:
            assert {k.split("/")[0] for k in record["parameters"]} == {"normal", "reduce"}
            assert any(k.startswith("normal/") and k.rsplit("/", 1)[1][0].isdigit() for k in record["probs"])
        # the weights move during the search
        first, last = history[0]["parameters"], history[-1]["parameters"]
        assert any(first[k] != last[k] for k in first), method


def test_history_of_dots_has_topology_stage_and_temperature(runs):
    history = read_history(runs["dots"])
    assert [r["stage"] for r in history] == [None, "op_search", "topology_search"]
    assert history[1]["temperatures"]["topology.temperature"] == 1.0
    # a one-epoch topology search anneals within the epoch (--anneal auto: per step), ending at t_min
    assert history[2]["temperatures"]["topology.temperature"] == pytest.approx(0.02)
    assert any(name.startswith("normal/topology.beta") for name in history[-1]["parameters"])
    assert not any("/topology_" in k for k in history[1]["probs"])  # topology switched off in op search
    assert any("/topology_" in k for k in history[2]["probs"])


def test_history_of_a_per_layer_search_names_every_cell(runs):
    history = read_history(runs["dnas"])
    names = list(history[-1]["parameters"])
    cells = {"normal_0", "reduce_1", "reduce_2"}  # 3 layers, reductions at 1 and 2
    assert {n.split("/")[0] for n in names if n.endswith(".gamma")} == cells
    assert {n.split("/")[0] for n in names if n.endswith(".beta")} == cells
    assert [n for n in names if n.endswith(".alpha")] == ["normal_0/op_weights.shared.alpha"]  # shared: once
    page = (runs["dnas"] / "report.html").read_text()
    for label in cells:
        assert f"<h4>{label}</h4>" in _section(page, "weights")


def test_resumed_history_keeps_the_last_record_of_an_epoch(tmp_path):
    lines = [{"epoch": 0, "v": "a"}, {"epoch": 1, "v": "b"}, {"epoch": 1, "v": "c"}]
    (tmp_path / HISTORY_FILE).write_text("\n".join(json.dumps(x) for x in lines) + '\n{"epoch": 2, "v"')
    assert [r["v"] for r in read_history(tmp_path)] == ["a", "c"]  # a line cut short by a kill is ignored
    append_record(tmp_path / HISTORY_FILE, {"epoch": 2, "v": "d"})  # the resumed run's record survives the cut
    append_record(tmp_path / HISTORY_FILE, {"epoch": 3, "v": "e"})
    assert [r["v"] for r in read_history(tmp_path)] == ["a", "c", "d", "e"]
    append_record(tmp_path / "new" / HISTORY_FILE, {"epoch": 0, "v": "f"})
    assert (tmp_path / "new" / HISTORY_FILE).read_text() == '{"epoch":0,"v":"f"}\n'


def test_tensorboard_has_the_architecture(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(runs["dots"] / "tensorboard"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    histograms = events.Tags()["histograms"]
    assert "arch/normal/op_weights.search.alpha" in histograms and "arch/reduce/topology.beta.0" in histograms
    assert [e.step for e in events.Histograms("arch/normal/op_weights.search.alpha")] == [0, 1, 2]
    scalars = events.Tags()["scalars"]
    assert "schedule/topology.temperature" in scalars
    assert [e.value for e in events.Scalars("schedule/stage_index")] == [1.0, 3.0]


def test_report_is_self_contained_with_every_section(runs):
    for method, run in runs.items():
        page = (run / "report.html").read_text()
        parser = _Sections()
        parser.feed(page)
        assert parser.ids == [sid for sid, _ in SECTIONS], method
        assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
        assert not re.search(r'(src|href)="(https?:|//)', page)  # nothing fetched from elsewhere
        for src in parser.images[:3]:
            assert len(src) > 2000
        assert "MACs (M)" in _section(page, "size") and "as searched" in _section(page, "size")
        assert "<img" in _section(page, "cells") and "<img" in _section(page, "skip")
        assert 50_000 < len(page) < 5_000_000


def test_report_shows_what_each_method_has(runs):
    darts = (runs["darts"] / "report.html").read_text()
    dots = (runs["dots"] / "report.html").read_text()
    assert "no temperature or stage schedule" in _section(darts, "schedule")
    assert "no topology weights" in _section(darts, "weights")
    assert "<img" in _section(dots, "schedule") and "topology_search" in _section(dots, "schedule")
    assert "topology beta" in _section(dots, "weights")
    assert "no topology weights" not in _section(dots, "weights")


def test_report_errors(tmp_path, capsys, runs):
    assert main(["report", str(runs["darts"])]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "nni-decouple search" in capsys.readouterr().err


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: run scripts/bootstrap.sh (it installs Debian's chromium)")
        pytest.skip("chromium is not installed (scripts/bootstrap.sh installs it)")
    return path


def test_report_renders_in_headless_chromium(runs, tmp_path):
    chromium = _chromium()
    url = (runs["dots"] / "report.html").as_uri()
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the page's script ran: it builds the table of contents and counts the images it rendered
    m = re.search(r'<body data-rendered="(\d+)"', dom.stdout)
    assert m and int(m.group(1)) > 5, dom.stdout[:500]
    for sid, heading in SECTIONS:
        assert f'<section id="{sid}"><h2>{heading}</h2>' in dom.stdout
        assert f'<a href="#{sid}">{heading}</a>' in dom.stdout
    assert '<div id="js-errors"></div>' in dom.stdout  # no script error reported on the page
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "report.png"
    result = subprocess.run([chromium, *flags, "--window-size=1200,900", f"--screenshot={shot}", url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 900)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100  # not a blank page


def test_count_axes_have_whole_ticks():
    """Skip connections and a parameter's entries are counted: no 0.5 ticks (the report drew 0.2, 0.4, ...
    on the skip-connection axis and 0.5, 1.5 on a 3-entry heatmap)."""
    from nni_decouple.viz.diagrams import pyplot
    from nni_decouple.viz.report import plot_parameters, plot_skips

    history = [{"skip_connections": {"normal": n, "reduce": 0}, "parameters": {"beta": [0.1 * n, 0.2, -0.1]}}
               for n in (0, 0, 1, 1)]
    epochs = [0, 1, 2, 3]
    for fig in (plot_skips(epochs, history), plot_parameters("topology beta", ["beta"], epochs, history)):
        fig.canvas.draw()
        ticks = [t for ax in fig.axes if ax.get_label() != "<colorbar>" for t in ax.get_yticks()
                 if min(ax.get_ylim()) - 1e-9 <= t <= max(ax.get_ylim()) + 1e-9]  # the ticks drawn
        pyplot().close(fig)
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
