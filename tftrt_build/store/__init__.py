"""store: what persists between runs, and how each write of it stays whole.

Owns the content-addressed cache (``cache``: entries staged, hashed and renamed into place,
checked on every hit), content digests and the stat cache (``digest``), ``tftrt.lock``
(``lock``: read, merged and written under a file lock), the file-system primitives every
write goes through (``fs``: atomic writes, folder swaps, hard-link copies) and the shared
remote cache other machines push to and pull from (``remote``, through fsspec).

May import: ``config`` (paths, the YAML guard), ``errors``.
"""
