"""``nni-decouple genotype``: validation and conversion between formats."""

from __future__ import annotations

import json

import pytest

from nni_decouple.cli import main
from nni_decouple.models.genotype import Genotype, load_genotype, parse_genotype_text

TEXT = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text(TEXT + "\n")
    return path


def test_converts_text_to_json_and_arch(text_file, tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["genotype", str(text_file), "--to", "json", "--out", str(out)]) == 0
    assert load_genotype(out) == parse_genotype_text(TEXT)
    assert main(["genotype", str(out), "--to", "arch"]) == 0
    arch = json.loads(capsys.readouterr().out.split("wrote")[-1].split("\n", 1)[1])
    assert Genotype.from_arch(arch) == parse_genotype_text(TEXT)


def test_refuses_to_overwrite(text_file, tmp_path, capsys):
    out = tmp_path / "g.json"
    out.write_text("keep me")
    assert main(["genotype", str(text_file), "--to", "json", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me"


@pytest.mark.parametrize("content, message", [
    ("{broken", "malformed JSON"),
    (TEXT.replace("skip_connect", "skip_connekt"), "unknown op 'skip_connekt'"),
    (TEXT.replace("('skip_connect', 1)", "('skip_connect', 4)"), "takes input 4"),
])
def test_bad_genotypes(tmp_path, capsys, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    assert main(["genotype", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
