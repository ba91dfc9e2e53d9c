"""Comparing a zoo (what ``jka transfer`` runs) and the digits study that checks the scores against
measured transfer (what ``jka train transfer/digits_study`` runs, :mod:`jka.methods.transfer_study`;
docs/methods.md, "Transferability").

Study protocol. Every network of the zoo is trained by jka on one labeling of the same digits.
A *target* is a task with its own network (whose graph stands for the task); every other network
is a *source*. The measured transfer value of a source for a target is the held-out accuracy of a
linear probe (logistic regression) on the source's features, fitted on a small labelled budget of
the target's labels and averaged over a few random budgets. Per target, the Spearman correlation
between a label-free score (DEPARA similarity, or the negative attribution distance) and the
measured values is computed over the sources; the mean over targets is tested against chance by
permuting each target's scores over its sources (one-sided p-value).
"""
from __future__ import annotations

import functools
import io
import os
import sys
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from jka import paths
from jka.data import load_split
from jka.data.relabel import relabel
from jka.errors import ConfigError, unknown_choice
from jka.train.metrics import MetricWriter
from jka.transfer import plots
from jka.transfer.attribution import ZooModel, feature_vectors
from jka.transfer.depara import Graph, average_ranks, build_graph, layer_scores, select_layer, similarity_matrix, spearman
from jka.transfer.distance import distance_matrix, rank_sources
from jka.transfer.zoo import load_probe

COMPARE_METHODS = ("attribution", "depara")


# -- comparing a zoo (no labels) --------------------------------------------------------------------
def zoo_graphs(zoo: Sequence[ZooModel], probe: np.ndarray, layer: str = "pooled",
               attribution: str = "grad_input", mesh=None) -> dict[str, Graph]:
    return {m.name: build_graph(m, probe, layer, attribution, mesh) for m in zoo}


def compare_zoo(zoo: Sequence[ZooModel], probe: np.ndarray, method: str = "depara", layer: str = "pooled",
                lam: float = 1.0, attribution: str = "grad_input", mesh=None,
                graphs: dict[str, Graph] | None = None) -> dict:
    """Score matrix of the zoo and the ranking of sources per target (best first)."""
    if method not in COMPARE_METHODS:
        raise unknown_choice("transfer method", method, COMPARE_METHODS)
    names = [m.name for m in zoo]
    if len(set(names)) != len(names):
        raise ConfigError(f"zoo model names must be unique, got {names}")
    graphs = graphs or zoo_graphs(zoo, probe, layer, attribution, mesh)
    if method == "depara":
        names, matrix = similarity_matrix(graphs, lam)
        kind, higher = "similarity", True
    else:
        names, matrix = distance_matrix({n: g.nodes for n, g in graphs.items()})
        kind, higher = "distance", False
    rankings = {t: rank_sources(matrix, names, t, higher) for t in names}
    return {"method": method, "kind": kind, "higher_is_closer": higher, "layer": layer, "lam": lam,
            "attribution": attribution, "probe_images": int(len(probe)), "names": names,
            "matrix": matrix.tolist(), "rankings": {t: [[s, v] for s, v in r] for t, r in rankings.items()}}


def ranking_table(result: dict, top: int = 3) -> str:
    """One line per target: its best ``top`` sources with their scores."""
    width = max(len(n) for n in result["names"])
    head = f"{'target'.ljust(width)}  best sources ({result['method']} {result['kind']}, " \
           f"{'higher' if result['higher_is_closer'] else 'lower'} is closer)"
    lines = [f"{t.ljust(width)}  " + ", ".join(f"{s} ({v:.3f})" for s, v in ranked[:top])
             for t, ranked in result["rankings"].items()]
    return "\n".join([head, "-" * len(head), *lines])


def write_outputs(result: dict, out: str, k: int = 2, groups=None, prefix: str = "",
                  tensorboard: bool = True) -> dict:
    """``{prefix}transfer.json``, ``{prefix}heatmap.png`` and ``{prefix}graph.png`` in ``out``;
    ``tensorboard``: also log both pictures (tags ``transfer/{prefix}heatmap``, ``.../{prefix}graph``)
    to ``out/tensorboard``, the TensorBoard run of :class:`~jka.train.metrics.MetricWriter` for
    ``out``; nothing happens without tensorboardX, and on processes other than 0."""
    paths.makedirs(out)
    names, matrix = result["names"], np.asarray(result["matrix"])
    higher = bool(result["higher_is_closer"])
    label = "DEPARA similarity" if result["method"] == "depara" else "attribution distance"
    better = f"{'higher' if higher else 'lower'} = more transferable"
    files = {k: os.path.join(out, f"{prefix}{name}")
             for k, name in (("json", "transfer.json"), ("heatmap", "heatmap.png"), ("graph", "graph.png"))}
    paths.write_json(files["json"], result)
    # viridis runs dark → bright: the brightest cell is the closest pair for either kind of score
    plots.heatmap(matrix, names, files["heatmap"],
                  f"{label} between models ({better})\nlayer {result['layer']}, {result['probe_images']} "
                  "probe images; grey diagonal: a model with itself",
                  cmap="viridis" if higher else "viridis_r", label=label)
    plots.graph(matrix, names, files["graph"],
                f"{label}: each model joined to its {k} nearest\nthicker, darker edge = "
                f"{'higher' if higher else 'lower'} {result['kind']} = more transferable",
                k=k, higher_is_closer=higher, groups=groups)
    if tensorboard:
        writer = MetricWriter(out)
        try:
            for key in ("heatmap", "graph"):
                with Image.open(io.BytesIO(paths.read_bytes(files[key]))) as im:
                    writer.image(0, f"transfer/{prefix}{key}", np.asarray(im.convert("RGB")))
        finally:
            writer.close()
    return files


