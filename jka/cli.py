"""The ``jka`` command: the code each subcommand runs (its arguments are parsed by :mod:`jka.parser`).

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
    jka export WORKDIR --to torch OUT                  a trained model → a PyTorch state dict (.safetensors)
    jka transfer --zoo DIR_OR_CONFIG --probe DATA --out DIR   rank a zoo for transfer
"""
from __future__ import annotations

import json
import logging
import os
import sys

import jax
import ml_collections
from tqdm.auto import tqdm

from jka import config as config_lib
from jka import paths, run
from jka.check import format_report, rehearse
from jka.convert.bridge import convert
from jka.convert.export import export_torch
from jka.demo import run_demo
from jka.errors import QuietResourceFaults, UserError, resource_fault, unraisable_hook
from jka.parser import parse
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


def _numbers(text: str, flag: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{flag} must be comma-separated numbers, one per channel, such as 0.5,0.5,0.5; "
                        f"not {text!r}") from None


def _convert(args):
    if (args.mean is None) != (args.std is None):
        raise UserError("give --mean and --std together (the input normalisation the checkpoint was trained with)")
    normalisation = None if args.mean is None else (_numbers(args.mean, "--mean"), _numbers(args.std, "--std"))
    return convert(args.arch, args.src, args.out, args.num_classes, verify=args.verify,
                   kwargs=_json_object(args.kwargs, "--kwargs"), image_size=args.image_size,
                   normalisation=normalisation)


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
    if not getattr(sys.unraisablehook, "jka", False):
        sys.unraisablehook = unraisable_hook(sys.unraisablehook)
    # orbax reports a failed save, and gcsfs a failed request, from their threads, traceback and all
    for name in ("absl", "asyncio", "gcsfs"):
        library = logging.getLogger(name)
        if not any(isinstance(f, QuietResourceFaults) for f in library.filters):
            library.addFilter(QuietResourceFaults())


COMMANDS = {"configs": _configs, "train": _train, "eval": _eval, "check": _check,
            "demo": lambda args: run_demo(out=args.out, workdir=args.workdir), "convert": _convert,
            "export": lambda args: export_torch(args.workdir, args.out), "transfer": _transfer}


def main(argv=None) -> int:
    args = parse(argv)
    _setup_logging()
    try:
        maybe_initialize()
        COMMANDS[args.command](args)
    except UserError as err:
        print(f"jka: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"jka: diverged: {err}", file=sys.stderr)
        return TrainingDiverged.exit_code
    except Preempted as err:
        print(f"jka: {err}", file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    except Exception as err:  # noqa: BLE001 - a full disk or exhausted memory, in its library's words
        line = resource_fault(err)
        if line is None:
            raise
        print(f"jka: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jka: interrupted (a second Ctrl-C): no checkpoint was saved for the steps since the last one",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
