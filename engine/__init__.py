"""The deploy engine: plain Python, never imports Django.

``releases.tasks`` turns models into :mod:`engine.plan` values and calls
:func:`engine.pipeline.deploy` or :func:`engine.pipeline.rollback`.
"""
