"""The ``jka`` command: thin wrappers that parse, build and call the library."""
from __future__ import annotations

import argparse
import json
import sys


def _train(args):
    from jka import config as config_lib
    from jka.train.loop import train

    cfg = config_lib.load(args.config, args.overrides)
    summary = train(cfg, args.workdir)
    print(json.dumps({"step": summary["step"], "eval": summary["eval"]}, indent=2))


def _eval(args):
    from jka import config as config_lib
    from jka.train.loop import evaluate_workdir

    cfg = config_lib.load(args.config, args.overrides)
    print(json.dumps(evaluate_workdir(cfg, args.workdir), indent=2))


def _demo(args):
    from jka.demo import run_demo

    run_demo(out=args.out, workdir=args.workdir)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jka", description="Knowledge amalgamation, distillation and "
                                "transferability estimation in JAX/Flax.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) a config in a workdir")
    t.add_argument("config", help="a Python config file (configs/...) with get_config()")
    t.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. train.steps=100")
    t.add_argument("--workdir", required=True, help="where checkpoints, metrics and summary.json go")
    t.set_defaults(fn=_train)

    e = sub.add_parser("eval", help="evaluate the latest checkpoint of a workdir on the test split")
    e.add_argument("config")
    e.add_argument("overrides", nargs="*")
    e.add_argument("--workdir", required=True)
    e.set_defaults(fn=_eval)

    d = sub.add_parser("demo", help="amalgamate two digits teachers (0–4, 5–9) into one student, offline")
    d.add_argument("--out", help="also write the results as JSON to this file")
    d.add_argument("--workdir", help="keep the runs here (default: a temporary directory)")
    d.set_defaults(fn=_demo)

    from jka.convert.cli import add_parser as add_convert_parser

    add_convert_parser(sub)

    from jka.transfer import cli as transfer_cli

    transfer_cli.add_parser(sub)
    return p


def main(argv=None) -> int:
    from jka.errors import UserError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may also come after --workdir (`jka train CFG --workdir D k=v`).
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        from jka.train.distributed import maybe_initialize

        if "://" in (getattr(args, "workdir", None) or ""):
            raise UserError(
                f"--workdir {args.workdir}: jka writes its workdir with plain file I/O, so it must be a "
                "local path or a mounted shared file system (NFS, Lustre, a gcsfuse mount of a bucket), "
                "not a URL")
        maybe_initialize()
        args.fn(args)
    except UserError as err:
        print(f"jka: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
