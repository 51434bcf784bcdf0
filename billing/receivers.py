"""dj-stripe signal receivers (filled in below)."""
