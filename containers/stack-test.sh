#!/usr/bin/env bash
# The deployment proven by running it (issue 12): build the image with Podman, run the stack
# from it behind Caddy, and check it from outside. Run as root from anywhere in the repository:
#
#   containers/stack-test.sh            the whole test (CI runs this; about 10 minutes)
#   STACK_KEEP=1 containers/stack-test.sh   leave the last stack running to look at it
#
# What runs (containers/README.md, "The stack test", shows each command): the image built on
# the local Debian base (containers/base-image.sh); two `orc` web replicas, a `worker`, the
# fake Hetzner/Cloudflare APIs (`manage.py serve_fakecloud`, from the image), an SMTP sink
# (from the image) and Caddy (Debian's package, in a local image), all with --network host;
# this machine's PostgreSQL (database STACK_DATABASE, made new) and a redis-server of this
# script's own on a free port. The two replicas listen on 127.0.0.1 and 127.0.0.2 (loopback)
# on one port, so the Caddyfile's `dynamic a` upstream balances over both, as it does over the
# compose replicas. Everything is removed at the end, also on failure; the images are kept.
#
# Exit status: 0 all checks passed, 1 a check failed (the reason is printed), 2 a tool is
# missing (podman, runc, debootstrap, psql, redis-server).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${STACK_PREFIX:-wopr-stack}"
IMAGE="${STACK_IMAGE:-localhost/wopr-control-plane:stack}"
OLD_IMAGE="${STACK_OLD_IMAGE:-localhost/wopr-control-plane:upgrade-from}"
BASE_IMAGE="${BASE_IMAGE:-localhost/wopr-debian:bookworm}"
CADDY_IMAGE="${STACK_CADDY_IMAGE:-localhost/wopr-caddy:bookworm}"
DB="${STACK_DATABASE:-wopr_stack}"
PGHOST=127.0.0.1
PGUSER=postgres
export PGHOST PGUSER
# pip in the build trusts what this machine trusts (an inspecting proxy's CA included).
CA_BUNDLE="${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
WORK="$(mktemp -d /tmp/wopr-stack.XXXXXX)"
ENV_FILE="$WORK/stack.env"
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
T0=$SECONDS
REDIS_PID=""
SUMMARY=()

