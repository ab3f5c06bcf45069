"""The page language: the browser's (Accept-Language, via LocaleMiddleware),
unless the person chose one; their choice is kept on their account and
applied on every request from the session, so it costs no query."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from .models import UserPreference

SESSION_KEY = "walle_language"


def choose(request: HttpRequest, language: str) -> None:
    """Remember ``language`` ("" = the browser's) for this session and, when
    logged in, on the account."""
    request.session[SESSION_KEY] = language
    if request.user.is_authenticated:
        UserPreference.objects.update_or_create(user=request.user, defaults={"language": language})


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's set_language (cookie, safe ``next`` redirect), plus the
    account. An unknown language changes nothing."""
    language = request.POST.get("language", "")
    known = {code for code, _name in settings.LANGUAGES}
    if language and language not in known:
        return django_set_language(request)  # Django's own refusal: redirect, no change
    choose(request, language)
    response = django_set_language(request)
    if not language:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response


class UserLanguageMiddleware:
    """After authentication: the language kept in the session wins over the
    browser's."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


@receiver(user_logged_in)
def _apply_preference_at_login(sender, request, user, **kwargs) -> None:
    preference = UserPreference.objects.filter(user=user).values_list("language", flat=True).first()
    if request is not None and preference:
        request.session[SESSION_KEY] = preference
