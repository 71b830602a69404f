"""serve: a built bundle becomes a running server that is checked and measured.

Owns the clients of a running TF Serving (``client``: REST and gRPC, every failure one line),
starting and stopping a bundle's Compose stack (``deploy``), proving a server answers what the
bundle holds (``verify``) and measuring it (``bench``, ``benchmark``). Printing is the CLI's.

May import: ``job``, ``plan``, ``build.ui``, ``emit``, ``stages``, ``execute``, ``store``,
``config``, ``errors``.
"""
