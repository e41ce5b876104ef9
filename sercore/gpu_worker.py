"""Preload of the worker processes of a SLURM job with several GPUs (``mgser cluster slurm --gpus N``, N > 1).

Such a job runs N worker processes (``dask worker --nworkers N``, named ``<job name>-0`` .. ``<job name>-(N-1)``),
and SLURM gives the job N GPUs in ``CUDA_VISIBLE_DEVICES``. Worker i keeps only the i-th of them, so that each
worker's ``cuda`` is a GPU of its own (one ``--device cuda`` task per GPU, as the resource ``GPU=1`` promises)
rather than all of them sharing the first one. Run before any task, so before CUDA is initialised in the worker;
``train`` subprocesses the worker starts inherit the variable.
"""

from __future__ import annotations

import os


def worker_gpu(name: object, visible: str | None) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` worker ``name`` keeps of the job's ``visible``; None to leave it as it is (one
    GPU or none, or a name without a worker index)."""
    gpus = [g.strip() for g in (visible or "").split(",") if g.strip()]
    index = str(name).rsplit("-", 1)[-1]
    if len(gpus) < 2 or not index.isdigit():
        return None
    return gpus[int(index) % len(gpus)]


def dask_setup(worker) -> None:
    """Keep this worker's own GPU of the job's ``CUDA_VISIBLE_DEVICES`` (:func:`worker_gpu`)."""
    gpu = worker_gpu(worker.name, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
