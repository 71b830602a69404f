"""cli: the console commands, each a thin Hydra app over one job body; the only code that prints.

``app`` is what every command shares (``Command``: composing the config, one-line errors, exit
codes, the run's log); ``build``, ``deploy``, ``verify`` and ``bench`` are the commands;
``review`` prints or writes ``mode=diff``'s review; ``sweep`` ends a ``-m`` sweep with one
table; ``tables`` and ``console`` render.

May import anything in tftrt_build; nothing imports it.
"""
