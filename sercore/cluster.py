"""Dask for the toolkit's parallel work, in one place: start or join a cluster, say where, close it cleanly.

    with dask_client(workers=2) as client: ...                        # a LocalCluster of 2 processes here
    with dask_client(scheduler="tcp://host:8786") as client: ...      # an existing cluster
    with dask_client(scheduler="dask-scheduler.json") as client: ...  # the file `mgser cluster slurm` writes
    with dask_client(workers=8, gpu=True) as client: ...              # one worker per visible GPU (at most 8)

``extract --scheduler`` and ``train.studies.grid --scheduler`` (``run_all.sh``) take either form. Starting prints the
workers, the scheduler and its dashboard (``dashboard: http://...``). Closing a LocalCluster gives each worker
process time to exit by itself (distributed's nanny kills one that takes more than 4 s, with a warning). Its
workers ignore SIGINT (:func:`dask_setup`, their preload): on Ctrl-C this process stops them within seconds,
without Dask's messages, and the KeyboardInterrupt goes on to the caller.

GPU workers (``gpu=True``, what ``--device cuda`` asks for): one worker process per visible GPU, each seeing
only its own GPU as ``cuda`` (``CUDA_VISIBLE_DEVICES``) and offering the Dask resource ``GPU=1``. With dask-cuda
installed it is its ``LocalCUDACluster``; otherwise distributed's own ``LocalCluster`` whose worker specs carry
the environment variable (:class:`GPULocalCluster`).

Memory: Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``),
which turns off glibc's dynamic mmap threshold: every array or tensor above 128 KiB is then mapped and unmapped
again, and a training run spends a third to a half of its CPU time in the kernel. The toolkit's local clusters
start their workers without it, and the ``train`` subprocesses of a cell drop it where Dask set it on a remote
worker (:func:`without_dask_trim`); a value set by the user is kept.

``python -m sercore.cluster slurm ...`` (also ``mgser cluster slurm``) runs a scheduler in its own process and
its workers as SLURM jobs through dask-jobqueue, writes the scheduler file and stays until interrupted
(docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import click

from .cli import THREADS, command_errors, common_options, epilog, report_interrupt, say, version
from .errors import EXIT_INTERRUPTED, EnvironmentProblem
from .fsio import write_atomic

Echo = Callable[[str], None]

#: Seconds a LocalCluster's worker process may take to exit once asked.
WORKER_EXIT_SECONDS = 60.0
#: Seconds a worker process may take to exit after Ctrl-C before it is killed (its work is lost anyway).
INTERRUPT_EXIT_SECONDS = 1.0
#: Seconds after Ctrl-C at which a process still shutting down is ended all the same (:func:`exit_after`).
INTERRUPT_WATCHDOG_SECONDS = 5.0


#: The variable of Dask's workers that slows training down (module docstring, "Memory"), in Dask's configuration.
DASK_TRIM, DASK_TRIM_CONFIG = "MALLOC_TRIM_THRESHOLD_", "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def without_dask_trim(env: dict[str, str]) -> dict[str, str]:
    """``env`` (a worker's environment) without ``MALLOC_TRIM_THRESHOLD_`` where it has the value Dask's
    configuration gives its workers; a value set otherwise is kept."""
    import dask

    dask_value = dask.config.get(DASK_TRIM_CONFIG, default=None)
    if dask_value is not None and env.get(DASK_TRIM) == str(dask_value):
        return {k: v for k, v in env.items() if k != DASK_TRIM}
    return env


def exit_after(seconds: float) -> None:
    """Make sure an interrupted process ends: if it is still alive ``seconds`` from now (a library's thread that
    does not stop, a shutdown waiting on a worker), kill its child processes, say ``interrupted`` (once) and exit
    with 130. A daemon thread: a process that ends by itself before then is not held up."""
    def fire() -> None:
        time.sleep(seconds)
        import multiprocessing

        for child in multiprocessing.active_children():
            with contextlib.suppress(Exception):
                child.kill()
        report_interrupt()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    threading.Thread(target=fire, name="interrupt-watchdog", daemon=True).start()


def dask_setup(worker) -> None:
    """Preload of the workers of a LocalCluster started by :func:`dask_client`, run in each worker process: it
    ignores SIGINT (Ctrl-C in a terminal goes to the whole process group; the parent alone handles it and stops
    the workers, instead of every worker printing its own traceback), and its warnings while it is being closed
    (tasks cancelled by the shutdown) are not printed."""
    import logging

    from distributed.core import Status

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    closing = {Status.closing, Status.closing_gracefully, Status.closed}

    def not_closing(record: logging.LogRecord) -> bool:  # a task cancelled by the shutdown is no news
        return record.levelno >= logging.ERROR or getattr(worker, "status", None) not in closing

    for handler in logging.getLogger("distributed").handlers:
        handler.addFilter(not_closing)


def has_bokeh() -> bool:
    """Whether the Dask dashboard can be served here (it needs bokeh)."""
    from importlib.util import find_spec

    return find_spec("bokeh") is not None


def dashboard_note(link: str | None) -> str:
    """What to print about the dashboard: its address, or why there is none."""
    if link:
        return f"dashboard {link}"
    return "no dashboard" if has_bokeh() else "no dashboard (install bokeh>=3.1 for one)"


def connect(scheduler: str, timeout: float | None = None):
    """A Client of the scheduler at ``scheduler``: an address (``tcp://host:8786``) or a scheduler file (JSON
    with ``address``, written by ``mgser cluster`` or ``dask scheduler --scheduler-file``). ``timeout``: seconds
    to keep trying [default: Dask's ``distributed.comm.timeouts.connect``, 30 s]."""
    from dask.distributed import Client

    is_file = Path(scheduler).is_file()
    wait = {} if timeout is None else {"timeout": timeout}
    try:
        if is_file:
            return Client(scheduler_file=scheduler, **wait)
        return Client(scheduler, **wait)
    except (OSError, TimeoutError, ValueError, KeyError) as exc:
        what = "scheduler file" if is_file else "Dask scheduler"
        raise EnvironmentProblem(scheduler, f"cannot reach the {what} ({type(exc).__name__}: {exc}); "
                                            f"is the cluster running?") from None


def _resource_note(client, resources: dict[str, float]) -> str | None:
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    missing = [r for r in resources if not any(w.get("resources", {}).get(r) for w in workers)]
    if not missing:
        return None
    flags = " ".join(f"--resources {r}={resources[r]:g}" for r in missing)
    return (f"note: no worker of this cluster has the resource {', '.join(missing)} yet (start workers with {flags}, "
            f"e.g. mgser cluster slurm --gpus 1); the tasks wait for one")


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as entries for ``CUDA_VISIBLE_DEVICES``: those of ``$CUDA_VISIBLE_DEVICES``
    when it is set (SLURM sets it to the GPUs of an allocation; indices or ``GPU-...`` UUIDs), else ``0 .. N-1``
    for torch's ``cuda.device_count()``; ``[]`` where CUDA is not available."""
    import torch

    if not torch.cuda.is_available():
        return []
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        entries = [e.strip() for e in given.split(",") if e.strip()]
        return entries[:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _gpu_cluster_class():
    from distributed import LocalCluster

    class GPULocalCluster(LocalCluster):
        """distributed's LocalCluster with one worker process per GPU of ``gpus``, named ``gpu<entry>``, whose
        environment has ``CUDA_VISIBLE_DEVICES=<entry>`` (its GPU is then ``cuda`` / ``cuda:0`` in it)."""

        def __init__(self, gpus: list[str], **kwargs):
            self.gpus = list(gpus)
            super().__init__(n_workers=0, **kwargs)
            self.scale(len(self.gpus))

        def new_worker_spec(self) -> dict:
            free = [g for g in self.gpus if f"gpu{g}" not in self.worker_spec]
            if not free:
                raise ValueError(f"no GPU left for another worker (GPUs {', '.join(self.gpus)})")
            spec = copy.deepcopy(self.new_spec)
            spec["options"]["env"] = {**spec["options"].get("env", {}), "CUDA_VISIBLE_DEVICES": free[0]}
            return {f"gpu{free[0]}": spec}

    return GPULocalCluster


def gpu_local_cluster(workers: int, *, resources: dict[str, float] | None = None, dashboard: str | None = None,
                      preload: list[str] | None = None, echo: Echo = print):
    """A local cluster of one single-threaded worker process per visible GPU (at most ``workers``), each with
    only its GPU visible and the resource ``GPU=1`` (plus ``resources``): dask-cuda's ``LocalCUDACluster`` when
    it is installed, else :class:`GPULocalCluster`. :class:`EnvironmentProblem` (exit 4) where no GPU is visible."""
    from distributed.system import MEMORY_LIMIT

    gpus = visible_gpus()
    if not gpus:
        import torch

        raise EnvironmentProblem("--device", f"cuda: no CUDA device is visible for GPU workers (torch {torch.__version__}, "
                                             f"CUDA build {torch.version.cuda or 'none'}, CUDA_VISIBLE_DEVICES="
                                             f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}); use --device cpu")
    used = gpus[:max(1, workers)]
    if len(used) < len(gpus):
        echo(f"note: {len(gpus)} GPUs visible, {len(used)} used (--workers {workers}); give --workers {len(gpus)} for all")
    options = dict(threads_per_worker=1, dashboard_address=dashboard, resources={**(resources or {}), "GPU": 1},
                   preload=preload or [], memory_limit=MEMORY_LIMIT // len(used))
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:  # not installed (it pins its own dask release): distributed's LocalCluster does the same
        pass
    else:
        return LocalCUDACluster(CUDA_VISIBLE_DEVICES=used, n_workers=len(used), **options)
    return _gpu_cluster_class()(used, processes=True, **options)


async def _close_workers(cluster, timeout: float) -> None:
    await asyncio.gather(*(w.close(timeout=timeout) for w in list(cluster.workers.values())), return_exceptions=True)


def close_local_cluster(cluster, timeout: float = WORKER_EXIT_SECONDS) -> None:
    """Close a LocalCluster, first letting every worker process exit by itself within ``timeout`` seconds."""
    with contextlib.suppress(Exception):
        cluster.sync(_close_workers, cluster, timeout)
    cluster.close()


def _flag_interrupts(flag: dict) -> Callable[[], None]:
    """Set ``flag["interrupted"]`` when SIGINT arrives (still raising KeyboardInterrupt wherever the main thread
    is), so that the cluster is closed fast whatever exception then reaches the ``finally`` (a generator closed by
    its consumer sees GeneratorExit), and start :func:`exit_after` so that the process ends within
    INTERRUPT_WATCHDOG_SECONDS even if its shutdown hangs. Returns what restores the handler. Only in the main
    thread, and only over Python's own handler."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        return lambda: None

    def on_sigint(signum, frame):  # noqa: ARG001
        if not flag["interrupted"]:
            exit_after(INTERRUPT_WATCHDOG_SECONDS)
        flag["interrupted"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    return lambda: signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def _quiet_shutdown() -> Iterator[None]:
    """No second Ctrl-C and no log lines of Dask while the cluster is stopped after an interrupt."""
    import logging

    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if main:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None, *, resources: dict[str, float] | None = None,
                gpu: bool = False, echo: Echo = print) -> Iterator:
    """A ``distributed.Client`` on the scheduler at ``scheduler`` (address or scheduler file), or on a new
    LocalCluster of ``workers`` single-threaded processes (each with ``resources``) that is closed on exit;
    with ``gpu``, that LocalCluster has one worker per visible GPU instead, at most ``workers``
    (:func:`gpu_local_cluster`).
    This process's environment is restored on exit: ``distributed`` writes ``OMP_NUM_THREADS=1``,
    ``PYTHONHASHSEED`` and others into it when it starts worker processes, which would otherwise change the
    threads (and so the floats) of every process started from here afterwards."""
    import dask
    from dask.distributed import Client, LocalCluster

    environ = dict(os.environ)
    cluster = None
    if scheduler:
        client = connect(scheduler)
    else:
        dashboard = "127.0.0.1:0" if has_bokeh() else None
        preload = [*(dask.config.get("distributed.worker.preload") or []), __name__]  # workers ignore SIGINT
        with dask.config.set({DASK_TRIM_CONFIG: None}):  # the workers' memory as any process's (module docstring)
            if gpu:
                cluster = gpu_local_cluster(workers, resources=resources, dashboard=dashboard, preload=preload, echo=echo)
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=dashboard, resources=resources or None, preload=preload)
            client = Client(cluster)
            if gpu:  # the workers of a scaled cluster start after it returns
                client.wait_for_workers(len(cluster.worker_spec))
    flag = {"interrupted": False}
    restore_sigint = _flag_interrupts(flag)
    try:
        n = len(client.scheduler_info(n_workers=-1)["workers"])
        where = scheduler or ("a local cluster, one worker per GPU" if gpu else "a local cluster")
        echo(f"dask: {n} worker(s), scheduler {client.scheduler.address} ({where}), {dashboard_note(client.dashboard_link)}")
        if scheduler and resources:
            note = _resource_note(client, resources)
            if note:
                echo(note)
        elif scheduler and n == 0:
            echo("note: the cluster has no worker yet; the tasks wait for one")
        yield client
    finally:
        restore_sigint()
        if flag["interrupted"]:  # Ctrl-C: the work in flight is lost anyway; stop the workers within seconds
            with _quiet_shutdown():
                with contextlib.suppress(Exception):
                    client.close(timeout=INTERRUPT_EXIT_SECONDS)
                if cluster is not None:
                    close_local_cluster(cluster, timeout=INTERRUPT_EXIT_SECONDS)
        else:
            client.close()
            if cluster is not None:
                close_local_cluster(cluster)
        restore_environ(environ)


def restore_environ(saved: dict[str, str]) -> None:
    """Make ``os.environ`` equal to ``saved`` again (variables added since are removed)."""
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


# ---------------------------------------------------------------------------------------------- SLURM


def write_scheduler_file(path: Path, address: str, dashboard: str | None) -> None:
    """``{"address": ..., "dashboard": ...}``, atomically (a reader never sees half a file)."""
    text = json.dumps({"type": "Scheduler", "address": address, "dashboard": dashboard}, indent=2)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def slurm_cluster(cores: int, memory: str, walltime: str, *, gpus: int = 0, interface: str | None = None,
                  queue: str | None = None, account: str | None = None, sbatch: tuple[str, ...] = (),
                  log_directory: str | None = None):
    """A dask-jobqueue SLURMCluster (no job submitted yet: ``cluster.scale(jobs=N)``) whose jobs each run one
    worker process of ``cores`` threads; with ``gpus``, each job asks SLURM for them (``--gres=gpu:N``) and runs
    one worker process per GPU (``cores`` shared among them), each seeing only its own GPU
    (:mod:`sercore.gpu_worker`) and offering the Dask resource ``GPU=1`` (what ``--device cuda`` cells ask for).
    :class:`ValueError` for fewer ``cores`` than ``gpus`` (a worker needs a thread)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise EnvironmentProblem("dask_jobqueue", f"cannot import it ({exc}); pip install 'mgser[cluster]'") from None
    if gpus and cores < gpus:
        raise ValueError(f"{cores} core(s) for {gpus} GPUs: each GPU's worker needs a core of its own")
    extra = list(sbatch) + ([f"--gres=gpu:{gpus}"] if gpus else [])
    worker_args = ["--resources", "GPU=1"] if gpus else []
    if gpus > 1:
        worker_args += ["--preload", "sercore.gpu_worker"]
    scheduler_options: dict[str, object] = {"dashboard_address": ":0" if has_bokeh() else None}
    if interface:
        scheduler_options["interface"] = interface
    cluster = SLURMCluster(cores=cores, processes=max(1, gpus), memory=memory, walltime=walltime, interface=interface,
                           queue=queue, account=account, job_extra_directives=extra, worker_extra_args=worker_args,
                           log_directory=log_directory, scheduler_options=scheduler_options)
    return cluster


def serve_slurm(jobs: int, cores: int, memory: str, walltime: str, scheduler_file: Path, *, gpus: int = 0,
                interface: str | None = None, queue: str | None = None, account: str | None = None,
                sbatch: tuple[str, ...] = (), log_directory: str | None = None, echo: Echo = print) -> int:
    """Start :func:`slurm_cluster`, write ``scheduler_file`` and serve until SIGINT or SIGTERM; then cancel the
    jobs and remove the file. Returns the exit status. A job that ends early (``scancel``, walltime) is replaced
    by dask-jobqueue once its worker has been gone for ``distributed.deploy.lost-worker-timeout`` (15 s); the
    tasks it was running are run again elsewhere by Dask."""
    cluster = slurm_cluster(cores, memory, walltime, gpus=gpus, interface=interface, queue=queue, account=account,
                            sbatch=sbatch, log_directory=log_directory)
    cluster.scale(jobs=jobs)
    stop = {"now": False}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["now"] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        write_scheduler_file(scheduler_file, cluster.scheduler_address, cluster.dashboard_link)
        echo(f"scheduler {cluster.scheduler_address}, {dashboard_note(cluster.dashboard_link)}")
        echo(f"scheduler file {scheduler_file}: pass --scheduler {scheduler_file} to extract and run_all.sh")
        echo(f"{jobs} SLURM job(s) of {cores} core(s), {memory}, {walltime}" + (f", {gpus} GPU(s)" if gpus else "")
             + "; Ctrl-C (or SIGTERM) cancels them")
        seen = -1
        while not stop["now"]:
            n = len(cluster.scheduler_info.get("workers", {}))
            if n != seen:
                echo(f"{n} worker(s) connected")
                seen = n
            time.sleep(0.5)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        scheduler_file.unlink(missing_ok=True)
        cluster.close()
        echo("cluster closed, its jobs cancelled")


@click.group("cluster", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version(), "--version", message="%(prog)s (mgser) %(version)s")
def main() -> None:
    """Start a Dask cluster for extract --scheduler and run_all.sh --scheduler."""


SLURM_EXAMPLES = """\
mgser cluster slurm --jobs 2 --cores 1 --memory 1GB --walltime 00:10:00 --interface lo &
extract --dataset demo --scheduler dask-scheduler.json
./run_all.sh --scheduler dask-scheduler.json en=demo de=demo
mgser cluster slurm --jobs 8 --cores 4 --memory 16GB --walltime 04:00:00 --gpus 1 &   # GPU workers
./run_all.sh --scheduler dask-scheduler.json --device cuda de=emodb:/data/emodb it=emovo:/data/emovo"""


@main.command("slurm", epilog=epilog(SLURM_EXAMPLES, ["SLURM_CONF"]) + "\n\nDefaults not given here come from "
              "dask-jobqueue's own configuration (~/.config/dask/jobqueue.yaml).")
@click.option("--jobs", type=click.IntRange(1, 10_000), default=1, show_default=True, help="SLURM jobs, one Dask worker each.")
@click.option("--cores", type=THREADS, default=1, show_default=True, help="CPU cores per job (the worker's threads).")
@click.option("--memory", default="4GB", show_default=True, help="Memory per job, e.g. 16GB.")
@click.option("--walltime", default="01:00:00", show_default=True, help="Time limit per job (a job that ends is replaced).")
@click.option("--gpus", type=click.IntRange(0, 64), default=0, show_default=True,
              help="GPUs per job: sbatch --gres=gpu:N, and one Dask worker per GPU with the resource GPU=1 (for --device cuda).")
@click.option("--interface", default=None, help="Network interface of the scheduler and workers, e.g. ib0 or lo.")
@click.option("--partition", "queue", default=None, help="SLURM partition.")
@click.option("--account", default=None, help="SLURM account.")
@click.option("--sbatch", "sbatch", multiple=True, help="Extra sbatch directive, e.g. --sbatch=--qos=short (repeatable).")
@click.option("--log-dir", type=click.Path(file_okay=False), default=None, help="Folder for the jobs' output files.")
@click.option("--scheduler-file", type=click.Path(dir_okay=False, path_type=Path), default=Path("dask-scheduler.json"),
              show_default=True, help="Where to write the scheduler's address for --scheduler.")
@common_options
def slurm(jobs, cores, memory, walltime, gpus, interface, queue, account, sbatch, log_dir, scheduler_file, verbose,
          quiet) -> None:
    """A Dask scheduler here and its workers as SLURM jobs (dask-jobqueue); stays until Ctrl-C or SIGTERM."""
    if gpus > cores:
        raise click.BadParameter(f"{cores} core(s) for {gpus} GPUs: give --cores {gpus} or more (one per GPU's worker)",
                                 param_hint="--cores")
    with command_errors(verbose, quiet):
        status = serve_slurm(jobs, cores, memory, walltime, scheduler_file, gpus=gpus, interface=interface,
                             queue=queue, account=account, sbatch=tuple(sbatch), log_directory=log_dir, echo=say)
    sys.exit(status)


if __name__ == "__main__":
    main(prog_name="python -m sercore.cluster")
