"""Write backbones/*.json from the architectures the papers released (provenance of the presets).

    python scripts/make_backbones.py [RELEASED_GENOTYPES_TXT] [--out backbones]

The input is the published text (DARTS ``Genotype(...)`` lines and D-DARTS ``Genotype_nested(...)``
files, each under a ``## file name`` title). Each release becomes one genotype JSON whose ``meta``
records the paper, the search space and the timm models to register, with the evaluation network
of each (stem, width, depth, classes) and the figures the paper publishes for it. Cards are written
by ``scripts/make_cards.py``, which measures every model.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from nni_decouple.errors import GenotypeError
from nni_decouple.models.genotype import parse_genotype_file_text, save_genotype

DARTS = {
    "paper": "Hanxiao Liu, Karen Simonyan, Yiming Yang. DARTS: Differentiable Architecture Search. ICLR 2019.",
    "code": "https://github.com/quark0/darts (cnn/genotypes.py)",
    "method": "DARTS (second order)",
    "search_space": "DARTS: 8 ops (none, max/avg pool 3x3, skip, sep conv 3x3/5x5, dil conv 3x3/5x5), "
                    "4 nodes with 2 inputs each, one normal and one reduction cell shared by all layers",
}
DOTS = {
    "paper": "Yu-Chao Gu, Li-Juan Wang, Yun Liu, Yi Yang, Yu-Huan Wu, Shao-Ping Lu, Ming-Ming Cheng. "
             "DOTS: Decoupling Operation and Topology in Differentiable Architecture Search. CVPR 2021.",
    "code": "https://github.com/guyuchao/DOTS (pytorch/genotypes.py)",
    "method": "DOTS",
    "search_space": "DARTS: 8 ops, 4 nodes with 2 inputs each (chosen by DOTS' topology search), shared cells",
}
DDARTS = {
    "paper": "Alexandre Heuillet, Hedi Tabia, Hichem Arioui, Kamal Youcef-Toumi. D-DARTS: Distributed "
             "Differentiable Architecture Search. Pattern Recognition Letters 176, 2023.",
    "code": "https://github.com/aheuillet/D-DARTS (genotypes/*.txt, Apache-2.0)",
    "method": "D-DARTS",
}
DDARTS_SPACE = ("DARTS without none: 7 ops, 4 nodes, every one of the 8 cells searched on its own; FairDARTS "
                "threshold 0.85 derivation ({parse}), so nodes have any number of inputs")
DARTOPTI_SPACE = ("D-DARTS' S_o: 12 ops (the 7 DARTS ops plus conv 3x1-1x3, conv 7x1-1x7, 1x1 and 3x3 convs and "
                  "a ResNet bottleneck), per-layer cells initialised from a hand-made {base} genotype (DARTOpti); "
                  "threshold 0.85 derivation ({parse})")
DDARTS_NOTES = [
    "The network is built at its 8 searched cells with DARTS' evaluation width (36 channels). The paper reports "
    "its DD-1..DD-7 networks without saying which released file each is, and its 14-cell networks come from its "
    "Algorithm 1 (deriving deeper networks), so no published figure is paired with this file.",
    "A node sums all its input edges (an edge may carry two ops) and the cell concatenates every node with inputs, "
    "as D-DARTS' own network does.",
]
DARTOPTI_NOTES = [
    "64 initial channels, as the paper trains DARTOpti networks; the depth is the encoded architecture's.",
]
XCEPTION_NOTE = ("The last cell reads only its first input, so no cell reads cell 11: that cell is not built "
                 "(D-DARTS' code builds and runs it, but it never gets a gradient) and the stride-8 feature level "
                 "is absent.")
IMAGENET_STRIDE4_NOTE = ("The ImageNet network uses D-DARTS' stem (stride 4: its stem0's second conv keeps the "
                         "resolution), so that three reductions reach ResNet's stride 32; D-DARTS counts MACs with "
                         "thop, which also counts batch norm and pooling.")
PARSE = {"edge": "edge: up to 2 ops per edge", "sparse": "sparse: up to 2 inputs per node"}


def cifar(name: str, dataset: str, channels: int, layers: int | None = None, **published: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"dataset": dataset, "stem": "cifar", "channels": channels,
                             "num_classes": 100 if dataset == "cifar100" else 10, "input_size": 32}
    if layers is not None:
        entry["layers"] = layers
    if published:
        entry["published"] = published
    return {name: entry}


def imagenet(name: str, channels: int, layers: int | None = None, stem: str = "imagenet",
             **published: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"dataset": "imagenet", "stem": stem, "channels": channels, "num_classes": 1000,
                             "input_size": 224}
    if layers is not None:
        entry["layers"] = layers
    if published:
        entry["published"] = published
    return {name: entry}


def releases() -> dict[str, tuple[str, dict[str, Any]]]:
    """Released name -> (backbone file name, meta)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {
        "DARTS_V2": ("darts_v2", dict(
            DARTS, title="DARTS V2", release="DARTS_V2", searched_on="cifar10",
            notes=["The paper does not say how it counted the 574M MACs of the ImageNet network; the count here "
                   "leaves out pooling, batch norm, activations and additions."],
            models={**cifar("nd_darts_v2", "cifar10", 36, 20, params_m=3.3),
                    **imagenet("nd_darts_v2_imagenet", 48, 14, params_m=4.7, macs_m=574)})),
        "DOTS_final_C10": ("dots_c10", dict(
            DOTS, title="DOTS (CIFAR-10)", release="DOTS_final_C10", searched_on="cifar10",
            models=cifar("nd_dots_c10", "cifar10", 36, 20, params_m=3.5))),
        "DOTS_final_C100": ("dots_c100", dict(
            DOTS, title="DOTS (CIFAR-100)", release="DOTS_final_C100", searched_on="cifar100",
            models=cifar("nd_dots_c100", "cifar100", 36, 20, params_m=4.1))),
        "DOTS_ImageNet": ("dots_imagenet", dict(
            DOTS, title="DOTS (ImageNet)", release="DOTS_ImageNet", searched_on="imagenet",
            notes=["DOTS' code counts its MACs with thop, which also counts batch norm and pooling."],
            models=imagenet("nd_dots_imagenet", 48, 14, params_m=5.3, macs_m=596))),
    }
    for parse in ("edge", "sparse"):
        for data, tag, loss in (("cifar10", "", "FairDARTS loss L_F (the file name names no ablation loss)"),
                                ("cifar100", "_abl0.5_fair7", "ablation loss L_T, w_abl = 0.5, w_01 = 7")):
            short = "c10" if data == "cifar10" else "c100"
            release = f"D-DARTS_threshold_{parse}{tag}_{data}_0.85_50"
            name = f"ddarts_{parse}_{short}"
            out[release] = (name, dict(
                DDARTS, title=f"D-DARTS ({parse}, {data})", release=release + ".txt", searched_on=data,
                search_space=DDARTS_SPACE.format(parse=PARSE[parse]), loss=loss, notes=DDARTS_NOTES,
                models=cifar(f"nd_{name}", data, 36)))
    for base in ("ResNet18", "ResNet50", "Xception"):
        for data in ("cifar10", "cifar100"):
            for parse in ("edge", "sparse"):
                short = "c10" if data == "cifar10" else "c100"
                release = f"{base}_{data}_threshold_{parse}_0.85"
                name = f"dartopti_{base.lower()}_{parse}_{short}"
                models = cifar(f"nd_{name}", data, 64)
                if data == "cifar100" and parse == "sparse" and base in ("ResNet18", "ResNet50"):
                    # DO-2-ResNet18 / DO-2-ResNet50 of the paper's Table 3: searched on CIFAR-100, sparse, L_T.
                    pub = {"ResNet18": dict(params_m=53.4, macs_m=8619, row="DO-2-ResNet18"),
                           "ResNet50": dict(params_m=73.23, macs_m=10029, row="DO-2-ResNet50")}[base]
                    models.update(imagenet(f"nd_{name}_imagenet", 64, stem="imagenet_stride4", **pub))
                notes = list(DARTOPTI_NOTES)
                if base == "Xception":
                    notes.append(XCEPTION_NOTE)
                if "imagenet" in " ".join(models):
                    notes.append(IMAGENET_STRIDE4_NOTE)
                out[release] = (name, dict(
                    DDARTS, title=f"DARTOpti {base} ({parse}, {data})", notes=notes, release=release + ".txt",
                    searched_on=data,
                    search_space=DARTOPTI_SPACE.format(base=base, parse=PARSE[parse]),
                    loss="ablation loss L_T", models=models))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    backbones = Path(__file__).resolve().parent.parent / "backbones"
    parser.add_argument("released", type=Path, nargs="?", default=backbones / "released_genotypes.txt")
    parser.add_argument("--out", type=Path, default=backbones)
    args = parser.parse_args(argv)
    text = args.released.read_text(encoding="utf-8")
    # Parse one release at a time: a broken release is reported, not fatal.
    found: dict[str, Any] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("##"):
            title = line[2:].strip().removesuffix(".txt")
            continue
        if not line.strip() or line.startswith("#"):
            continue
        try:
            parsed = parse_genotype_file_text(line, title or "line")
        except GenotypeError as e:
            print(f"skipped {title}: {e}", file=sys.stderr)
            continue
        for name, genotype in parsed.items():
            found[title if line.startswith("Genotype_nested") else name] = genotype
    table = releases()
    for release, genotype in found.items():
        if release not in table:
            print(f"no metadata for release {release!r}: add it to releases()", file=sys.stderr)
            return 1
        file_name, meta = table[release]
        save_genotype(replace(genotype, meta=meta), args.out / f"{file_name}.json")
        print(f"wrote {args.out / file_name}.json: {', '.join(meta['models'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
