#!/usr/bin/env bash
# Entrypoint of the WOPR control-plane image.
#
#   entrypoint.sh web              gunicorn on 0.0.0.0:8001 (the default command), configured
#                                  by gunicorn.conf.py as `make run` is
#   entrypoint.sh worker           the django-q2 cluster (manage.py qcluster)
#   entrypoint.sh provider-health  one provider health sweep (manage.py provider_health), then exit
#   entrypoint.sh migrate          apply the migrations (under the lock), then exit
#   entrypoint.sh installer-register ARG...
#                                  register a Beacon installer release (manage.py
#                                  installer_register), after migrating: the way to give a new
#                                  deployment its first installer, which web and worker need
#   entrypoint.sh COMMAND [ARG...] any other command, after the configuration check
#
# Every role first checks the configuration: the variables it needs are named when missing,
# never shown. web and worker then wait for the database (WAIT_FOR_DB_TIMEOUT seconds, default
# 60) and apply the migrations under a PostgreSQL advisory lock, so replicas starting together
# migrate once (WOPR_MIGRATE=false skips that). provider-health waits for the database only.
# web and worker `exec` their server, which so becomes PID 1 and gets the container's SIGTERM:
# gunicorn stops within GUNICORN_GRACEFUL_TIMEOUT, qcluster once its running tasks end (at most
# the task timeout); the units give both longer than that before SIGKILL (StopTimeout=).
# Exit status 78 (EX_CONFIG) means the configuration is wrong: the units do not restart on it.
set -euo pipefail

APP_DIR="${APP_DIR:-/app}"
PYTHON="${PYTHON:-python}"
EX_CONFIG=78

log() { printf 'entrypoint: %s\n' "$*" >&2; }

# Names only: a value, even a part of one, never reaches the log.
require_variables() {
  local name missing=0
  for name in "$@"; do
    if [[ -z "${!name:-}" ]]; then
      log "missing: $name"
      missing=1
    fi
  done
  if ((missing)); then
    log "set the variables above (see .env.example); refusing to start"
    exit "$EX_CONFIG"
  fi
}

# Django's own checks for the rest (Stripe, providers, DNS, e-mail per configuration): with
# DEBUG off they name each missing secret or fake backend and stop the start.
check_configuration() {
  require_variables DATABASE_URL SECRET_KEY
  if ! "$PYTHON" manage.py check --tag wopr --fail-level ERROR >/dev/null; then
    log "configuration check failed (see above); refusing to start"
    exit "$EX_CONFIG"
  fi
}

# Once the database answers (and is migrated), the checks again: whether an installer release
# is current is only known now (installers.checks; before, it is a warning).
check_installer() {
  if ! "$PYTHON" manage.py check --tag wopr --fail-level ERROR >/dev/null; then
    log "configuration check failed (see above); refusing to start"
    exit "$EX_CONFIG"
  fi
}

wait_for_database() {
  "$PYTHON" manage.py wait_for_db --timeout "${WAIT_FOR_DB_TIMEOUT:-60}"
}

migrate() {
  if [[ "${WOPR_MIGRATE:-true}" == "false" ]]; then
    log "WOPR_MIGRATE=false: not applying migrations"
    return
  fi
  "$PYTHON" manage.py migrate_locked --noinput
}

main() {
  cd "$APP_DIR"
  # `podman run IMAGE /entrypoint.sh echo OK` hands us our own path first: skip it.
  if [[ "${1:-}" == "/entrypoint.sh" || "${1:-}" == "$0" ]]; then
    shift
  fi
  local role="${1:-web}"
  if [[ $# -gt 0 ]]; then
    shift
  fi
  if [[ "$role" == "installer-register" ]]; then
    # Before the full check: it refuses a start without an installer, which this registers.
    require_variables DATABASE_URL SECRET_KEY
    wait_for_database
    migrate
    exec "$PYTHON" manage.py installer_register "$@"
  fi
  check_configuration
  case "$role" in
    web)
      wait_for_database
      migrate
      check_installer
      # gunicorn.conf.py is the one description of the server (threads, timeouts, the env
      # knobs WEB_CONCURRENCY, WEB_THREADS, GUNICORN_TIMEOUT); only the address differs here.
      export WOPR_BIND="${WOPR_BIND:-0.0.0.0:8001}"
      exec gunicorn -c "$APP_DIR/gunicorn.conf.py" wopr.wsgi:application "$@"
      ;;
    worker)
      wait_for_database
      migrate
      check_installer
      exec "$PYTHON" manage.py qcluster "$@"
      ;;
    provider-health)
      wait_for_database
      exec "$PYTHON" manage.py provider_health "$@"
      ;;
    migrate)
      wait_for_database
      WOPR_MIGRATE=true migrate
      ;;
    *)
      exec "$role" "$@"
      ;;
  esac
}

main "$@"
