#!/usr/bin/env bash
# Deploy (or update) the WOPR control plane on this host with Podman Quadlet units.
#
#   sudo ./containers/deploy.sh [--env-file FILE] [--no-pull] [--dry-run]
#
# Idempotent: run it again after `git pull` or for a new image; it changes only what differs
# and restarts the services only when a unit, the environment file or the image changed.
# Every check runs before anything is changed:
#   - root, podman >= 4.6 with its Quadlet generator, systemctl;
#   - the environment file (FILE, else the installed /etc/wopr/orchestrator.env, else ./.env)
#     sets DATABASE_URL and SECRET_KEY (names are reported, values never);
#   - Quadlet accepts the units (`quadlet -dryrun`);
#   - the image (pulled first unless --no-pull) accepts the environment: its entrypoint's
#     configuration check, the same one every container start runs.
# Then: /etc/wopr/orchestrator.env (mode 600), the .container units in
# /etc/containers/systemd/ (Quadlet reads only .container, .volume, .network and .kube files
# there), the timer in /etc/systemd/system/ (where systemd reads ordinary units), daemon-reload,
# wopr-orc and wopr-worker (re)started, the provider-health timer enabled, and a wait until
# wopr-orc reports healthy.
#
# For tests: WOPR_DEPLOY_ROOT prefixes every system path, QUADLET names the generator binary.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${WOPR_DEPLOY_ROOT:-}"
UNIT_SOURCE="$HERE/systemd"
UNIT_DIR="$ROOT/etc/containers/systemd"
SYSTEMD_DIR="$ROOT/etc/systemd/system"
ENV_DIR="$ROOT/etc/wopr"
ENV_TARGET="$ENV_DIR/orchestrator.env"
QUADLET="${QUADLET:-/usr/libexec/podman/quadlet}"
IMAGE="ghcr.io/woprsystems/control-plane:latest"
# Quadlet units (translated into services at daemon-reload) and ordinary systemd units.
UNITS=(wopr-orc.container wopr-worker.container wopr-provider-health.container)
TIMER=wopr-provider-health.timer
SERVICES=(wopr-orc.service wopr-worker.service)
REQUIRED=(DATABASE_URL SECRET_KEY)
HEALTH_WAIT_SECONDS="${HEALTH_WAIT_SECONDS:-300}"

env_source=""
pull=true
dry_run=false
changed=false

say() { printf 'deploy: %s\n' "$*"; }
fail() {
  printf 'deploy: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo pipefail/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --env-file)
        [[ $# -ge 2 ]] || fail "--env-file needs a file"
        env_source="$2"
        shift 2
        ;;
      --no-pull) pull=false; shift ;;
      --dry-run) dry_run=true; shift ;;
      -h | --help) usage 0 ;;
      *) printf 'deploy: unknown option %s\n' "$1" >&2; usage 2 ;;
    esac
  done
}

# --- checks (nothing is changed here) ------------------------------------------------------------

check_tools() {
  if [[ -z "$ROOT" && "$(id -u)" -ne 0 ]]; then
    fail "run as root (sudo): the units go to /etc/containers/systemd and /etc/systemd/system"
  fi
  command -v podman >/dev/null || fail "podman is not installed"
  command -v systemctl >/dev/null || fail "systemctl not found: Quadlet needs systemd"
  local version major minor
  version="$(podman version --format '{{.Client.Version}}' 2>/dev/null || true)"
  [[ "$version" =~ ^([0-9]+)\.([0-9]+) ]] || fail "cannot read the podman version"
  major="${BASH_REMATCH[1]}"
  minor="${BASH_REMATCH[2]}"
  # Quadlet came with 4.4 and gained keys release by release; these units target 4.6 and newer.
  if ((major < 4 || (major == 4 && minor < 6))); then
    fail "podman $version is too old: these Quadlet units need 4.6 or newer"
  fi
  [[ -x "$QUADLET" ]] || fail "the Quadlet generator $QUADLET is missing (podman >= 4.6)"
  say "podman $version with Quadlet"
}

choose_env_file() {
  if [[ -z "$env_source" ]]; then
    if [[ -f "$ENV_TARGET" ]]; then
      env_source="$ENV_TARGET"
    elif [[ -f ./.env ]]; then
      env_source="./.env"
    else
      fail "no environment file: pass --env-file FILE, or create $ENV_TARGET or ./.env from .env.example"
    fi
  fi
  [[ -f "$env_source" ]] || fail "environment file $env_source not found"
}