# -- measured transfer (labels used only here, to check the label-free scores) ----------------------
def linear_probe_accuracy(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
                          budget: int, repeats: int, seed: int = 0) -> float:
    """Mean held-out accuracy of logistic regression fitted on ``budget`` random labelled samples."""
    accs = []
    for r in range(repeats):
        idx = np.random.default_rng([seed, r]).permutation(len(y_train))[:budget]
        if len(np.unique(y_train[idx])) < 2:  # one class: no probe to fit, it is predicted everywhere
            predicted = y_train[idx][0]
        else:
            predicted = probe_predict(fit_linear_probe(f_train[idx], y_train[idx], C=1.0), f_test)
        accs.append(float(np.mean(predicted == y_test)))
    return float(np.mean(accs))


# The linear probe: features standardised with the training samples' mean and standard deviation,
# then L2-regularised logistic regression, i.e. the minimiser of C·Σ_i logloss_i + ½‖W‖² (intercept
# not penalised): the objective of scikit-learn's LogisticRegression(C) after a StandardScaler.
# Multinomial (softmax) over the classes present; with two classes one weight vector (class 0's
# logit fixed at 0), as scikit-learn does. Fitted by L-BFGS (optax, float32) to a small gradient
# norm. Features are padded with zero columns to a power of two and classes (masked out) to a
# multiple of 16, which leaves the minimiser unchanged and compiles the solver once per bucket.
@functools.partial(jax.jit, static_argnames=("max_iter",))
def _fit_probe(x, y, free, valid, l2, max_iter, tol):
    n, k = y.shape[0], free.shape[0]
    onehot = jax.nn.one_hot(y, k, dtype=x.dtype)

    def objective(params):
        w, b = params["w"] * free, params["b"] * free
        logits = jnp.where(valid, x @ w + b, -1e9)  # padded classes: never predicted, no loss
        return -jnp.sum(onehot * jax.nn.log_softmax(logits)) / n + 0.5 * l2 * jnp.sum(w * w)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        params, state = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(params, updates), state

    def going_on(carry):
        _, state = carry
        count = optax.tree.get(state, "count")
        return (count == 0) | ((count < max_iter) & (optax.tree.norm(optax.tree.get(state, "grad")) >= tol))

    params = {"w": jnp.zeros((x.shape[1], k), x.dtype), "b": jnp.zeros((k,), x.dtype)}
    params, state = jax.lax.while_loop(going_on, step, (params, opt.init(params)))
    return params["w"] * free, params["b"] * free, optax.tree.get(state, "count")


