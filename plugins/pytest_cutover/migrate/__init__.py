"""The sync stage's engine: vectors Qdrant -> pgvector, BLOBs -> Storage, relational parity.

Pure parts (``digest``, ``accounting``) import neither pytest nor drivers; the
driver glue lives in ``source``, ``sink``, ``verify``, ``blobs`` and ``parity``;
``api`` is what the sync-stage fixtures call and ``cli`` is ``cutover migrate``.
"""
