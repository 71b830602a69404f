"""The TensorFlow worker process (a "zygote"): imports TensorFlow once, forks one child per task.

Started by ``execute.worker`` as a child of tftrt-build (``python -s -c``, its own session,
dying with its parent like a stage process). It imports TensorFlow, Keras and the stage
operations, then waits on a Unix socket (SOCK_SEQPACKET, one message per packet) for tasks.
Each task message carries a task file and, as an SCM_RIGHTS file descriptor, the write end of
the pipe its log goes to. The worker forks; the child starts a session of its own (so a
timeout stops its whole group), dies with the worker, puts the pipe on stdout and stderr and
runs ``runner.run_task`` exactly as a stage process would, then ``os._exit``s. The worker
answers ``{"pid": ...}`` once forked and ``{"pid": ..., "exit": ...}`` once the child is
reaped (the exit code as ``subprocess`` reports it: negative for a signal).

Why a fork per task and not one process for all: TensorFlow and Keras number what they create
(function names in ``saved_model.pb``, layer names) from process-wide counters, so a second
export in the same process differs byte for byte from the first. A child forked from a process
that imported TensorFlow but ran no TensorFlow operation starts from the same counters, and
gives the same bytes as a fresh process. Nothing here may run a TensorFlow operation before
forking: TensorFlow's thread pools do not survive a fork.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import socket
import sys
import tempfile
import traceback
from pathlib import Path

from tftrt_build.execute.runner import OPERATIONS, die_with_parent, run_task

# Imported once by the worker, so a task does not import them again. Importing runs no
# TensorFlow operation (checked by the reproducibility test: same digests as a fresh process).
PRELOAD = (
    "tensorflow",
    "keras",
    "numpy",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.prediction_log_pb2",
)
# Largest task message: a path and a few names.
MESSAGE_BYTES = 65536


def preload() -> None:
    """Import what every task needs; a module that fails to import is left for the task, whose
    own import then fails with the error a stage process would show."""
    operations = [spec.split(":")[0] for spec in OPERATIONS.values()]
    for name in (*PRELOAD, *operations):
        try:
            importlib.import_module(name)
        except Exception:  # the task reports it, with its traceback
            print(f"worker: cannot preload {name}", flush=True)


def serve(control: socket.socket) -> int:
    """Fork a child per task message until tftrt-build closes the socket."""
    me = os.getpid()
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, MESSAGE_BYTES, 1)
        except ConnectionError:
            return 0
        if not data:
            for fd in fds:
                os.close(fd)
            return 0  # tftrt-build is done with us
        request = json.loads(data)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            print(f"worker: a task message without its log pipe: {request}", flush=True)
            return 1
        pid = os.fork()
        if pid == 0:
            _child(control, fds[0], request, me)
        os.close(fds[0])
        with contextlib.suppress(OSError):
            control.send(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        ended = {"pid": pid, "exit": os.waitstatus_to_exitcode(status)}
        try:
            control.send(json.dumps(ended).encode())
        except OSError:
            return 0  # tftrt-build went away while the task ran


def _child(control: socket.socket, log_fd: int, request: dict[str, str], worker: int) -> None:
    """The forked task: never returns into the worker's loop."""
    code = 1
    try:
        control.close()
        os.setsid()
        die_with_parent(worker)
        os.chdir(request["cwd"])
        _private_tmp(Path(request["task"]).parent)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        code = run_task(Path(request["task"]))
    except BaseException:  # whatever happens, the child must not return
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _private_tmp(task_folder: Path) -> None:
    """Send the task's temporary files into its task folder, which the build removes.

    A forked task ends with ``os._exit``, which runs no ``atexit`` handler: the files that
    TensorFlow's autograph writes to the temporary folder and removes at exit would stay in
    the user's $TMPDIR. The task folder is removed after the task, and after a kill by the
    next build.
    """
    scratch = task_folder / "tmp"
    scratch.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = str(scratch)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    args = sys.argv[1:] if argv is None else argv
    control = socket.socket(fileno=int(args[0]))
    preload()
    # What is imported stays put: the collector of a child does not walk (and so copy) the
    # worker's objects, which makes each task cheaper (CPython's advice for fork servers).
    gc.freeze()
    with control:
        return serve(control)


if __name__ == "__main__":
    sys.exit(main())
