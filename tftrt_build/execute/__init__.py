"""execute: where a stage's TensorFlow work runs, and what that place can do.

Owns the task and executor interface (``task``), the local executor (``local``: a child
process on this machine, forked from a TensorFlow worker, ``worker`` and ``zygote``, or started
fresh), the Docker executor (``docker``: a container of a pinned image, on a
local or remote engine), the stage process itself (``runner``, which loads an operation of
``tftrt_build.tfops`` by name) and the interpretation of capability probes
(``capabilities``). A crash or abort in TensorFlow ends the stage process, never the CLI.

May import: ``config``, ``store``, ``errors``.
"""
