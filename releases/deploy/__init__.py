"""The deploy engine: plain Python, never imports Django.

``releases.tasks`` turns models into :mod:`releases.deploy.plan` values and calls
:func:`releases.deploy.pipeline.deploy` or :func:`releases.deploy.pipeline.rollback`.
"""
