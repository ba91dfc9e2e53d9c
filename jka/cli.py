"""The ``jka`` command: thin wrappers that parse, build and call the library.

    jka configs [NAME]                                 the shipped configs and their variants; one config's values
    jka train CONFIG [key=value ...] --workdir DIR     train or resume (exit 2: bad input; 3: diverged;
                                                       75: stopped by SIGTERM/SIGINT, rerun to resume)
    jka eval [CONFIG] [key=value ...] --workdir DIR    evaluate the latest checkpoint (default config:
                                                       the workdir's config.json)
    jka check CONFIG [key=value ...] [--compile-only]  rehearse every phase at its real shapes (random
              [--topology v5e:2x2]                     teachers and data): memory, FLOPs, time projected,
                                                       or compiled for a TPU slice on this host
    jka demo [--out FILE] [--workdir DIR]              the offline amalgamation demo
    jka convert ARCH SRC OUT --num-classes N           a PyTorch checkpoint → a jka model
    jka transfer --zoo DIR_OR_CONFIG --probe DATA --out DIR   rank a zoo for transfer
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import jax
import ml_collections
from tqdm.auto import tqdm

import jka
from jka import config as config_lib
from jka import paths, run
from jka.check import format_report, rehearse
from jka.convert.bridge import convert
from jka.demo import run_demo
from jka.errors import UserError
from jka.train.distributed import maybe_initialize
from jka.train.loop import TrainingDiverged
from jka.train.preemption import EXIT_CODE as PREEMPTED_EXIT_CODE, Preempted
from jka.train.workdir import CONFIG_FILE, check_named, check_output_dir, check_output_file, read_config
from jka.transfer import plots
from jka.transfer.study import compare_zoo, ranking_table, write_outputs
from jka.transfer.zoo import check_probe, load_probe, load_zoo_dir


def _train(args):
    cfg = run.load(args.config, args.overrides)
    allow = [k.strip() for item in args.allow_changed for k in item.split(",") if k.strip()]
    summary = run.train(cfg, args.workdir, allow_changed=allow, source=" ".join([args.config, *args.overrides]))
    print(json.dumps({"step": summary["step"], "eval": summary["eval"]}, indent=2))


def _check(args):
    if args.json:
        check_output_file(args.json, "--json")
    report = rehearse(run.load(args.config, args.overrides), args.workdir, execute=not args.compile_only,
                      topology_name=args.topology)
    print(format_report(report))
    if args.json:
        paths.write_json(args.json, report)


def _eval(args):
    overrides = list(args.overrides)
    if args.config is not None and "=" in args.config and ":" not in args.config:
        args.config, overrides = None, [args.config, *overrides]  # `jka eval k=v --workdir D`
    if args.config is None:
        cfg = config_lib.apply_overrides(run.complete(recorded_config(args.workdir)), overrides)
    else:
        cfg = run.load(args.config, overrides)
    print(json.dumps(run.evaluate(cfg, args.workdir), indent=2))


def recorded_config(workdir: str):
    """The config a workdir's run recorded in ``config.json``."""
    check_named(workdir)
    if not paths.isdir(workdir):
        raise UserError(f"workdir {workdir!r} does not exist; train first with `jka train CONFIG --workdir {workdir}`")
    saved = read_config(workdir)
    if saved is None:
        raise UserError(f"{workdir} has no {CONFIG_FILE} (written by `jka train` at start); pass the config: "
                        f"`jka eval CONFIG --workdir {workdir}`")
    return ml_collections.ConfigDict(saved["config"])


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{flag} must be a JSON object such as '{{\"stem_stride\": 1}}' ({err})") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag} must be a JSON object such as '{{\"stem_stride\": 1}}', not {text!r}")
    return value


def _convert(args):
    return convert(args.arch, args.src, args.out, args.num_classes, verify=args.verify,
                   kwargs=_json_object(args.kwargs, "--kwargs"), image_size=args.image_size)


def _transfer(args):
    plots.require()  # the pictures come last: refuse before the zoo is trained or scored
    check_output_dir(args.out)  # the results are written last
    if not os.path.isdir(args.zoo):
        zoo = run.zoo_of(run.load(args.zoo, ()), args.workdir or args.out)
    else:
        zoo = load_zoo_dir(args.zoo)
    probe = load_probe(args.probe, args.probe_size, args.seed)
    check_probe(zoo, probe)  # channels against every model, before any of them runs
    result = compare_zoo(zoo, probe, args.method, args.layer, args.lam, args.attribution)
    paths = write_outputs(result, args.out, args.k, groups=[m.arch for m in zoo])
    print(ranking_table(result, args.top))
    print("wrote " + ", ".join(paths.values()))
    return result


def _configs(args):
    if args.name:
        cfg = run.load(args.name, args.overrides)
        run.validate(cfg)
        print(cfg.to_json_best_effort(indent=2, sort_keys=True))
        return
    rows = config_lib.shipped()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['doc']}")
        for arg, default in r["args"].items():
            values = r["variants"].get(arg)
            shown = "|".join(f"{v}" + ("*" if v == default else "") for v in values) if values else f"{default!r}*"
            print(f"{'':<{width}}    :{arg}={shown}")
    print("(* the default; `jka configs NAME[:arg=value]` prints every value of one, `jka train NAME[:arg=value] "
          "--workdir DIR` runs it)")


