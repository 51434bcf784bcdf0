"""`manage.py serve_fakecloud`: the stateful fake Hetzner, DigitalOcean and Cloudflare APIs on
loopback ports, for demos of the real adapters without real accounts.

    .venv/bin/python manage.py serve_fakecloud        # then, in the shell that runs make run:
    export PROVIDERS=hetzner,digitalocean DNS_BACKEND=cloudflare ...   (the lines it prints)

State lives in this process's memory and is gone when it stops.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from fakes.beacon import beacon_installer
from fakes.cloudflare import ZONE_ID, FakeCloudflare
from fakes.digitalocean import FakeDigitalOcean
from fakes.hetzner import FakeHetzner
from fakes.loopback import serve


class Command(BaseCommand):
    help = "Serve stateful fakes of the Hetzner, DigitalOcean and Cloudflare APIs on loopback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hetzner-port", type=int, default=4110)
        parser.add_argument("--digitalocean-port", type=int, default=4113)
        parser.add_argument("--cloudflare-port", type=int, default=4111)
        parser.add_argument(
            "--zone-name",
            default="beacons.localhost",
            help="the fake Cloudflare zone (WOPR_BASE_DOMAIN)",
        )
        # handle() always read this option but it was never declared (a KeyError at start).
        parser.add_argument(
            "--beacons",
            type=float,
            default=2.0,
            help="a fake Beacon on every new server reports `complete` after this many "
            "seconds; negative: no Beacons (servers stay uninstalled)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        hetzner, digitalocean = FakeHetzner(), FakeDigitalOcean()
        cloudflare = FakeCloudflare(zones={ZONE_ID: options["zone_name"]})
        if options["beacons"] >= 0:
            hetzner.on_create = digitalocean.on_create = beacon_installer(options["beacons"])
        servers = [
            serve(hetzner, options["hetzner_port"]),
            serve(digitalocean, options["digitalocean_port"]),
            serve(cloudflare, options["cloudflare_port"]),
        ]
        ports = [server.server_address[1] for server in servers]
        self.stdout.write("Fake clouds are up. Point the control plane at them with:\n")
        self.stdout.write(
            f"export PROVIDERS=hetzner,digitalocean DNS_BACKEND=cloudflare "
            f"WOPR_BASE_DOMAIN={options['zone_name']} \\\n"
            f"  HETZNER_API_URL=http://127.0.0.1:{ports[0]}/v1 "
            f"HETZNER_API_TOKEN={hetzner.token} \\\n"
            f"  DIGITALOCEAN_API_URL=http://127.0.0.1:{ports[1]} "
            f"DIGITALOCEAN_API_TOKEN={digitalocean.token} \\\n"
            f"  CLOUDFLARE_API_URL=http://127.0.0.1:{ports[2]}/client/v4 "
            f"CLOUDFLARE_API_TOKEN={cloudflare.token} CLOUDFLARE_ZONE_ID={ZONE_ID}\n"
        )
        self.stdout.write("Ctrl-C stops them.")
        # The banner is what the operator needs: out at once, also through a pipe or a log file.
        self.stdout.flush()
        # A service manager's TERM stops the fakes like Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
