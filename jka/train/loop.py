"""The training loop every method shares: ``fit(program, cfg, workdir, mesh)`` runs one phase
(:class:`~jka.train.program.Program`): one compiled step (the state donated), batches split over the
mesh, periodic evaluation, orbax checkpoints, progress lines and metrics (:mod:`jka.train.progress`),
a checkpointed stop on SIGTERM/SIGINT (:mod:`jka.train.preemption`), a clean stop that keeps the last
good checkpoint when the loss turns NaN/inf, and at the end ``WORKDIR/model`` and ``summary.json``.

The state starts from the latest checkpoint (resume), else the exported model ``train.init_from``
names (an earlier phase's, or a model to fine-tune), else a fresh initialisation.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import jax

from jka import paths
from jka.data.readers import open_feed
from jka.errors import ConfigError, UserError
from jka.models.layers import fold_batch_norm
from jka.train import compile_cache
from jka.train import mesh as mesh_lib
from jka.train import preemption
from jka.train.checkpoint import Checkpointer
from jka.train.export import export_model, load_model, to_host
from jka.train.distributed import barrier
from jka.train.flops import jaxpr_flops, peak_flops
from jka.train.metrics import MetricWriter, to_python
from jka.train.program import EvalContext, Program
from jka.train.progress import Progress, add, all_finite
from jka.train.memory import check_step_memory
from jka.train.teachers import check_fit, normalisation_mismatch

log = logging.getLogger("jka")


class TrainingDiverged(Exception):
    """The loss or the state became NaN/inf; the last good checkpoint is kept (CLI exit code 3)."""

    exit_code = 3


@dataclasses.dataclass
class Run:
    """A built run: the program, its batches, its (restored) state and where it lives."""

    program: Program
    mesh: Any
    teacher_vars: Any
    batches: Any
    state: Any
    ckpt: Checkpointer
    start: int
    state_sharding: Any
    teacher_sharding: Any
    progress: dict = dataclasses.field(default_factory=dict)  # the open logging interval at `start`


def teacher_variables(program: Program) -> list:
    """The teachers' variables with their BatchNorms folded into their convolutions once, here, not in
    every step."""
    return [fold_batch_norm(t.module, t.variables, program.data.image_shape) for t in program.teachers]


def prepare(program: Program, cfg, workdir: str, mesh) -> Run:
    """Batches, the state (resume > ``train.init_from`` > fresh) and shardings of ``program``'s run."""
    paths.makedirs(workdir)
    compile_cache.use(cfg.train.get("compile_cache", "auto"), workdir)
    seed = int(cfg.seed)
    for teacher in program.teachers:  # an RGB teacher on 1-channel data: one line, not a trace error
        check_fit(teacher, program.data.image_shape)
        mismatch = normalisation_mismatch(teacher, program.data.mean, program.data.std)
        if mismatch:
            log.warning("%s", mismatch)
    shard = cfg.train.get("shard", {})  # large arrays split over the mesh's `model` axis
    min_size = int(shard.get("min_size", 1 << 14))
    state = program.init(jax.random.PRNGKey(seed), program.batches.host_batch(0))
    init_from = cfg.train.get("init_from", None)
    if init_from:
        if program.start_from is None:
            raise ConfigError(f"{program.name} cannot start from train.init_from (it trains more than one network "
                              "from scratch); leave train.init_from unset")
        state = program.start_from(state, *load_model(init_from))
    state_sh = mesh_lib.param_shardings(state, mesh, bool(shard.get("state", False)), min_size)
    state = jax.device_put(state, state_sh)
    teacher_vars = teacher_variables(program)
    teacher_sh = mesh_lib.param_shardings(teacher_vars, mesh, bool(shard.get("teachers", True)), min_size)
    teacher_vars = jax.device_put(teacher_vars, teacher_sh)

    ckpt = Checkpointer(workdir, keep=int(cfg.train.get("keep_checkpoints", 3)))
    start, progress = 0, {}
    if ckpt.latest_step() is not None:
        try:
            state, start, progress = ckpt.restore(state)
        except BaseException:
            ckpt.close()
            raise
        state = jax.device_put(state, state_sh)
    return Run(program, mesh, teacher_vars, program.batches, state, ckpt, start, state_sh, teacher_sh, progress)


