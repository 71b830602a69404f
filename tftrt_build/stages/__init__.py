"""stages: what each stage of an artifact does, from its cache key to its output.

A stage has a pure half and a working half. The pure half says what decides its output (the
inputs and toolchain its cache key is made of) and what ``mode=plan`` shows; the working half
makes the output into a staging folder, through an executor when TensorFlow is needed, and
judges it. Owns the source stage (``source``: export script, archive, local folder), the
converters (``convert``, ``converters``, ``native``, ``tftrt``) and the sample inputs stages
feed a model (``samples``).

May import: ``config``, ``store``, ``execute``, ``errors``.
"""
