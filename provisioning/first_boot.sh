#!/usr/bin/env bash
# WOPR first boot (written by cloud-init to /usr/local/lib/wopr/first-boot, run from runcmd).
#
# Reads /etc/wopr/bootstrap.json (README, "Beacon installer contract"), reports
# `booted`, turns the firewall on (22, 80 and 443/tcp only), downloads the installer release, refuses it unless its SHA-256 is the one the control
# plane gave, unpacks it into /opt/wopr/installer and runs its `install`; the installer reports
# its own stages. Any failing command reports `failed` with the tail of the install log. A
# second run (a reboot, cloud-init re-run) does nothing once the done marker exists.
# Needs only bash, coreutils, curl, tar, gzip and python3.
set -Eeuo pipefail
umask 022

# WOPR_FIRST_BOOT_ROOT stands for / in the tests that run this script outside a server.
ROOT="${WOPR_FIRST_BOOT_ROOT:-}"
BOOTSTRAP="$ROOT/etc/wopr/bootstrap.json"
LOG_DIR="$ROOT/var/log/wopr"
LOG="$LOG_DIR/install.log"
STATE_DIR="$ROOT/var/lib/wopr"
DONE="$STATE_DIR/first-boot.done"
INSTALLER_DIR="$ROOT/opt/wopr/installer"
FAILED_SENT=0

if [[ -e "$DONE" ]]; then
  echo "first-boot: $DONE exists; nothing to do" >&2
  exit 0
fi
mkdir -p "$LOG_DIR" "$STATE_DIR"
echo "first-boot: logging to $LOG" >&2
exec >>"$LOG" 2>&1
log() { printf '%s first-boot: %s\n' "$(date -u +%FT%TZ)" "$*"; }

# One field of bootstrap.json per line, in a fixed order (python3 is on every Debian cloud image:
# cloud-init runs on it). A value holding a line break is refused: it would shift the fields.
read_bootstrap() {
  python3 - "$BOOTSTRAP" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
inst = doc.get("installer") or {}
values = [doc["callback_url"], doc["callback_token"], inst.get("version", ""),
          inst.get("sha256", ""), inst.get("url", ""), "1" if inst.get("bearer") else "0"]
if any("\n" in str(v) for v in values):
    sys.exit("bootstrap.json: a value holds a line break")
print("\n".join(str(v) for v in values))
PY
}

# The Authorization header as curl reads it from a file (`-H @file`): the token never appears
# on a command line, where any local user could read it from /proc.
auth_header() { printf 'Authorization: Bearer %s\n' "$CALLBACK_TOKEN"; }

# callback STATUS [MESSAGE] [with-log-tail]: POST one stage; retried on connection errors, 429
# and 5xx only (a 4xx answer will not change).
callback() {
  local body
  body="$(python3 - "$LOG" "$@" <<'PY'
import json, sys
log, status, message, tail = (sys.argv[1:] + ["", ""])[:4]
body = {"status": status}
if message:
    body["message"] = message[:1000]
if tail:
    with open(log, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 4000))
        body["log_tail"] = handle.read().decode("utf-8", "replace")
print(json.dumps(body))
PY
)"
  curl --fail --silent --show-error --max-time 30 --retry 6 --retry-connrefused \
    -H @<(auth_header) -H 'Content-Type: application/json' --data-binary @- \
    -o /dev/null "$CALLBACK_URL" <<<"$body"
}

fail() {
  trap - ERR
  if ((FAILED_SENT == 0)); then
    FAILED_SENT=1
    log "FAILED: $1"
    callback failed "$1" with-log-tail || log "could not report the failure"
  fi
  exit 1
}

# Any command that fails and is not handled below. In a subshell (a command substitution) only
# exit: the shell that ran it fails in turn and reports once.
on_error() {
  local status=$? command=$BASH_COMMAND
  if [[ "$BASHPID" != "$$" ]]; then exit "$status"; fi
  fail "first boot: \`$command\` exited with status $status"
}

mapfile -t FIELDS < <(read_bootstrap)
((${#FIELDS[@]} == 6)) || { log "cannot read $BOOTSTRAP"; exit 1; }
CALLBACK_URL="${FIELDS[0]}"
CALLBACK_TOKEN="${FIELDS[1]}"
VERSION="${FIELDS[2]}"
SHA256="${FIELDS[3],,}"
INSTALLER_URL="${FIELDS[4]}"
BEARER="${FIELDS[5]}"
trap on_error ERR

log "booted"
callback booted || log "could not report booted; going on"

# The machine is made safe before anything is installed, and a failure here is reported like
# any other: cloud-init's packages step gave ufw and unattended-upgrades (a failed apt run there
# would otherwise go unnoticed); the firewall lets in SSH, HTTP and HTTPS only.
secure_machine() {
  command -v ufw >/dev/null || fail "ufw is not installed (cloud-init's packages step failed)"
  dpkg-query -W -f='${Status}' unattended-upgrades 2>/dev/null | grep -q 'ok installed' \
    || fail "unattended-upgrades is not installed (cloud-init's packages step failed)"
  ufw default deny incoming
  ufw default allow outgoing
  local port
  for port in 22/tcp 80/tcp 443/tcp; do ufw allow "$port"; done
  ufw --force enable
  ufw status | grep -q '^Status: active' || fail "the firewall is not active"
  log "firewall active: 22, 80 and 443/tcp open"
}
secure_machine

[[ -n "$VERSION" && -n "$SHA256" && -n "$INSTALLER_URL" ]] || fail "no installer configured"
[[ "$VERSION" =~ ^[A-Za-z0-9._+-]+$ ]] || fail "installer version '$VERSION' is not a plain name"

TARBALL="$STATE_DIR/installer-$VERSION.tar.gz"
log "downloading installer $VERSION"
download=(curl --fail --silent --show-error --max-time 600 --retry 6 --retry-connrefused
  -o "$TARBALL.part")
if ((BEARER == 1)); then
  # Only the control plane gets the token, and it answers itself: no redirect is followed.
  "${download[@]}" -H @<(auth_header) "$INSTALLER_URL" \
    || fail "could not download the installer from $INSTALLER_URL (curl exit status $?)"
else
  # A release's own URL (often a redirect to a CDN) never gets the token.
  "${download[@]}" --location "$INSTALLER_URL" \
    || fail "could not download the installer from $INSTALLER_URL (curl exit status $?)"
fi
mv "$TARBALL.part" "$TARBALL"

actual="$(sha256sum "$TARBALL" | cut -d ' ' -f 1)"
if [[ "$actual" != "$SHA256" ]]; then
  fail "installer checksum mismatch: expected $SHA256, got $actual"
fi
log "installer $VERSION verified (sha256 $actual)"

rm -rf "$INSTALLER_DIR"
mkdir -p "$INSTALLER_DIR"
tar -xzf "$TARBALL" -C "$INSTALLER_DIR" --no-same-owner
log "running $INSTALLER_DIR/install"
WOPR_BOOTSTRAP="$BOOTSTRAP" "$INSTALLER_DIR/install" \
  || fail "the installer exited with status $?"

touch "$DONE"
log "done"
