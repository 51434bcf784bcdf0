#!/usr/bin/env bash
# The image's Python install steps, run by the Containerfile and replayed in a clean virtual
# environment by tests/test_containers.py, so what CI checks is what the image runs.
#
#   install.sh requirements APP_DIR VENV   create VENV, install the pins of APP_DIR/pyproject.toml
#   install.sh static APP_DIR VENV         collectstatic into STATIC_ROOT (default APP_DIR/staticfiles)
set -euo pipefail

usage() {
  echo "usage: install.sh requirements|static APP_DIR VENV" >&2
  exit 2
}

[[ $# -eq 3 ]] || usage
step=$1
app_dir=$2
venv=$3

case "$step" in
  requirements)
    python3 -m venv "$venv"
    requirements="$(mktemp)"
    # The exact pins of [project.dependencies]; the project itself runs from APP_DIR.
    "$venv/bin/python" - "$app_dir/pyproject.toml" >"$requirements" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    print("\n".join(tomllib.load(handle)["project"]["dependencies"]))
PY
    "$venv/bin/pip" install --requirement "$requirements"
    rm -f "$requirements"
    # The service speaks English only (LANGUAGE_CODE en-us, no LocaleMiddleware): the other
    # languages' message catalogues of Django and its apps are about 30 MB of the image.
    find "$venv/lib" -type d -name locale -prune | while read -r catalogues; do
      find "$catalogues" -mindepth 1 -maxdepth 1 -type d ! -name en ! -name 'en_*' \
        ! -name __pycache__ -exec rm -rf {} +
    done
    ;;
  static)
    cd "$app_dir"
    # No secret and no database at build time: DEBUG off so no development secret is generated
    # into the image, a throwaway key (collectstatic signs nothing).
    env DEBUG=false SECRET_KEY=collectstatic-only-not-a-secret \
      STATIC_ROOT="${STATIC_ROOT:-$app_dir/staticfiles}" \
      "$venv/bin/python" manage.py collectstatic --noinput --verbosity 1
    ;;
  *)
    usage
    ;;
esac