# Names only, never values: a variable counts as set when its line has something after `=`.
check_env_file() {
  local name missing=()
  for name in "${REQUIRED[@]}"; do
    grep -Eq "^[[:space:]]*${name}=[^[:space:]]" "$env_source" || missing+=("$name")
  done
  if ((${#missing[@]})); then
    fail "$env_source does not set: ${missing[*]}"
  fi
  say "environment file $env_source sets ${REQUIRED[*]}"
}

check_units() {
  local unit staging generated
  for unit in "${UNITS[@]}" "$TIMER"; do
    [[ -f "$UNIT_SOURCE/$unit" ]] || fail "missing $UNIT_SOURCE/$unit"
  done
  staging="$(mktemp -d)"
  cp "${UNITS[@]/#/$UNIT_SOURCE/}" "$staging/"
  if ! generated="$(QUADLET_UNIT_DIRS="$staging" "$QUADLET" -dryrun 2>&1)"; then
    rm -rf "$staging"
    printf '%s\n' "$generated" >&2
    fail "Quadlet refused the units"
  fi
  rm -rf "$staging"
  for unit in "${SERVICES[@]}" wopr-provider-health.service; do
    grep -q "$unit" <<<"$generated" || fail "Quadlet generated no $unit"
  done
  say "Quadlet accepts the units"
}

image_id() { podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true; }

check_image() {
  local before after
  before="$(image_id)"
  if $dry_run; then
    if [[ -z "$before" ]]; then
      say "would pull $IMAGE (not present: the configuration check needs it)"
      return
    fi
  elif $pull; then
    say "pulling $IMAGE"
    podman pull --quiet "$IMAGE" >/dev/null || fail "cannot pull $IMAGE"
  fi
  after="$(image_id)"
  [[ -n "$after" ]] || fail "image $IMAGE not present (pull it, or build and tag it)"
  if [[ "$before" != "$after" ]]; then
    say "image updated"
    changed=true
  fi
  # The entrypoint names what is missing or unsafe, then runs `true`.
  if ! podman run --rm --env-file "$env_source" "$IMAGE" true; then
    fail "the image refuses this configuration (see the names above)"
  fi
  say "the image accepts the configuration"
}

# --- changes -------------------------------------------------------------------------------------

install_file() { # source target mode
  if [[ -f "$2" ]] && cmp -s "$1" "$2"; then
    return 1
  fi
  if $dry_run; then
    say "would install $2"
  else
    install -D -m "$3" "$1" "$2"
    say "installed $2"
  fi
  return 0
}

install_env_file() {
  if [[ "$(realpath "$env_source")" == "$(realpath -m "$ENV_TARGET")" ]]; then
    $dry_run || chmod 0600 "$ENV_TARGET"
    return
  fi
  $dry_run || install -d -m 0750 "$ENV_DIR"
  if install_file "$env_source" "$ENV_TARGET" 0600; then
    changed=true
  fi
}

install_units() {
  local unit units_changed=false
  for unit in "${UNITS[@]}"; do
    if install_file "$UNIT_SOURCE/$unit" "$UNIT_DIR/$unit" 0644; then
      units_changed=true
    fi
  done
  if install_file "$UNIT_SOURCE/$TIMER" "$SYSTEMD_DIR/$TIMER" 0644; then
    units_changed=true
  fi
  # Earlier versions put the timer beside the quadlets, where systemd never saw it.
  if [[ -f "$UNIT_DIR/$TIMER" ]]; then
    if $dry_run; then
      say "would remove $UNIT_DIR/$TIMER (systemd never read it there)"
    else
      rm -f "$UNIT_DIR/$TIMER"
      say "removed $UNIT_DIR/$TIMER (systemd never read it there)"
    fi
    units_changed=true
  fi
  if $units_changed; then
    changed=true
    $dry_run || systemctl daemon-reload
  fi
}

start_services() {
  if $dry_run; then
    say "would $($changed && echo restart || echo start) ${SERVICES[*]} and enable $TIMER"
    return
  fi
  if $changed; then
    say "restarting ${SERVICES[*]}"
    systemctl restart "${SERVICES[@]}"
  else
    say "nothing changed; making sure ${SERVICES[*]} run"
    systemctl start "${SERVICES[@]}"
  fi
  # Generated units cannot be enabled; their [Install] section starts them at boot. The timer
  # is an ordinary unit.
  systemctl enable --now "$TIMER" >/dev/null
}

wait_healthy() {
  $dry_run && return
  local waited=0
  until podman healthcheck run wopr-orc >/dev/null 2>&1; do
    if ((waited >= HEALTH_WAIT_SECONDS)); then
      fail "wopr-orc is not healthy after ${HEALTH_WAIT_SECONDS} s: journalctl -u wopr-orc"
    fi
    sleep 5
    waited=$((waited + 5))
  done
  say "wopr-orc is healthy (GET /api/health answers 200)"
}

main() {
  parse_args "$@"
  check_tools
  choose_env_file
  check_env_file
  check_units
  check_image
  install_env_file
  install_units
  start_services
  wait_healthy
  say "done"
}

main "$@"
