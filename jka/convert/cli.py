"""``jka convert ARCH SRC OUT --num-classes N [--verify] [--kwargs JSON]``."""
from __future__ import annotations

import json

from jka.errors import UserError


def _parse_kwargs(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"--kwargs must be a JSON object such as '{{\"stem_stride\": 1}}' ({err})") from None
    if not isinstance(value, dict):
        raise UserError(f"--kwargs must be a JSON object such as '{{\"stem_stride\": 1}}', not {text!r}")
    return value


def run(args) -> dict:
    from jka.convert.bridge import convert

    return convert(args.arch, args.src, args.out, args.num_classes, verify=args.verify,
                   kwargs=_parse_kwargs(args.kwargs), image_size=args.image_size)


def add_parser(subparsers):
    """Register ``convert`` on an ``argparse`` subparsers object; returns the new parser."""
    p = subparsers.add_parser(
        "convert", help="convert a PyTorch checkpoint (.pt/.pth/.safetensors) into a jka model usable as a teacher")
    p.add_argument("arch", help="zoo architecture, e.g. cifar_resnet34, wrn40_2, resnet50, vgg16_teacher, segnet, "
                   "or the data-free generator / large_generator (options nz, ngf, img_size, nc via --kwargs)")
    p.add_argument("src", help="PyTorch checkpoint: a state dict (maybe under state_dict/model/net) or .safetensors")
    p.add_argument("out", help="output directory (model.json + variables.msgpack); name it in teachers[i].workdir")
    p.add_argument("--num-classes", type=int, required=True, help="number of outputs of the checkpoint's classifier (SegNet: "
                   "output channels; ignored for the generators)")
    p.add_argument("--verify", action="store_true",
                   help="run jka's PyTorch twin on the same weights and print max |Δlogit| and per-feature max |Δ|")
    p.add_argument("--kwargs", default="{}", help="JSON model options, e.g. '{\"stem_stride\": 1}'")
    p.add_argument("--image-size", type=int, default=None, help="input side for --verify (default: by architecture)")
    p.set_defaults(fn=run)
    return p
