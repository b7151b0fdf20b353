"""Model workers: the servable API (`register`), servable loading, the worker loop, `msq-worker`.

Importing this package (or `msq.workers.register`) does not import MindSpore.
"""
