"""Baseline of ``digits_ffl.py``: one of its sub-networks trained alone from labels, same budget.

    jka train configs/distill/digits_ffl_alone.py --workdir /tmp/digits_ffl_alone

Each FFL sub-network (``sub{i}_accuracy`` of digits_ffl) should beat this run's ``accuracy``
averaged over seeds (``seed=0,1,2``).
"""
import importlib.util
import os

from jka.recipes import base_config


def _ffl_module():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits_ffl.py")
    spec = importlib.util.spec_from_file_location("jka_configs_digits_ffl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config():
    return _ffl_module().budget(base_config(algorithm="supervised"))
