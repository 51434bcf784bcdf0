#!/usr/bin/env bash
# Make the local Debian base image the Containerfile can build on where no registry is reachable.
#
#   containers/base-image.sh [TAG]     (default TAG: localhost/wopr-debian:bookworm)
#
# debootstrap --variant=minbase bookworm from the Debian mirror apt already uses (first URI of
# the first Debian source in /etc/apt/sources.list*, or DEBIAN_MIRROR), then
# `tar -C DIR -c . | podman import - TAG`. Cached by tag: when TAG exists nothing is done, so a
# second run costs nothing. Needs root (debootstrap) and podman; prints the tag on stdout.
set -euo pipefail

TAG="${1:-localhost/wopr-debian:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"

log() { printf 'base-image: %s\n' "$*" >&2; }

# The mirror apt uses, so the base comes from where this machine's packages come from.
debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    printf '%s\n' "$DEBIAN_MIRROR"
    return
  fi
  local uri
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
      2>/dev/null \
    | grep -Eo '(URIs: *|^deb +(\[[^]]*\] +)?)https?://[^ ]*/debian/?( |$)' \
    | grep -Eo 'https?://[^ ]*' | head -n 1 || true)"
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

main() {
  if podman image exists "$TAG"; then
    log "$TAG exists (cached); nothing to do"
    printf '%s\n' "$TAG"
    return
  fi
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
  local mirror root
  mirror="$(debian_mirror)"
  root="$(mktemp -d /var/tmp/wopr-debootstrap.XXXXXX)"
  # The root file system is big and owned by root: always removed, also on failure (the trap
  # runs after main has returned, so it gets the path itself, not the local variable).
  # shellcheck disable=SC2064
  trap "rm -rf '$root'" EXIT
  log "debootstrap --variant=minbase $SUITE from $mirror"
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >&2
  # Security updates and the same mirror inside the image, so `apt-get install` in a build works.
  printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$SUITE" "$mirror" "$SUITE" \
    >"$root/etc/apt/sources.list"
  # As Debian's own slim images: no manuals, documentation or translations (the copyright notices
  # stay), for what debootstrap installed and for whatever a build installs later.
  cat >"$root/etc/dpkg/dpkg.cfg.d/wopr-slim" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
CFG
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  # Downloaded packages would stay in every image built on this one: apt keeps none.
  printf 'APT::Keep-Downloaded-Packages "false";\n' >"$root/etc/apt/apt.conf.d/wopr-no-cache"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
  tar --numeric-owner -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$TAG" >&2
  log "imported $TAG"
  printf '%s\n' "$TAG"
}

main "$@"