def fit_linear_probe(features: np.ndarray, labels: np.ndarray, C: float = 1.0, max_iter: int = 1000,
                     tol: float = 1e-5) -> dict:
    """Standardise + logistic regression of ``labels`` on ``features`` (N, D) (see above); ``tol``
    bounds the gradient norm of the objective divided by N. Deterministic."""
    x = np.asarray(features, np.float64).reshape(len(features), -1)
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"a linear probe needs two classes or more, got {classes.tolist()}")
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale < 10 * np.finfo(np.float64).eps, 1.0, scale)
    k, d = len(classes), x.shape[1]
    k_pad, d_pad = -(-k // 16) * 16, max(16, 1 << (d - 1).bit_length())
    valid = np.arange(k_pad) < k
    free = valid.astype(np.float32)
    if k == 2:
        free[0] = 0.0
    z = np.zeros((len(x), d_pad), np.float32)
    z[:, :d] = (x - mean) / scale
    w, b, iters = _fit_probe(z, y.astype(np.int32), free, valid, np.float32(1.0 / (C * len(y))),
                              max_iter=int(max_iter), tol=np.float32(tol))
    return {"classes": classes, "mean": mean, "scale": scale, "coef": np.asarray(w, np.float64)[:d, :k],
            "intercept": np.asarray(b, np.float64)[:k], "iterations": int(iters)}


def probe_predict(probe: dict, features: np.ndarray, proba: bool = False) -> np.ndarray:
    """The class of each row of ``features`` under a :func:`fit_linear_probe` probe (its class
    probabilities with ``proba``)."""
    x = (np.asarray(features, np.float64).reshape(len(features), -1) - probe["mean"]) / probe["scale"]
    logits = x @ probe["coef"] + probe["intercept"]
    if proba:
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return probe["classes"][np.argmax(logits, 1)]


def correlation_test(scores: dict[str, dict[str, float]], values: dict[str, dict[str, float]],
                     permutations: int, seed: int = 0) -> dict:
    """Per-target Spearman(score, value) over sources, their mean, and a one-sided permutation p-value
    (null hypothesis: the scores say nothing of the sources' ranking, so permuting each target's
    scores over its sources gives a mean correlation as large as the observed one)."""
    targets = list(scores)
    s = [np.array([scores[t][src] for src in values[t]]) for t in targets]
    v = [np.array([values[t][src] for src in values[t]]) for t in targets]
    per = {t: spearman(a, b) for t, a, b in zip(targets, s, v)}
    observed = float(np.mean(list(per.values())))
    # Spearman(perm(a), b) = Pearson(perm(ranks(a)), ranks(b)): permute the ranks, all permutations at once.
    rng = np.random.default_rng(seed)
    null = np.zeros(permutations)
    for a, b in zip(s, v):
        ra, rb = average_ranks(a), average_ranks(b)
        rb = rb - rb.mean()
        perm = rng.permuted(np.tile(ra, (permutations, 1)), axis=1)
        perm = perm - perm.mean(1, keepdims=True)
        den = np.sqrt(np.sum(perm ** 2, 1) * np.sum(rb ** 2))
        null += np.where(den > 0, perm @ rb / np.where(den > 0, den, 1.0), 0.0) / len(s)
    hits = int(np.sum(null >= observed - 1e-12))
    return {"per_target": per, "mean": observed, "p_value": (hits + 1) / (permutations + 1)}


# -- the digits study -------------------------------------------------------------------------------
def _log(msg: str, t0: float):
    print(f"[transfer_study {time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def run_study(cfg, workdir: str, zoo: Sequence[ZooModel], t0: float | None = None) -> dict:
    """Score the trained ``zoo`` (the networks of ``cfg.transfer_study.zoo``) without labels, measure
    real transfer, compare. ``t0``: when the study started (the zoo's training counts in its time)."""
    t0 = time.perf_counter() if t0 is None else t0
    tc = cfg.transfer_study
    by_name = {m.name: m for m in zoo}
    task_of = {s["name"]: s["task"] for s in tc.zoo}
    targets = list(by_name) if tc.get("targets", None) is None else list(tc.targets)
    missing = [t for t in targets if t not in by_name]
    if missing:
        raise ConfigError(f"transfer_study.targets {missing} are not zoo names; choose from {list(by_name)}")
    t_zoo = time.perf_counter()
    _log(f"zoo of {len(zoo)} models ready", t0)

    # Label-free scores on unlabelled probe images.
    probe = load_probe("digits", int(tc.probe_size), int(cfg.seed))
    layer, lam, method = tc.layer, float(tc.lam), tc.attribution
    graphs = zoo_graphs(zoo, probe, layer, method)
    depara = compare_zoo(zoo, probe, "depara", layer, lam, method, graphs=graphs)
    attrib = compare_zoo(zoo, probe, "attribution", layer, lam, method, graphs=graphs)
    t_scores = time.perf_counter()
    _log("DEPARA graphs, similarity and distance matrices done", t0)

    # Measured transfer: linear probes on every source's features with the target's labels.
    train, test = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    budget, repeats = int(tc.budget), int(tc.repeats)
    feat_layer = tc.get("transfer_layer", "pooled")  # the features a linear probe is fitted on
    feats = {m.name: (feature_vectors(m, train.images, feat_layer), feature_vectors(m, test.images, feat_layer))
             for m in zoo}
    labels = {t: (relabel(task_of[t], train.labels, "train")[0], relabel(task_of[t], test.labels, "test")[0])
              for t in targets}
    values, dep_scores, att_scores = {}, {}, {}
    names = depara["names"]
    dep_m, att_m = np.asarray(depara["matrix"]), np.asarray(attrib["matrix"])
    for t in targets:
        ti = names.index(t)
        y_tr, y_te = labels[t]
        values[t] = {s: linear_probe_accuracy(feats[s][0], y_tr, feats[s][1], y_te, budget, repeats, cfg.seed)
                     for s in names if s != t}
        dep_scores[t] = {s: float(dep_m[ti, names.index(s)]) for s in values[t]}
        att_scores[t] = {s: -float(att_m[ti, names.index(s)]) for s in values[t]}
    perms = int(tc.permutations)
    dep_test = correlation_test(dep_scores, values, perms, cfg.seed)
    att_test = correlation_test(att_scores, values, perms, cfg.seed)
    t_measure = time.perf_counter()
    _log("measured transfer and correlation tests done", t0)

    # Layer selection: for each target, the layers of its DEPARA-selected source.
    layer_cache: dict = {}

    def layer_eval(src: str, t: str):
        m = by_name[src]
        if src not in layer_cache:
            lays = [x for x in m.layers() if x != "logits"]
            g = {x: build_graph(m, probe, x, method) for x in lays}
            f = {x: (feature_vectors(m, train.images, x), feature_vectors(m, test.images, x)) for x in lays}
            layer_cache[src] = (lays, g, f)
        lays, g, f = layer_cache[src]
        scores = layer_scores(graphs[t], g, lam)
        y_tr, y_te = labels[t]
        measured = {x: linear_probe_accuracy(f[x][0], y_tr, f[x][1], y_te, budget, int(tc.layer_repeats), cfg.seed)
                    for x in lays}
        picked = select_layer(scores)
        best_two = sorted(measured, key=measured.get, reverse=True)[:2]
        return {"scores": scores, "measured": measured, "picked": picked, "best_two": best_two,
                "within_best_two": picked in best_two}

    layers_out = {t: {"source": depara["rankings"][t][0][0], **layer_eval(depara["rankings"][t][0][0], t)}
                  for t in targets}
    hits = sum(r["within_best_two"] for r in layers_out.values())
    all_sources = tc.get("layer_all_sources", False)
    all_hits = [layer_eval(s, t)["within_best_two"] for t in targets for s in values[t]] if all_sources else []
    t_layers = time.perf_counter()
    _log("layer selection done", t0)

    groups = [m.arch for m in zoo]
    pics = {"depara": write_outputs(depara, workdir, int(tc.k), groups, prefix="depara_"),
            "attribution": write_outputs(attrib, workdir, int(tc.k), groups, prefix="attribution_")}
    pics["scatter"] = scatter_plot(dep_scores, att_scores, values, os.path.join(workdir, "depara_vs_transfer.png"))
    top1 = {t: {"depara": depara["rankings"][t][0][0], "attribution": attrib["rankings"][t][0][0],
                "measured": max(values[t], key=values[t].get)} for t in targets}
    study = {"transfer_values": values, "depara_scores": dep_scores, "attribution_scores": att_scores,
             "layer_selection": layers_out, "top1": top1, "tasks": task_of}
    paths.write_json(os.path.join(workdir, "study.json"), study)

    eval_ = {
        "spearman_depara_mean": dep_test["mean"],
        "spearman_attribution_mean": att_test["mean"],
        "spearman_depara": dep_test["per_target"],
        "spearman_attribution": att_test["per_target"],
        "p_value_depara": dep_test["p_value"],
        "p_value_attribution": att_test["p_value"],
        "p_value_test": f"one-sided permutation test, {perms} permutations of each target's scores over its sources",
        "layer_selection_fraction": hits / len(targets),
        "top1_depara_is_best_measured": float(np.mean([top1[t]["depara"] == top1[t]["measured"] for t in targets])),
    }
    if all_hits:
        eval_["layer_selection_fraction_all_sources"] = float(np.mean(all_hits))
    return {
        "step": 0,
        "algorithm": "transfer_study",
        "eval": eval_,
        "zoo": {m.name: {"arch": m.arch, "task": task_of[m.name], "kwargs": m.info.get("kwargs", {})} for m in zoo},
        "settings": {"probe_images": int(len(probe)), "layer": layer, "lam": lam, "attribution": method,
                     "budget": budget, "repeats": repeats, "transfer_layer": feat_layer},
        "seconds": {"zoo": t_zoo - t0, "scores": t_scores - t_zoo, "measured_transfer": t_measure - t_scores,
                    "layer_selection": t_layers - t_measure},
        "files": pics,
        "labels_used": "only to measure transfer values (the scores use none)",
    }


def scatter_plot(dep_scores, att_scores, values, path: str) -> str:
    """Label-free scores against measured transfer, one colour per target."""
    fig = plots.figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    cmap = plots.colormap("tab10")
    for ax, scores, title in ((axes[0], dep_scores, "DEPARA similarity"),
                              (axes[1], att_scores, "− attribution distance")):
        for i, t in enumerate(values):
            xs = [scores[t][s] for s in values[t]]
            ys = [values[t][s] for s in values[t]]
            ax.scatter(xs, ys, color=cmap(i % 10), label=f"{t} (ρ={spearman(xs, ys):.2f})", s=25)
        ax.set_xlabel(title)
        ax.set_ylabel("linear-probe accuracy (transfer)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.save_figure(path, fig, dpi=110)
    return path
