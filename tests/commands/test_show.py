"""``nni-decouple show`` and :mod:`nni_decouple.viz.diagrams`: paper-style cell diagrams as png, svg and pdf."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from nni_decouple.cli import main
from nni_decouple.models.genotype import CellGenotype, Genotype, load_genotype, save_genotype
from nni_decouple.viz.diagrams import cell_figure, draw_cell, layout, pyplot, ranks

REPO = Path(__file__).resolve().parents[2]

# Variable in-degree: one input, three inputs, an unused node without inputs, two inputs.
VARIABLE = CellGenotype.from_edges([
    [("sep_conv_3x3", 0)],
    [("skip_connect", 1), ("dil_conv_5x5", 0), ("max_pool_3x3", 2)],
    [],
    [("sep_conv_5x5", 3), ("avg_pool_3x3", 1)],
])


def test_shared_cells_png(tmp_path, capsys):
    out = tmp_path / "darts_v2.png"
    assert main(["show", "darts_v2", "--out", str(out), "--dpi", "80"]) == 0
    assert "2 cells" in capsys.readouterr().out
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert 600 <= width <= 3000 and 150 <= height <= 1200, (width, height)
    assert width > height  # two cells side by side, drawn left to right
    assert colours is None or len(colours) > 50  # drawn, not blank


def test_per_layer_svg_has_every_op_and_layer(tmp_path):
    genotype = load_genotype(REPO / "backbones" / "ddarts_sparse_c10.json")
    assert genotype.per_layer
    out = tmp_path / "ddarts.svg"
    assert main(["show", str(REPO / "backbones" / "ddarts_sparse_c10.json"), "--out", str(out)]) == 0
    assert 20_000 < out.stat().st_size < 2_000_000
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    texts = [t.text or "" for t in root.iter() if t.tag.endswith("text")]
    joined = " ".join(texts)
    for i in range(len(genotype.layers)):
        assert f"layer {i}" in joined
    ops = {op for cell in genotype.layers for op in cell.ops()}
    edge_labels = [t.strip() for t in texts if t.strip() in ops]
    assert len(edge_labels) == sum(len(c.ops()) for c in genotype.layers)  # one label per edge of every layer


def test_variable_in_degree_pdf(tmp_path):
    path = save_genotype(Genotype(normal=VARIABLE, reduce=VARIABLE).validate(), tmp_path / "variable.json")
    out = tmp_path / "variable.pdf"
    assert main(["show", str(path), "--out", str(out), "--cells", "normal"]) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert 5_000 < len(data) < 500_000


def test_every_edge_is_drawn_with_its_op():
    plt = pyplot()
    fig, ax = plt.subplots()
    try:
        draw_cell(ax, VARIABLE, "variable")
        labels = [t.get_text() for t in ax.texts]
    finally:
        plt.close(fig)
    assert sorted(label for label in labels if not label.startswith("$") and not label.isdigit()) == sorted(
        VARIABLE.ops())
    assert {"$c_{k-2}$", "$c_{k-1}$", "$c_{k}$", "0", "1", "2", "3"} <= set(labels)


def test_layout_ranks_nodes_after_their_sources():
    rank = ranks(VARIABLE)
    assert rank[0] == rank[1] == 0
    assert rank[2] == 1 and rank[3] == 2 and rank[4] == 1 and rank[5] == 3
    assert rank[-1] == 4
    pos = layout(VARIABLE)
    for target, edge in VARIABLE.edges():
        assert pos[edge.source][0] < pos[target][0]  # every edge points right
    assert len({pos[n] for n in pos}) == len(pos)  # no two nodes on one spot


@pytest.mark.parametrize("args, message", [
    (["darts_v2", "--out", "x.gif"], "name the output .png, .svg or .pdf"),
    (["darts_v2", "--out", "x.png", "--cells", "middle"], "no cell 'middle'"),
    (["no_such_model", "--out", "x.png"], "neither a registered model"),
])
def test_errors_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["show", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--dpi", "--columns"])
def test_counts_below_one_are_refused(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as done:
        main(["show", "darts_v2", "--out", str(tmp_path / "x.png"), flag, "0"])
    assert done.value.code == 2 and f"argument {flag}: must be a whole number >= 1, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_existing_out_needs_force(tmp_path, capsys):
    out = tmp_path / "x.png"
    out.write_bytes(b"keep")
    assert main(["show", "darts_v2", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep"


def _overlapping_labels(fig) -> list[tuple[str, str, str]]:
    """Every pair of texts (op labels and node boxes, as rendered with their boxes) that overlap in one axes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        boxes = []
        for text in ax.texts:
            patch = text.get_bbox_patch()
            boxes.append((text.get_text(), (patch or text).get_window_extent(renderer)))
        for i, (a, box_a) in enumerate(boxes):
            for b, box_b in boxes[i + 1:]:
                if box_a.overlaps(box_b):
                    found.append((ax.get_title(), a, b))
    return found


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "backbones").glob("*.json")))
def test_no_label_overlaps_another_or_a_node_on_any_released_cell(name):
    """Rendered extents: no op label covers a node box or another label (``darts_v2`` drew "skip_connect"
    over node 0; D-DARTS' cells with two ops on one edge drew both labels on one spot)."""
    plt = pyplot()
    fig = cell_figure(load_genotype(REPO / "backbones" / f"{name}.json"))
    try:
        overlaps = _overlapping_labels(fig)
    finally:
        plt.close(fig)
    assert not overlaps, overlaps[:5]
