"""Pipelines: ``mlver.yaml`` stages, the ``mlver.lock`` record of their last runs, the
stage graph, change detection, running stages and the run cache (see docs/pipelines.md).
"""
