"""A console e-mail backend for the embedded first run that stays readable.

Django's console backend prints every attachment as base64; this one prints the headers and
the text part, and one line per attachment with its name, type and size.
"""

from __future__ import annotations

from django.core.mail.backends.console import EmailBackend as DjangoConsoleBackend
from django.core.mail.message import EmailMessage


class EmailBackend(DjangoConsoleBackend):
    """Writes a summary of each message to stdout (or the configured stream)."""

    def write_message(self, message: EmailMessage) -> None:
        lines = [
            f"From: {message.from_email}",
            f"To: {', '.join(message.to)}",
            f"Subject: {message.subject}",
            "",
            message.body.rstrip(),
        ]
        for attachment in message.attachments:
            name, content, mimetype = attachment
            size = len(content) if isinstance(content, (bytes, str)) else 0
            lines.append(f"[attachment: {name} ({mimetype}, {size} bytes)]")
        self.stream.write("\n".join(lines) + "\n" + "-" * 79 + "\n")
