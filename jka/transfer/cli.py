"""``jka transfer``: compare a zoo of trained networks on unlabelled probe images.

    jka transfer --zoo DIR_OR_CONFIG --probe DATA [--method attribution|depara] --out DIR

Writes ``DIR/transfer.json`` (score matrix and per-target rankings), ``DIR/heatmap.png`` and
``DIR/graph.png`` (models as nodes, edges to the nearest k) and prints the ranking table.
"""
from __future__ import annotations

import argparse


def run(args) -> dict:
    from jka.transfer.study import compare_zoo, ranking_table, write_outputs
    from jka.transfer.zoo import load_probe, load_zoo

    zoo = load_zoo(args.zoo, args.workdir or args.out)
    probe = load_probe(args.probe, args.probe_size, args.seed)
    result = compare_zoo(zoo, probe, args.method, args.layer, args.lam, args.attribution)
    paths = write_outputs(result, args.out, args.k, groups=[m.arch for m in zoo])
    print(ranking_table(result, args.top))
    print("wrote " + ", ".join(paths.values()))
    return result


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "transfer", help="rank a zoo of trained networks for transfer, from unlabelled probe images",
        description="Attribution distances (NeurIPS 2019) or DEPARA graph similarities (CVPR 2020) "
                    "between the models of a zoo; writes JSON, a heat map and a graph picture.")
    p.add_argument("--zoo", required=True, help="a directory of exported models (subdirectories with "
                   "model.json, e.g. training workdirs) or a .py config with a 'zoo' list")
    p.add_argument("--probe", required=True, help="unlabelled probe images: 'digits', 'digits:test' or a .npy/.npz file")
    p.add_argument("--method", choices=("attribution", "depara"), default="depara")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--layer", default="pooled", help="feature map to attribute and compare ('logits' for the logits)")
    p.add_argument("--attribution", choices=("grad_input", "saliency"), default="grad_input")
    p.add_argument("--lam", type=float, default=1.0, help="λ of the DEPARA edge term")
    p.add_argument("--probe-size", type=int, default=200, help="number of probe images used (seeded subset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=2, help="graph picture: edges to the k nearest models")
    p.add_argument("--top", type=int, default=3, help="sources shown per target in the table")
    p.add_argument("--workdir", help="where a config zoo trains missing models (default: --out)")
    p.set_defaults(fn=run)
    return p
