"""The ``jka`` command's arguments, and nothing that runs a command: only the standard library (no
jax, flax or tfds), so ``jka --help``, ``jka CMD --help`` and a usage error answer at once;
:mod:`jka.entry` parses here first and imports the commands (:mod:`jka.cli`) only to run one."""
from __future__ import annotations

import argparse

import jka


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jka", description="Knowledge amalgamation, distillation and "
                                     "transferability estimation in JAX/Flax.")
    parser.add_argument("--version", action="version", version=f"jka {jka.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("configs", help="list the configs shipped with jka; with NAME, print every value of one")
    g.add_argument("name", nargs="?", help="a shipped config (digits/kd, distill/digits:method=at) or a .py file")
    g.add_argument("overrides", nargs="*", help="dotted.key=value overrides")

    t = sub.add_parser("train", help="train (or resume) a config in a workdir")
    t.add_argument("config", help="a shipped config's name (jka configs lists them: digits/kd) or a .py file with "
                   "get_config(); NAME:key=value,... picks a variant")
    t.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. train.steps=100")
    t.add_argument("--workdir", required=True, help="where checkpoints, metrics and summary.json go")
    t.add_argument("--allow-changed", action="append", default=[], metavar="KEYS",
                   help="comma-separated config keys that may differ from the workdir's config.json, "
                   "e.g. train.steps to extend a finished run")

    e = sub.add_parser("eval", help="evaluate the latest checkpoint of a workdir on the test split")
    e.add_argument("config", nargs="?", help="the config (default: the workdir's config.json)")
    e.add_argument("overrides", nargs="*")
    e.add_argument("--workdir", required=True)

    c = sub.add_parser("check", help="rehearse a config at its real shapes, every phase of a job: parameters, "
                       "memory, FLOPs, time per unit and the whole run projected, with random teachers (and "
                       "random images where the data is not on this machine)")
    c.add_argument("config")
    c.add_argument("overrides", nargs="*")
    c.add_argument("--workdir", help="the run's workdir, where exported teachers are looked up (default: none)")
    c.add_argument("--compile-only", action="store_true", help="compile one unit (of every phase) but do not run it")
    c.add_argument("--topology", metavar="SLICE", help="compile every unit for this TPU slice instead (v5e:2x2, "
                   "v4:2x2x1, v5p:2x2x1, v6e:4x4; needs pip install 'jka[tpu]', no TPU): memory per chip against its "
                   "HBM, FLOPs and bytes per chip, the roofline step time and the run projected on the slice")
    c.add_argument("--json", metavar="OUT", help="also write the report as JSON to this file")

    d = sub.add_parser("demo", help="amalgamate two digits teachers (0–4, 5–9) into one student, offline")
    d.add_argument("--out", help="also write the results as JSON to this file")
    d.add_argument("--workdir", help="keep the runs here (default: a temporary directory)")

    v = sub.add_parser(
        "convert", help="convert a PyTorch checkpoint (.pt/.pth/.safetensors) into a jka model usable as a teacher")
    v.add_argument("arch", help="zoo architecture, e.g. cifar_resnet34, wrn40_2, resnet50, vgg16_teacher, segnet, "
                   "or the data-free generator / large_generator (options nz, ngf, img_size, nc via --kwargs), "
                   "or timm:NAME for a timm network (timm:resnet50, timm:efficientnet_b0, timm:deit_tiny_patch16_224, "
                   "...; docs/convert.md)")
    v.add_argument("src", help="PyTorch checkpoint: a state dict (maybe under state_dict/model/net) or .safetensors")
    v.add_argument("out", help="output directory (model.json + variables.msgpack); name it in teachers[i].workdir")
    v.add_argument("--num-classes", type=int, required=True, help="number of outputs of the checkpoint's classifier "
                   "(SegNet: output channels; ignored for the generators)")
    v.add_argument("--verify", action="store_true",
                   help="run jka's PyTorch twin on the same weights and print max |Δlogit| and per-feature max |Δ|")
    v.add_argument("--kwargs", default="{}", help="JSON model options, e.g. '{\"stem_stride\": 1}'")
    v.add_argument("--image-size", type=int, default=None, help="input side for --verify (default: by architecture)")
    v.add_argument("--mean", help="the input normalisation the checkpoint was trained with, per channel, e.g. "
                   "0.5071,0.4867,0.4408 (with --std; recorded in model.json; default: what the name says, for "
                   "timm:NAME and the CIFAR KD zoo's names)")
    v.add_argument("--std", help="per-channel std of that normalisation, e.g. 0.2675,0.2565,0.2761 (with --mean)")

    x = sub.add_parser("export", help="write a trained model as the state dict of jka's PyTorch twin (.safetensors) "
                       "with a torch.json saying how to build and feed it")
    x.add_argument("workdir", help="a training workdir (its model/) or an exported model's directory")
    x.add_argument("--to", choices=("torch",), required=True, help="the target framework")
    x.add_argument("out", help="a new (or empty) directory whose parent exists; load it with "
                   "jka.convert.torch_module(OUT)")

    r = sub.add_parser(
        "transfer", help="rank a zoo of trained networks for transfer, from unlabelled probe images",
        description="Attribution distances (NeurIPS 2019) or DEPARA graph similarities (CVPR 2020) "
                    "between the models of a zoo; writes JSON, a heat map and a graph picture.")
    r.add_argument("--zoo", required=True, help="a directory of exported models (subdirectories with "
                   "model.json, e.g. training workdirs), or a transfer study's config (transfer/digits_study, or a "
                   ".py file): its transfer_study.zoo, each network trained first where missing")
    r.add_argument("--probe", required=True, help="unlabelled probe images: 'digits', 'digits:test' or a .npy/.npz file")
    r.add_argument("--method", choices=("attribution", "depara"), default="depara")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--layer", default="pooled", help="feature map to attribute and compare ('logits' for the logits)")
    r.add_argument("--attribution", choices=("grad_input", "saliency"), default="grad_input")
    r.add_argument("--lam", type=float, default=1.0, help="λ of the DEPARA edge term")
    r.add_argument("--probe-size", type=int, default=200, help="number of probe images used (seeded subset)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--k", type=int, default=2, help="graph picture: edges to the k nearest models")
    r.add_argument("--top", type=int, default=3, help="sources shown per target in the table")
    r.add_argument("--workdir", help="where a config zoo trains missing models (default: --out)")
    return parser


def parse(argv=None) -> argparse.Namespace:
    """The command line parsed (exit 2 with argparse's usage line when it is wrong). Overrides may
    also come after the options (`jka train CFG --workdir D k=v`)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args
