"""Staff register installer releases (an uploaded tarball or a URL) and choose the current one.

Plain Django admin: the add form takes the tarball or the URL with its SHA-256 (an upload's is
computed by us), a release is read-only once saved (Beacons may hold its version and hash)
but for its notes, and "make current" asks for confirmation, naming the release that stops
being current.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from installers.models import InstallerRelease
from installers.services import (
    InstallerTarballInvalid,
    current_installer,
    installer_env_configured,
    installer_release_create_upload,
    installer_release_create_url,
    installer_release_make_current,
    installer_tarball_check,
)
from wopr.audit import staff_action_record


class InstallerReleaseAddForm(forms.ModelForm):
    """A new release: a tarball to upload, or a URL with the SHA-256 staff were given."""

    tarball = forms.FileField(
        required=False, help_text="The installer .tar.gz; its SHA-256 is computed on upload."
    )

    class Meta:
        model = InstallerRelease
        fields = ["version", "tarball", "url", "sha256", "notes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sha256"].required = False
        self.fields["sha256"].help_text = "Only for a URL release (64 hex digits)."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        tarball, url = data.get("tarball"), data.get("url")
        sha256 = (data.get("sha256") or "").strip().lower()
        if bool(tarball) == bool(url):
            raise ValidationError("Give either a tarball to upload or a URL, not both.")
        if tarball and sha256:
            self.add_error("sha256", "An upload's SHA-256 is computed here; leave this empty.")
        if url and not sha256:
            self.add_error("sha256", "A URL release needs the tarball's SHA-256.")
        data["sha256"] = sha256
        if tarball:
            _check_upload(tarball)
        return data

    def _post_clean(self) -> None:
        """Model validation of the fields the form has; the source constraint and the hash
        of an upload are the service's (the row does not exist before it)."""
        if self.cleaned_data.get("tarball"):
            self.instance.tarball_path = "pending"
            self.instance.sha256 = "0" * 64
        super()._post_clean()


def _check_upload(tarball: Any) -> None:
    """The uploaded file is an installer tarball; the form says what is wrong if not."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "upload.tar.gz"
        with path.open("wb") as handle:
            for chunk in tarball.chunks():
                handle.write(chunk)
        tarball.seek(0)
        try:
            installer_tarball_check(path)
        except InstallerTarballInvalid as problem:
            raise ValidationError({"tarball": f"Not an installer tarball: {problem}."}) from None


@admin.register(InstallerRelease)
class InstallerReleaseAdmin(admin.ModelAdmin):
    list_display = ["version", "sha256", "current", "source", "size_bytes", "created_at"]
    list_filter = ["current"]
    search_fields = ["version", "sha256", "notes"]
    actions = ["make_current"]
    readonly_fields = [
        "version",
        "sha256",
        "source",
        "tarball_path",
        "size_bytes",
        "url",
        "current",
        "created_at",
    ]

    @admin.display(description="source")
    def source(self, release: InstallerRelease) -> str:
        return "uploaded" if release.uploaded else "URL"

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = InstallerReleaseAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["version", "tarball", "url", "sha256", "notes"]
        return [*self.readonly_fields, "notes"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Releases are kept: Beacons' timelines and bootstrap files name their versions."""
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["notes"])
            return
        data = form.cleaned_data
        if data.get("tarball"):
            created = installer_release_create_upload(
                version=data["version"], tarball=data["tarball"], notes=data["notes"]
            )
        else:
            created = installer_release_create_url(
                version=data["version"], url=data["url"], sha256=data["sha256"], notes=data["notes"]
            )
        form.instance = created
        obj.pk, obj.sha256 = created.pk, created.sha256

    @admin.action(description="Make the selected release current", permissions=["change"])
    def make_current(
        self, request: HttpRequest, queryset: QuerySet[InstallerRelease]
    ) -> HttpResponse | None:
        """Asks first, naming the release that stops being current; then switches."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one release.", messages.ERROR)
            return None
        release = queryset.get()
        if request.POST.get("post") == "yes":
            previous = installer_release_make_current(release=release)
            stopped = f"; {previous.version} is no longer current" if previous else ""
            staff_action_record(
                user=request.user,
                action="installer.make_current",
                target=release,
                outcome=f"current{stopped}",
            )
            self.message_user(request, f"Release {release.version} is current{stopped}.")
            return None
        return TemplateResponse(
            request,
            "admin/installers/installerrelease/make_current.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Make installer {release.version} current?",
                "release": release,
                "previous": InstallerRelease.objects.filter(current=True).first(),
                "env_wins": installer_env_configured(),
                "env_installer": current_installer() if installer_env_configured() else None,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )
