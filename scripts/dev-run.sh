#!/usr/bin/env bash
# Development run (`make run`): migrate, load the catalogue, then gunicorn and the django-q2
# worker together in the foreground. Ctrl-C stops both; so does either one exiting.
# BIND (default 127.0.0.1:8001) sets gunicorn's address; the rest comes from the environment
# and from .env when present (read by Django's settings and gunicorn.conf.py; the environment
# wins). gunicorn takes everything else from gunicorn.conf.py, as in the container.
#
# Stopping: each of the two runs in its own process group (job control), so Ctrl-C reaches this
# script only. It sends SIGTERM to gunicorn and qcluster, waits up to DEV_RUN_STOP_SECONDS
# (default 10) for both groups to be gone, then SIGKILLs whatever is left of either group
# (qcluster forks its workers, which would otherwise outlive it).
set -euo pipefail
set -m

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
BIND="${BIND:-127.0.0.1:8001}"
URL="http://${BIND/0.0.0.0/127.0.0.1}"
STOP_SECONDS="${DEV_RUN_STOP_SECONDS:-10}"
export WOPR_BIND="$BIND"
# A development server stops quickly; open event streams are cut after 5 s.
export GUNICORN_GRACEFUL_TIMEOUT="${GUNICORN_GRACEFUL_TIMEOUT:-5}"

"$PY" manage.py migrate --noinput
# The throttles' and event streams' shared counters (the database cache without REDIS_URL).
"$PY" manage.py createcachetable
"$PY" manage.py load_catalog

if [[ -f .env && -z "${WOPR_ENV_FILE+set}" ]]; then
  echo "Reading .env (variables set in the environment win over it)."
elif [[ -z "${DATABASE_URL:-}${PROVIDERS:-}${DNS_BACKEND:-}${SMTP_HOST:-}" ]]; then
  cat <<'BANNER'

==========================================================================================
 Running on the EMBEDDED DEFAULTS (no DATABASE_URL, PROVIDERS, DNS_BACKEND or SMTP_HOST):
   database   SQLite at ./db.sqlite3
   queue      django-q2 ORM broker (same database)
   providers  fake (no real servers are created)
   DNS        fake (no records are published)
   e-mail     console (messages are printed below, not sent)
 Copy .env.example to .env and set real values to change any of these.
==========================================================================================
BANNER
fi

# Print the webhook signing secret only when it is the generated development one: a secret that
# came from the environment is never shown.
echo
if [[ -z "${STRIPE_TEST_WEBHOOK_SECRET:-}" ]]; then
  webhook_secret="$("$PY" manage.py shell -v 0 -c \
    'from django.conf import settings; print(settings.STRIPE_TEST_WEBHOOK_SECRET)')"
  if [[ -n "$webhook_secret" ]]; then
    echo "Development Stripe webhook secret (STRIPE_TEST_WEBHOOK_SECRET, kept in var/):"
    echo "  $webhook_secret"
  fi
else
  echo "Stripe webhook secret: STRIPE_TEST_WEBHOOK_SECRET from the environment (not shown)."
fi
cat <<EOF

Simulate a purchase (signed webhook into this server):
  $PY manage.py simulate_purchase --bundle starter --tier t1 --email a@example.com --beacon-name demo1 --url $URL

Admin: create a login once with
  $PY manage.py createsuperuser
then open $URL/admin/

Health: curl -s $URL/api/health

Starting gunicorn on $BIND and the django-q2 worker (qcluster); Ctrl-C stops both.

EOF

pids=()

# Whether any process of the two groups is left (a group is named by its leader's pid).
# shellcheck disable=SC2317  # only stop() calls it
groups_alive() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 -- "-$pid" 2>/dev/null; then
      return 0
    fi
  done
  return 1
}

# shellcheck disable=SC2317  # only the traps call it
stop() {
  trap - INT TERM EXIT
  local pid deadline=$((SECONDS + STOP_SECONDS))
  # The leaders first: gunicorn's master and qcluster each stop their own children in order.
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  while groups_alive && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if groups_alive; then
    echo "dev-run: still running after ${STOP_SECONDS}s; killing what is left." >&2
    for pid in "${pids[@]}"; do
      kill -KILL -- "-$pid" 2>/dev/null || true
    done
  fi
  wait 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

.venv/bin/gunicorn -c gunicorn.conf.py wopr.wsgi:application &
pids+=("$!")
"$PY" manage.py qcluster &
pids+=("$!")

# Whichever exits first ends the run; the EXIT trap stops the other.
status=0
wait -n || status=$?
echo "dev-run: a process exited (status $status); stopping the other." >&2
exit "$status"
