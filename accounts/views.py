"""The profile page: the user's own API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .forms import TokenForm
from .models import ApiToken

# The raw token waits in the session for exactly one page view: it is never
# stored anywhere else, and a reload must not show it again.
NEW_TOKEN_KEY = "walle_new_token"


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _token, raw = ApiToken.issue(request.user, form.cleaned_data["name"])
        request.session[NEW_TOKEN_KEY] = raw
        return redirect("profile")
    return render(request, "accounts/profile.html", {
        "form": form, "new_token": request.session.pop(NEW_TOKEN_KEY, ""),
        "tokens": ApiToken.objects.filter(user=request.user),
    })


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    # Filtering by owner makes someone else's token a 404, not a revoke.
    token = get_object_or_404(ApiToken.objects.active(), pk=pk, user=request.user)
    token.revoke()
    messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return redirect("profile")