log() { printf 'stack-test: %s\n' "$*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}
# Each stage's wall time, for the summary (the README quotes it).
stage() {
  STAGE_NAME="$1"
  STAGE_START=$SECONDS
  printf '\n=== %s (t=%ss)\n' "$1" "$((SECONDS - T0))" >&2
}
stage_done() { SUMMARY+=("$(printf '%-34s %4ss' "$STAGE_NAME" "$((SECONDS - STAGE_START))")"); }

# crun fails on this kernel's hybrid cgroups: every podman call uses runc.
podman() { command podman --runtime runc "$@"; }

free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

containers() { podman ps -a --format '{{.Names}}' --filter "label=wopr-stack=$PREFIX"; }

cleanup() {
  local status=$?
  if [[ "${STACK_KEEP:-}" == 1 ]]; then
    log "STACK_KEEP=1: containers, volumes and $WORK left as they are"
    return
  fi
  if ((status != 0)); then
    for name in $(containers); do
      printf -- '--- podman logs %s (last 60 lines)\n' "$name" >&2
      podman logs --tail 60 "$name" >&2 || true
    done
  fi
  for name in $(containers); do podman rm -f -t 5 "$name" >/dev/null 2>&1 || true; done
  for volume in $(podman volume ls -q --filter "label=wopr-stack=$PREFIX"); do
    podman volume rm -f "$volume" >/dev/null 2>&1 || true
  done
  if [[ -n "$REDIS_PID" ]]; then kill "$REDIS_PID" 2>/dev/null || true; fi
  dropdb --if-exists "$DB" 2>/dev/null || true
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

require_tools() {
  local tool missing=()
  for tool in podman runc debootstrap psql createdb dropdb redis-server python3 curl git; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    log "missing: ${missing[*]} (apt-get install podman runc debootstrap postgresql-client redis-server curl git)"
    exit 2
  fi
}

# --- images -----------------------------------------------------------------------------------

build_image() { # build_image TAG CONTEXT
  local tag="$1" context="$2"
  # Docker format: the OCI format has no HEALTHCHECK, podman would drop the image's.
  podman build --format docker --network host "${LIMITS[@]}" \
    --volume "$CA_BUNDLE:/run/build-ca.crt:ro" --build-arg PIP_CERT=/run/build-ca.crt \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    -t "$tag" -f "$context/containers/control-plane/Containerfile" "$context"
}

build_caddy_image() {
  if podman image exists "$CADDY_IMAGE"; then
    return
  fi
  printf '%s\n' "FROM $BASE_IMAGE" \
    "RUN apt-get update && apt-get install -y --no-install-recommends caddy ca-certificates \\" \
    "    && apt-get clean && rm -rf /var/lib/apt/lists/*" \
    'ENTRYPOINT ["caddy"]' >"$WORK/Caddy.Containerfile"
  podman build --network host "${LIMITS[@]}" -t "$CADDY_IMAGE" -f "$WORK/Caddy.Containerfile" "$WORK"
}

check_non_root() {
  local user uid
  user="$(podman image inspect --format '{{.Config.User}}' "$IMAGE")"
  uid="$(podman run --rm "${LIMITS[@]}" --health-cmd none --entrypoint id "$IMAGE" -u)"
  [[ "$user" == wopr && "$uid" == 10001 ]] || fail "image user is '$user' (uid $uid), not wopr (10001)"
  log "runs as $user (uid $uid)"
}

# --- the stack --------------------------------------------------------------------------------

start_services() {
  dropdb --if-exists "$DB"
  createdb "$DB"
  REDIS_PORT="$(free_port)"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize no --logfile "$WORK/redis.log" &
  REDIS_PID=$!
  ORC_PORT="$(free_port)"
  CADDY_PORT="$(free_port)"
  HETZNER_PORT="$(free_port)"
  DIGITALOCEAN_PORT="$(free_port)"
  CLOUDFLARE_PORT="$(free_port)"
  SMTP_PORT="$(free_port)"
  SITE="https://localhost:$CADDY_PORT"
}

# The production configuration but one thing: real adapters (over HTTP to the fakes), SMTP,
# HTTPS redirects, the worker required for `healthy`. DEBUG is on because no Stripe API is
# reachable here: with a Stripe secret key set, dj-stripe asks Stripe for the account on every
# event; only without one is the signed test event processed offline, and with DEBUG off the
# configuration check requires the key. The Beacon installer is given by URL as production
# gives it (the fake Beacons download nothing, so the URL and hash are placeholders).
write_env_file() {
  umask 077
  cat >"$ENV_FILE" <<ENV
DEBUG=true
SECURE_SSL_REDIRECT=true
HEALTH_REQUIRE_WORKER=true
SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
ALLOWED_HOSTS=localhost
CSRF_TRUSTED_ORIGINS=$SITE
WOPR_PUBLIC_URL=$SITE
TRUSTED_PROXIES=127.0.0.1
DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
WOPR_BIND=127.0.0.1:$ORC_PORT
WOPR_HEALTH_PORT=$ORC_PORT
STRIPE_TEST_WEBHOOK_SECRET=whsec_$(python3 -c 'import secrets; print(secrets.token_hex(16))')
PROVIDERS=hetzner
DNS_BACKEND=cloudflare
WOPR_BASE_DOMAIN=beacons.localhost
HETZNER_API_URL=http://127.0.0.1:$HETZNER_PORT/v1
HETZNER_API_TOKEN=${FAKE_HETZNER_TOKEN:-unset}
CLOUDFLARE_API_URL=http://127.0.0.1:$CLOUDFLARE_PORT/client/v4
CLOUDFLARE_API_TOKEN=${FAKE_CLOUDFLARE_TOKEN:-unset}
CLOUDFLARE_ZONE_ID=${FAKE_CLOUDFLARE_ZONE:-unset}
SMTP_HOST=127.0.0.1
SMTP_PORT=$SMTP_PORT
WOPR_INSTALLER_URL=$SITE/installer/wopr-reference-installer-1.0.0.tar.gz
WOPR_INSTALLER_SHA256=$(printf '0%.0s' {1..64})
SMTP_USE_TLS=false
JOB_POLL_SECONDS=1
WEB_CONCURRENCY=2
Q_WORKERS=2
SSL_CERT_FILE=/run/caddy-root.crt
ENV
  umask 022
}

run_caddy() {
  podman volume create --label "wopr-stack=$PREFIX" "$PREFIX-caddy-data" >/dev/null
  podman run -d --name "$PREFIX-caddy" --label "wopr-stack=$PREFIX" --network host "${LIMITS[@]}" \
    --add-host "$PREFIX-orc:127.0.0.1" --add-host "$PREFIX-orc:127.0.0.2" \
    -e WOPR_SITE_ADDRESS="localhost:$CADDY_PORT" -e WOPR_UPSTREAM_HOST="$PREFIX-orc" \
    -e WOPR_UPSTREAM_PORT="$ORC_PORT" -e CADDY_ADMIN=off -e XDG_DATA_HOME=/data \
    -v "$ROOT/containers/Caddyfile:/etc/caddy/Caddyfile:ro" -v "$PREFIX-caddy-data:/data" \
    "$CADDY_IMAGE" run --config /etc/caddy/Caddyfile --adapter caddyfile
  # Caddy's own CA signs https://localhost: the clients (and the fake Beacons) trust its root.
  local root=/data/caddy/pki/authorities/local/root.crt
  wait_for 30 "Caddy's local CA" podman exec "$PREFIX-caddy" test -s "$root"
  podman cp "$PREFIX-caddy:$root" "$WORK/caddy-root.crt"
  # A public certificate, mounted into containers that run as wopr.
  chmod 0644 "$WORK/caddy-root.crt"
}

# Helpers on the host side (a file, not a container): the fake clouds and the SMTP sink.
run_helpers() {
  podman run -d --name "$PREFIX-fakecloud" --label "wopr-stack=$PREFIX" --network host "${LIMITS[@]}" \
    --health-cmd none --env-file "$ENV_FILE" -v "$WORK/caddy-root.crt:/run/caddy-root.crt:ro" \
    -v "$ROOT/fakes:/app/fakes:ro" \
    "$IMAGE" python manage.py serve_fakecloud --beacons 2 --hetzner-port "$HETZNER_PORT" \
    --digitalocean-port "$DIGITALOCEAN_PORT" --cloudflare-port "$CLOUDFLARE_PORT"
  # The fakes' tokens and zone, as serve_fakecloud prints them for the operator.
  wait_for 120 "the fake clouds to start" fake_setting CLOUDFLARE_ZONE_ID
  FAKE_HETZNER_TOKEN="$(fake_setting HETZNER_API_TOKEN)"
  FAKE_CLOUDFLARE_TOKEN="$(fake_setting CLOUDFLARE_API_TOKEN)"
  FAKE_CLOUDFLARE_ZONE="$(fake_setting CLOUDFLARE_ZONE_ID)"
  write_env_file
  podman run -d --name "$PREFIX-smtp" --label "wopr-stack=$PREFIX" --network host "${LIMITS[@]}" \
    --health-cmd none --entrypoint python "$IMAGE" -W ignore -m smtpd -n -c DebuggingServer "127.0.0.1:$SMTP_PORT"
}

fake_setting() { # fake_setting NAME: its value in serve_fakecloud's banner
  local value
  value="$(podman logs "$PREFIX-fakecloud" 2>&1 | grep -o " $1=[^ ]*" | head -n 1 || true)"
  [[ -n "$value" ]] && printf '%s\n' "${value#*=}"
}

# One application container: ROLE NAME IMAGE [extra podman options...]
run_app() {
  local role="$1" name="$2" image="$3"
  shift 3
  podman run -d --name "$name" --label "wopr-stack=$PREFIX" --network host "${LIMITS[@]}" \
    --env-file "$ENV_FILE" -v "$WORK/caddy-root.crt:/run/caddy-root.crt:ro" \
    -v "$PREFIX-docs:/var/lib/wopr/documents" -v "$PREFIX-jobs:/var/lib/wopr/jobs" \
    -v "$PREFIX-logs:/var/log/wopr" -v "$PREFIX-health-state:/var/lib/wopr/provider-health" \
    "$@" "$image" "$role"
}

start_app() { # start_app IMAGE: two web replicas and a worker, started together
  local volume
  for volume in docs jobs logs health-state; do
    podman volume exists "$PREFIX-$volume" \
      || podman volume create --label "wopr-stack=$PREFIX" "$PREFIX-$volume" >/dev/null
  done
  local pids=()
  run_app web "$PREFIX-orc-1" "$1" &
  pids+=($!)
  run_app web "$PREFIX-orc-2" "$1" -e WOPR_BIND="127.0.0.2:$ORC_PORT" &
  pids+=($!)
  run_app worker "$PREFIX-worker" "$1" --health-cmd none &
  pids+=($!)
  wait "${pids[@]}"
}

stop_app() {
  podman rm -f -t 20 "$PREFIX-orc-1" "$PREFIX-orc-2" "$PREFIX-worker" >/dev/null
}

wait_for() { # wait_for SECONDS WHAT COMMAND...
  local limit="$1" deadline=$((SECONDS + $1)) what="$2"
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${limit}s waiting for $what"
    sleep 0.5
  done
}

through_caddy() { curl -fsS --max-time 10 --cacert "$WORK/caddy-root.crt" "$SITE$1"; }

health_is() { # health_is STATUS: /api/health through Caddy says STATUS
  through_caddy /api/health | python3 -c 'import json, sys
sys.exit(json.load(sys.stdin).get("status") != sys.argv[1])' "$1"
}

check_health_fields() {
  local body
  body="$(through_caddy /api/health)"
  printf '%s\n' "$body" | python3 -c 'import json, sys
body = json.load(sys.stdin)
# The fields of the seed README (containers/README.md, "Health Checks").
seed = {"status", "timestamp", "providers", "stripe_configured", "database_connected",
        "email_configured", "dns_configured"}
missing = seed - set(body)
assert not missing, f"missing fields: {sorted(missing)}"
assert body["status"] == "healthy", body
assert body["providers"] == ["hetzner"], body
for flag in ("database_connected", "email_configured", "dns_configured"):
    assert body[flag] is True, (flag, body)
assert body["stripe_configured"] is False, body  # no secret key here (see write_env_file)
assert body["worker"]["alive"] is True, body
' || fail "/api/health through Caddy: $body"
  log "/api/health through Caddy: $body"
}

# Exactly one of the containers started together applied the migrations.
check_migrated_once() { # check_migrated_once DATABASE [EXPECTED_APPLIERS]
  local name appliers=0 expected="${2:-1}"
  for name in "$PREFIX-orc-1" "$PREFIX-orc-2" "$PREFIX-worker"; do
    # grep -c reads everything: with -q, podman would die of SIGPIPE and pipefail say "no".
    if (($(podman logs "$name" 2>&1 | grep -c '^  Applying ' || true) > 0)); then
      appliers=$((appliers + 1))
      log "$name applied the migrations"
    fi
  done
  ((appliers == expected)) || fail "$appliers containers applied migrations (expected $expected)"
  local duplicates
  duplicates="$(psql -d "$1" -tAc \
    'SELECT count(*) FROM (SELECT app, name FROM django_migrations GROUP BY 1, 2 HAVING count(*) > 1) d')"
  [[ "$duplicates" == 0 ]] || fail "$duplicates migrations recorded twice"
}

in_orc() { # in_orc PYTHON: run Python with Django set up in a running web replica
  podman exec "$PREFIX-orc-1" python manage.py shell -c "$1"
}

purchase() { # purchase BEACON_NAME: a signed checkout.session.completed through Caddy
  podman run --rm --network host "${LIMITS[@]}" --env-file "$ENV_FILE" --health-cmd none \
    -v "$WORK/caddy-root.crt:/run/caddy-root.crt:ro" "$IMAGE" \
    python manage.py simulate_purchase --bundle starter --tier t1 \
    --email "$1@example.com" --beacon-name "$1" --url "$SITE"
}

order_of() { # order_of BEACON_NAME: the order id
  in_orc "from provisioning.models import Beacon
print('order', Beacon.objects.get(name='$1').order_id)" | sed -n 's/^order //p'
}

order_active() { # order_active ORDER_ID: the order status API through Caddy says active
  through_caddy "/api/v1/orders/$1" | python3 -c 'import json, sys
sys.exit((json.load(sys.stdin).get("beacon") or {}).get("status") != "active")'
}

documents_of() { # documents_of BEACON_NAME: "path sha256" of each of its PDFs, read from the volume
  in_orc "import hashlib
from django.conf import settings
from documents.models import Document
for d in Document.objects.filter(beacon__name='$1').order_by('path'):
    data = (settings.DOCUMENTS_ROOT / d.path).read_bytes()
    assert data.startswith(b'%PDF'), d.path
    print('pdf', d.path, hashlib.sha256(data).hexdigest())" | sed -n 's/^pdf //p'
}

buy_and_wait() { # buy_and_wait BEACON_NAME: purchase, then active and its PDFs
  purchase "$1"
  wait_for 60 "the Beacon $1 to exist" order_of "$1"
  local order
  order="$(order_of "$1")"
  [[ -n "$order" ]] || fail "no order for $1"
  wait_for 120 "order $order ($1) to be active (order status API through Caddy)" order_active "$order"
  log "$1: order $order is active"
  wait_for 60 "the PDFs of $1" has_documents "$1"
}

has_documents() { [[ -n "$(documents_of "$1")" ]]; }

request_lines() { # request_lines NAME: gunicorn's access-log lines for /api/health
  podman logs "$1" 2>&1 | grep -c '"GET /api/health' || true
}

both_replicas_logged() {
  through_caddy /api/health >/dev/null
  (($(request_lines "$PREFIX-orc-1") > 0 && $(request_lines "$PREFIX-orc-2") > 0))
}

replica_healthy() { # replica_healthy ADDRESS: that replica's own /api/health says healthy
  # As Caddy asks: Host localhost, and HTTPS said by the proxy header.
  curl -fsS --max-time 5 -H 'Host: localhost' -H 'X-Forwarded-Proto: https' \
    "http://$1:$ORC_PORT/api/health" | python3 -c 'import json, sys
sys.exit(json.load(sys.stdin).get("status") != "healthy")'
}

# From `podman run` to both replicas healthy (worker alive), on a migrated database. Asked of
# the replicas directly: Caddy skips an upstream that refused a request for 30 s.
web_start_seconds() {
  local start=$SECONDS
  start_app "$IMAGE" >/dev/null
  wait_for 120 "replica 1 to be healthy" replica_healthy 127.0.0.1
  wait_for 120 "replica 2 to be healthy" replica_healthy 127.0.0.2
  START_SECONDS=$((SECONDS - start))
}

# --- the upgrade drill's previous version -----------------------------------------------------

# The version before the code under test: HEAD~1 when the tree is clean (CI tests a commit, so
# that is the commit it replaces), HEAD when there are uncommitted changes (they are what is
# tested). Fixed for a given commit, whatever is committed later; UPGRADE_FROM=<rev> overrides.
previous_revision() {
  if [[ -n "${UPGRADE_FROM:-}" ]]; then
    git -C "$ROOT" rev-parse --verify "$UPGRADE_FROM^{commit}"
  elif [[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]]; then
    git -C "$ROOT" rev-parse --verify HEAD~1
  else
    git -C "$ROOT" rev-parse --verify HEAD
  fi
}

# 1 when the code under test has migrations the previous version lacks, else 0.
new_migrations() {
  local name
  for name in "$ROOT"/*/migrations/0*.py; do
      [[ -e "$WORK/previous/${name#"$ROOT"/}" ]] || { echo 1; return; }
  done
  echo 0
}

build_previous_image() {
  local revision source="$WORK/previous"
  revision="$(previous_revision)" || fail "no previous commit to upgrade from (a shallow clone?)"
  log "upgrade from $(git -C "$ROOT" log -1 --format='%h %s' "$revision")"
  mkdir -p "$source"
  git -C "$ROOT" archive "$revision" | tar -x -C "$source"
  # A version from before the base image became a build argument cannot be built without a
  # registry: its code is built with this Containerfile (and entrypoint) instead.
  if ! grep -q '^ARG BASE_IMAGE' "$source/containers/control-plane/Containerfile" 2>/dev/null; then
    log "its Containerfile has no BASE_IMAGE argument: building its code with this one"
    mkdir -p "$source/containers"
    rm -rf "$source/containers/control-plane"
    cp -r "$ROOT/containers/control-plane" "$source/containers/control-plane"
  fi
  build_image "$OLD_IMAGE" "$source"
}

# --- main -------------------------------------------------------------------------------------

main() {
  require_tools
  cd "$ROOT"

  stage "base image ($BASE_IMAGE)"
  containers/base-image.sh "$BASE_IMAGE"
  stage_done

  stage "build $IMAGE"
  build_image "$IMAGE" "$ROOT"
  IMAGE_SIZE="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  log "image size: $((IMAGE_SIZE / 1000000)) MB"
  # The issue's budget (uncompressed, as `podman images` counts it).
  ((IMAGE_SIZE < 350000000)) || fail "the image is $((IMAGE_SIZE / 1000000)) MB, over 350 MB"
  stage_done

  stage "non-root"
  check_non_root
  stage_done

  stage "previous version's image (upgrade drill)"
  build_previous_image
  stage_done

  stage "Caddy image and services"
  build_caddy_image
  start_services
  write_env_file
  run_caddy
  run_helpers
  stage_done

  stage "previous image: two orc replicas and a worker started together, empty database"
  start_app "$OLD_IMAGE"
  wait_for 900 "/api/health through Caddy to say healthy" health_is healthy
  check_migrated_once "$DB" 1
  stage_done

  stage "previous image: a signed purchase through Caddy reaches active"
  buy_and_wait drill1
  local drill_pdfs
  drill_pdfs="$(documents_of drill1)"
  log "drill1 PDFs: $drill_pdfs"
  stage_done

  stage "upgrade: this image replaces it (replicas and worker together)"
  stop_app
  start_app "$IMAGE"
  wait_for 600 "this image to be healthy after the upgrade" health_is healthy
  # One container applied the new migrations, or none when the schema did not change.
  check_migrated_once "$DB" "$(new_migrations)"
  [[ "$(documents_of drill1)" == "$drill_pdfs" ]] || fail "drill1's PDFs changed in the upgrade"
  order_active "$(order_of drill1)" || fail "drill1 is not active after the upgrade"
  check_health_fields
  podman healthcheck run "$PREFIX-orc-1" || fail "the image's HEALTHCHECK failed in $PREFIX-orc-1"
  log "podman healthcheck run $PREFIX-orc-1: healthy"
  stage_done

  stage "request lines in podman logs"
  # Caddy skips a replica for 30 s after one refused a request (while it was starting): ask
  # through Caddy until each replica's log shows a request line.
  wait_for 90 "a request line in the podman logs of both replicas" both_replicas_logged
  local name
  for name in "$PREFIX-orc-1" "$PREFIX-orc-2"; do
    log "podman logs $name: $(request_lines "$name") request lines for /api/health"
  done
  stage_done

  stage "this image: a signed purchase through Caddy reaches active"
  buy_and_wait stack1
  local pdfs
  pdfs="$(documents_of stack1)"
  log "stack1 PDFs: $pdfs"
  stage_done

  stage "provider-health in the image"
  podman run --rm --network host "${LIMITS[@]}" --env-file "$ENV_FILE" --health-cmd none \
    -v "$WORK/caddy-root.crt:/run/caddy-root.crt:ro" "$IMAGE" provider-health \
    || fail "provider-health exited with $?"
  stage_done

  stage "containers recreated: Beacons and PDFs kept; start-up time"
  stop_app
  web_start_seconds
  log "both replicas healthy ${START_SECONDS}s after podman run (migrated database)"
  wait_for 120 "the recreated stack to be healthy through Caddy" health_is healthy
  [[ "$(documents_of stack1)" == "$pdfs" ]] || fail "stack1's PDFs changed after recreation"
  [[ "$(documents_of drill1)" == "$drill_pdfs" ]] || fail "drill1's PDFs changed after recreation"
  order_active "$(order_of stack1)" || fail "stack1 is no longer active after recreation"
  order_active "$(order_of drill1)" || fail "drill1 is no longer active after recreation"
  stage_done

  printf '\n=== summary\n' >&2
  printf '%s\n' "${SUMMARY[@]}" >&2
  printf 'image size: %s MB; healthy %ss after start (migrated database); total %ss\n' \
    "$((IMAGE_SIZE / 1000000))" "$START_SECONDS" "$((SECONDS - T0))" >&2
  log "all checks passed"
}

main "$@"
