# Sourced by bin/start and bin/test: make .venv and install pinned requirements
# when they changed since the last install.
ensure_venv() {
  local reqs="$1"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  # shellcheck disable=SC1091
  . .venv/bin/activate
  local stamp=".venv/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-${reqs}"
  if [ ! -f "$stamp" ]; then
    python -m pip install --quiet --upgrade pip
    python -m pip install --quiet -r "$reqs"
    touch "$stamp"
  fi
}