def evaluate_latest(program: Program, cfg, workdir: str, mesh) -> dict:
    """Evaluate the latest checkpoint of ``workdir`` on the test split."""
    run = prepare(program, cfg, workdir, mesh)
    run.ckpt.close()  # the state is restored: nothing more is read or written there
    if run.start == 0:
        raise UserError(f"no checkpoint in {run.ckpt.directory}; train first with `jka train CONFIG --workdir {workdir}`")
    return {"step": run.start, "eval": program.evaluate(run.state, EvalContext(mesh, workdir, None, run.start))}


def compile_step(program: Program, mesh, state_sharding=None, teacher_sharding=None, accumulate: bool = False):
    """The program's step, jitted once: state donated, batch split over the mesh, state and teachers
    replicated unless shardings are given, metrics replicated. With ``accumulate`` it also takes the
    logging interval's sums and returns them with this step's metrics added (``(state, teacher_vars,
    batch, sums) -> (state, metrics, sums)``, sums donated): one program dispatched per step."""
    repl, dshard = mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)
    state_sharding = repl if state_sharding is None else state_sharding
    teacher_sharding = repl if teacher_sharding is None else teacher_sharding
    if not accumulate:
        return jax.jit(program.step, donate_argnums=(0,), in_shardings=(state_sharding, teacher_sharding, dshard),
                       out_shardings=(state_sharding, repl))

    def step(state, teacher_vars, batch, sums):
        state, metrics = program.step(state, teacher_vars, batch)
        return state, metrics, add(sums, metrics)

    return jax.jit(step, donate_argnums=(0, 3), in_shardings=(state_sharding, teacher_sharding, dshard, repl),
                   out_shardings=(state_sharding, repl, repl))


def write_summary(workdir: str, summary: dict) -> None:
    """Process 0 writes ``summary.json``; every process waits for it (the run's last file: a later
    phase or a teacher's user may read this workdir next)."""
    if jax.process_index() == 0:
        paths.write_json(os.path.join(workdir, "summary.json"), summary)
    barrier("jka: summary.json written")


