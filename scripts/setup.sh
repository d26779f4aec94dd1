#!/usr/bin/env bash
# Idempotent set-up of everything jointssl needs on a fresh Debian/Ubuntu machine:
#   1. system packages, when root: iproute2 (the loopback-only namespace) always; for the tests also
#      PostgreSQL 15 + PostGIS (the platform's STAC API) and headless Chromium (tests that check the
#      MLflow UI and other web pages as rendered);
#   2. a Python 3.11 virtual environment with the pinned, tested dependency set;
#   3. jointssl itself, editable.
# Re-running is cheap: each step is skipped when its stamp matches. The venv lives at $JOINTSSL_VENV
# (default .venv). --demo installs only what 'make demo' needs: no PostgreSQL, no Chromium, and of the
# pinned set only jointssl's own dependencies (not the platform's services nor the test tools), at the
# lock's versions; a later full set-up adds the rest. --no-system skips step 1.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${JOINTSSL_VENV:-.venv}"
LOCK="requirements/lock-py311-linux.txt"
PYTHON="${JOINTSSL_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
SYSTEM=1
SET=full
PACKAGES=(postgresql-15 postgresql-15-postgis-3 postgresql-contrib iproute2 chromium)
for arg in "$@"; do
  case "$arg" in
    --no-system) SYSTEM=0 ;;
    --demo) PACKAGES=(iproute2); SET=demo ;;
    *) echo "[setup] unknown option $arg (use --demo or --no-system)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages (Debian names). Only what is missing, only as root.
if [ "$SYSTEM" = 1 ]; then
  missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing system packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      say "warning: missing system packages ${missing[*]} (needed by 'jointssl platform up' and the browser tests); install them with your package manager"
    fi
  fi
fi

# 2. Python environment from the lock file.
"$PYTHON" - <<'PY' || { echo "[setup] jointssl needs Python 3.10-3.12 (pinned set is for 3.11)"; exit 1; }
import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)
PY
[ -x "$VENV/bin/python" ] || { say "creating virtual environment $VENV"; "$PYTHON" -m venv "$VENV"; }
stamp="$VENV/.jointssl-lock.sha256"
want="$(cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
# The stamp is the lock's hash and the set installed ("<hash> demo" or "<hash> full"; a bare hash, from
# earlier versions of this script, is the full set). A full set serves the demo too.
[ "$have" = "$want" ] && have="$want full"
if [ "$have" != "$want full" ] && { [ "$SET" = full ] || [ "$have" != "$want demo" ]; }; then
  say "installing the pinned $SET set into $VENV (first time: ~2-3 minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip
  if [ "$SET" = demo ]; then
    # jointssl's own dependencies only, each at the lock's version (-c): ~45 packages fewer than the full set.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$LOCK" -e .
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$LOCK"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  fi
  echo "$want $SET" > "$stamp"
else
  # The source tree may have moved (a fresh clone re-using a shared venv): re-point the editable install.
  # -I: the check must not find ./jointssl through the current directory, only the installed one.
  "$VENV/bin/python" -I -c "import jointssl, pathlib, sys; sys.exit(0 if pathlib.Path(jointssl.__file__).resolve().parents[1] == pathlib.Path.cwd().resolve() else 1)" 2>/dev/null \
    || "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
fi
say "environment ready: $VENV ($("$VENV/bin/python" --version))"
