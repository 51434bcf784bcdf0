"""`manage.py serve_fakecloud`: the stateful fake Hetzner, DigitalOcean and Cloudflare APIs on
loopback ports, for demos of the real adapters without real accounts.

    .venv/bin/python manage.py serve_fakecloud        # then, in the shell that runs make run:
    export PROVIDERS=hetzner,digitalocean DNS_BACKEND=cloudflare ...   (the lines it prints)

State lives in this process's memory and is gone when it stops.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from provisioning.fakecloud import serve
from provisioning.fakecloud.beacon import beacon_installer
from provisioning.fakecloud.cloudflare import ZONE_ID, FakeCloudflare
from provisioning.fakecloud.digitalocean import FakeDigitalOcean
from provisioning.fakecloud.hetzner import FakeHetzner


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
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            for server in servers:
                server.shutdown()
