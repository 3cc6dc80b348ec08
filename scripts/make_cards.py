"""Write backbones/*.md: one card per released architecture, with every model measured now.

    python scripts/make_cards.py [NAME ...]

Builds each registered preset at its evaluation configuration, counts its parameters (without the
auxiliary head) and its MACs (PyTorch's FlopCounterMode) and writes the card beside the genotype.
"""

from __future__ import annotations

import argparse
import sys
import time

import timm

from nni_decouple.models.cards import count_macs, count_params, model_card
from nni_decouple.models.network import backbones_dir, preset_genotype, preset_info, preset_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="backbone files (e.g. darts_v2); default: all")
    args = parser.parse_args(argv)
    by_file: dict[str, list[str]] = {}
    for model_name in preset_names():
        by_file.setdefault(preset_info(model_name)["backbone"], []).append(model_name)
    for stem, model_names in sorted(by_file.items()):
        if args.names and stem not in args.names:
            continue
        rows = []
        for model_name in model_names:
            start = time.time()
            info = preset_info(model_name)
            model = timm.create_model(model_name)
            params = count_params(model)
            macs = count_macs(model, tuple(model.pretrained_cfg["input_size"]))
            rows.append(dict(info, name=model_name, layers=model.plan.layers, params=params, macs=macs))
            print(f"{model_name}: {params / 1e6:.3f}M params, {macs / 1e6:.1f}M MACs ({time.time() - start:.0f} s)")
            del model
        info = preset_info(model_names[0])
        about = {"Paper": info.get("paper"), "Code": info.get("code"), "Release": info.get("release"),
                 "Method": info.get("method"), "Search space": info.get("search_space"),
                 "Loss": info.get("loss"), "Searched on": info.get("searched_on")}
        card = model_card(info.get("title", stem), preset_genotype(model_names[0]), rows, about=about,
                          notes=info.get("notes", []))
        (backbones_dir() / f"{stem}.md").write_text(card, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
