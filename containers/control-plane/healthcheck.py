#!/usr/bin/env python3
"""The image's HEALTHCHECK: GET /api/health on the local gunicorn; exit 0 on HTTP 200.

`healthy` and `degraded` both answer 200 (the web works; /api/health says what is missing),
`unhealthy` answers 503 (no database). The Host header is the first ALLOWED_HOSTS name, so the
check passes whatever host names the operator allows. Standard library only: it runs every 30 s.
"""

from __future__ import annotations

import http.client
import json
import os
import sys

PORT = int(os.environ.get("WOPR_HEALTH_PORT", "8001"))
TIMEOUT = 5.0


def host_header() -> str:
    for name in os.environ.get("ALLOWED_HOSTS", "localhost").split(","):
        name = name.strip()
        if name and name != "*":
            return name.lstrip(".")  # ".example.com" allows example.com and its subdomains
    return "localhost"


def main() -> int:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=TIMEOUT)
    try:
        connection.request("GET", "/api/health", headers={"Host": host_header()})
        response = connection.getresponse()
        body = response.read()
    except OSError as error:
        print(f"health: no answer on port {PORT} ({type(error).__name__})")
        return 1
    finally:
        connection.close()
    try:
        status = json.loads(body).get("status", "?")
    except ValueError:
        status = "not JSON"
    print(f"health: HTTP {response.status}, {status}")
    return 0 if response.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
