"""tfops: the operations that import TensorFlow, run only inside a stage process.

``tftrt_build.execute.runner`` loads one by name for each task (export, inspect, probe, tftrt,
warmup, predict); nothing else imports this package, so the CLI never loads TensorFlow.

May import: ``execute.task``, ``execute.capabilities``, ``stages.samples``, ``config``,
``errors``.
"""
