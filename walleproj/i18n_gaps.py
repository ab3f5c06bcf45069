"""Strings Django's own admin templates show that Django 5.2's Simplified
Chinese catalogue does not translate yet (the app list's column headings).

Walle's catalogue (LOCALE_PATHS) is searched before Django's, so listing them
here, marked with gettext_noop for makemessages, gives the admin its Chinese.
Remove an entry once Django translates it.
"""

from django.utils.translation import gettext_noop

DJANGO_ADMIN_GAPS = (
    gettext_noop("Model name"),
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
)
