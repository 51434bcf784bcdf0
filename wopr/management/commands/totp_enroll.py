"""`manage.py totp_enroll <username>`: give a staff member a TOTP device for the admin.

The bootstrap for ADMIN_REQUIRE_OTP: with the second factor required nobody can reach the
admin's own device pages before having a device, so the first one is made here. It prints the
otpauth:// URL and a QR code for an authenticator app, once, on this terminal; the key is not
logged or stored anywhere else than the device row. A second run for the same device name
refuses unless --replace (which makes a new key and invalidates the old one).
"""

from __future__ import annotations

import io
from typing import Any

import qrcode
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Create a TOTP device for a staff user and print its otpauth:// URL and QR code."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="the device's name")
        parser.add_argument(
            "--replace", action="store_true", help="replace a device of the same name (new key)"
        )
        parser.add_argument("--no-qr", action="store_true", help="print the URL only")

    def handle(self, *args: Any, **options: Any) -> None:
        user = _staff_user(options["username"])
        device = _device_create(user, options["name"], replace=options["replace"])
        self.stdout.write(
            f"TOTP device {device.name!r} created for {user.get_username()}. Add it to an "
            "authenticator app (scan the code or paste the URL), then sign in to /admin/ "
            "with the 6-digit code. Keep this output private: it holds the key."
        )
        self.stdout.write(device.config_url)
        if not options["no_qr"]:
            self.stdout.write(_qr_text(device.config_url))


def _staff_user(username: str) -> Any:
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if user is None:
        raise CommandError(f"no user named {username!r}")
    if not (user.is_staff and user.is_active):
        raise CommandError(f"{username!r} is not an active staff user; the admin refuses it")
    return user


def _device_create(user: Any, name: str, *, replace: bool) -> TOTPDevice:
    """A confirmed TOTP device; an existing one of that name only goes with --replace."""
    with transaction.atomic():
        existing = TOTPDevice.objects.select_for_update().filter(user=user, name=name)
        if existing.exists():
            if not replace:
                raise CommandError(
                    f"{user.get_username()!r} already has a TOTP device named {name!r}; "
                    "use --replace to make a new key (the old one stops working) or --name"
                )
            existing.delete()
        return TOTPDevice.objects.create(user=user, name=name, confirmed=True)


def _qr_text(url: str) -> str:
    code = qrcode.QRCode(border=1)
    code.add_data(url)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()
