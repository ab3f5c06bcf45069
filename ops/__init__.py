"""Operations: the shared cache table that carries django-q2's worker heartbeats
between processes (see walleproj/health.py and walleproj/metrics.py)."""