def fit(program: Program, cfg, workdir: str, mesh) -> dict:
    """Train (or resume) ``program`` in ``workdir``; returns the summary it writes. On SIGTERM/SIGINT:
    a checkpoint at the step boundary, then :class:`~jka.train.preemption.Preempted`."""
    run = prepare(program, cfg, workdir, mesh)
    state, ckpt, start, teacher_vars = run.state, run.ckpt, run.start, run.teacher_vars
    total = program.steps
    if start > total:
        ckpt.close()
        raise UserError(f"{ckpt.directory} holds a checkpoint at step {start}, beyond train.steps={total}; "
                        f"set train.steps >= {start} to continue it, or train in another --workdir")
    step_fn = compile_step(program, mesh, run.state_sharding, run.teacher_sharding, accumulate=True)
    feed = open_feed(run.batches, stop=total, workers=int(cfg.data.get("read_workers", 0) or 0),
                     sharding=mesh_lib.data_sharding(mesh), reader=cfg.data.get("reader", "jka"))
    batch = feed.device_batch(start)  # read once: it also gives the shapes of the step's metrics
    metric_shapes = jax.eval_shape(program.step, state, teacher_vars, batch)[1]
    eval_every = int(cfg.train.get("eval_every", 0))
    ckpt_every = int(cfg.train.get("checkpoint_every", 0))
    writer = MetricWriter(workdir, after=start, names=cfg.train.get("writers", None), final=start == total)
    writer.hyperparameters(cfg)
    evaluate = lambda s, step: program.evaluate(s, EvalContext(mesh, workdir, writer, step))  # noqa: E731
    log.info("%s in %s: steps %d -> %d, %d process(es), %d %s device(s), mesh %s, batch %d%s", program.name,
             workdir, start, total, jax.process_count(), jax.device_count(), jax.devices()[0].platform,
             dict(mesh.shape), int(cfg.data.batch_size), f" (resumed at step {start})" if start else "")
    progress = Progress(program.name, program.learning_rate, cfg, start, total, writer, mesh, metric_shapes,
                        run.progress)
    peak = peak_flops()  # of one device; None where it is not known
    progress.peak = peak * jax.device_count() if peak else None
    last_good = ckpt.latest_step()
    metrics = run.progress.get("last", {})  # a run stopped after its final checkpoint: that step's metrics
    compiled = None
    try:
        if start < total:  # compiled (and its memory checked) before the first step runs
            compiled, progress.flops = compile_ahead(step_fn, (state, teacher_vars, batch, progress.sums))
        with preemption.watch():
            for step in range(start, total):
                state, metrics, sums = compiled(state, teacher_vars, batch, progress.sums)
                done = step + 1
                row = progress.step(done, metrics, sums)
                if row is not None and not all_finite(row):
                    raise TrainingDiverged(
                        f"the mean loss of steps {done - int(cfg.train.log_every) + 1}-{done} became "
                        f"{row.get('loss')} at step {done}; {_kept(last_good, ckpt)}. Lower optim.lr, enable "
                        "optim.grad_clip or check the inputs, then rerun")
                if eval_every and done % eval_every == 0 and done != total:
                    with progress.pause():
                        writer.write(done, "eval", evaluate(state, done))
                if done == total:
                    break
                stop = preemption.requested(done, ckpt)
                if stop or (ckpt_every and done % ckpt_every == 0):
                    with progress.pause():
                        _save(ckpt, done, state, last_good, progress.snapshot())
                    last_good = done
                if stop:
                    raise preemption.Preempted(
                        f"stopped by {preemption.signal_name()} at step {done} of {total}; the checkpoint is "
                        f"saved in {ckpt.directory}: rerun the same command to resume")
                batch = feed.device_batch(done)
    except BaseException:
        ckpt.close()  # let an in-flight async save finish, so the last good checkpoint is on disk
        raise
    finally:
        feed.close()
        progress.close()

    _save(ckpt, total, state, last_good, {**progress.snapshot(), "last": to_python(metrics)})
    ckpt.close()
    final = evaluate(state, total)
    writer.write(total, "eval", final)
    log.info("%s step %d/%d: eval %s", program.name, total, total, json.dumps(to_python(final)))
    writer.close()
    out = program.export(state)
    variables = to_host(out.variables)  # every process: a split array is gathered collectively
    if jax.process_index() == 0:
        export_model(os.path.join(workdir, "model"), out.arch, out.num_classes, variables, **out.info)
    summary = {
        "step": total,
        "algorithm": program.name,
        "eval": final,
        "train": to_python(metrics) if metrics else {},
        "student_classes": program.data.classes,
        "teachers": [{"arch": t.arch, "classes": t.classes} for t in program.teachers],
        "labels_used": program.uses_labels,
        "devices": jax.device_count(),
        "step_compilations": int(compiled is not None),
    }
    write_summary(workdir, summary)
    return summary


def compile_ahead(step_fn, args) -> tuple:
    """(``step_fn`` compiled for ``args``, refused where one step cannot fit in the device's free memory;
    the step's FLOPs from its trace, None where they cannot be counted)."""
    traced = step_fn.trace(*args)
    try:
        flops = jaxpr_flops(traced.jaxpr.jaxpr) or None
    except Exception as err:  # noqa: BLE001 - the rates are shown without FLOPs, the run goes on
        log.warning("the step's FLOPs could not be counted (%s): no TFLOP/s or MFU in the progress lines", err)
        flops = None
    compiled = traced.lower().compile()
    check_step_memory(compiled, "lower data.batch_size (or data.image_size), or train in bfloat16 (train.dtype)")
    return compiled, flops


def _kept(last_good, ckpt) -> str:
    if last_good is None:
        return f"no checkpoint was saved before it (train.checkpoint_every sets how often; {ckpt.directory})"
    return f"the last good checkpoint (step {last_good}) is kept in {ckpt.directory}"


def _save(ckpt: Checkpointer, step: int, state, last_good, progress: dict):
    if ckpt.latest_step() == step:
        return
    if not all_finite(state):
        raise TrainingDiverged(
            f"the training state has NaN/inf values at step {step}; {_kept(last_good, ckpt)}. "
            "Lower optim.lr or enable optim.grad_clip, then rerun")
    ckpt.save(step, state, progress)