def _add_run_parsers(sub):
    g = sub.add_parser("configs", help="list the configs shipped with jka; with NAME, print every value of one")
    g.add_argument("name", nargs="?", help="a shipped config (digits/kd, distill/digits:method=at) or a .py file")
    g.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    g.set_defaults(fn=_configs)

    t = sub.add_parser("train", help="train (or resume) a config in a workdir")
    t.add_argument("config", help="a shipped config's name (jka configs lists them: digits/kd) or a .py file with "
                   "get_config(); NAME:key=value,... picks a variant")
    t.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. train.steps=100")
    t.add_argument("--workdir", required=True, help="where checkpoints, metrics and summary.json go")
    t.add_argument("--allow-changed", action="append", default=[], metavar="KEYS",
                   help="comma-separated config keys that may differ from the workdir's config.json, "
                   "e.g. train.steps to extend a finished run")
    t.set_defaults(fn=_train)

    e = sub.add_parser("eval", help="evaluate the latest checkpoint of a workdir on the test split")
    e.add_argument("config", nargs="?", help="the config (default: the workdir's config.json)")
    e.add_argument("overrides", nargs="*")
    e.add_argument("--workdir", required=True)
    e.set_defaults(fn=_eval)

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
    c.set_defaults(fn=_check)

    d = sub.add_parser("demo", help="amalgamate two digits teachers (0–4, 5–9) into one student, offline")
    d.add_argument("--out", help="also write the results as JSON to this file")
    d.add_argument("--workdir", help="keep the runs here (default: a temporary directory)")
    d.set_defaults(fn=lambda args: run_demo(out=args.out, workdir=args.workdir))


def _add_convert_parser(sub):
    p = sub.add_parser(
        "convert", help="convert a PyTorch checkpoint (.pt/.pth/.safetensors) into a jka model usable as a teacher")
    p.add_argument("arch", help="zoo architecture, e.g. cifar_resnet34, wrn40_2, resnet50, vgg16_teacher, segnet, "
                   "or the data-free generator / large_generator (options nz, ngf, img_size, nc via --kwargs), "
                   "or timm:NAME for a timm network (timm:resnet50, timm:efficientnet_b0, timm:deit_tiny_patch16_224, "
                   "...; docs/convert.md)")
    p.add_argument("src", help="PyTorch checkpoint: a state dict (maybe under state_dict/model/net) or .safetensors")
    p.add_argument("out", help="output directory (model.json + variables.msgpack); name it in teachers[i].workdir")
    p.add_argument("--num-classes", type=int, required=True, help="number of outputs of the checkpoint's classifier "
                   "(SegNet: output channels; ignored for the generators)")
    p.add_argument("--verify", action="store_true",
                   help="run jka's PyTorch twin on the same weights and print max |Δlogit| and per-feature max |Δ|")
    p.add_argument("--kwargs", default="{}", help="JSON model options, e.g. '{\"stem_stride\": 1}'")
    p.add_argument("--image-size", type=int, default=None, help="input side for --verify (default: by architecture)")
    p.set_defaults(fn=_convert)


def _add_transfer_parser(sub):
    p = sub.add_parser(
        "transfer", help="rank a zoo of trained networks for transfer, from unlabelled probe images",
        description="Attribution distances (NeurIPS 2019) or DEPARA graph similarities (CVPR 2020) "
                    "between the models of a zoo; writes JSON, a heat map and a graph picture.")
    p.add_argument("--zoo", required=True, help="a directory of exported models (subdirectories with "
                   "model.json, e.g. training workdirs), or a transfer study's config (transfer/digits_study, or a "
                   ".py file): its transfer_study.zoo, each network trained first where missing")
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
    p.set_defaults(fn=_transfer)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jka", description="Knowledge amalgamation, distillation and "
                                "transferability estimation in JAX/Flax.")
    p.add_argument("--version", action="version", version=f"jka {jka.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_run_parsers(sub)
    _add_convert_parser(sub)
    _add_transfer_parser(sub)
    return p


def _one_line(err) -> str:
    """A message on one line (some come from libraries with line breaks in them)."""
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip())


class _Handler(logging.Handler):
    """Log lines on stderr that do not break a tqdm bar; other processes than 0 only warn."""

    def emit(self, record):
        if record.levelno < logging.WARNING and jax.process_index() != 0:
            return
        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging():
    logger = logging.getLogger("jka")
    if not any(isinstance(h, _Handler) for h in logger.handlers):
        handler = _Handler()
        handler.setFormatter(logging.Formatter("%(asctime)s jka %(levelname).1s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may also come after --workdir (`jka train CFG --workdir D k=v`).
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _setup_logging()
    try:
        maybe_initialize()
        args.fn(args)
    except UserError as err:
        print(f"jka: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"jka: diverged: {err}", file=sys.stderr)
        return TrainingDiverged.exit_code
    except Preempted as err:
        print(f"jka: {err}", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    except KeyboardInterrupt:
        print("jka: interrupted (a second Ctrl-C): no checkpoint was saved for the steps since the last one",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
