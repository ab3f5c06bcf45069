"""Page routes (filled in by the pages work)."""

urlpatterns: list = []
