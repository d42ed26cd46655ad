#!/usr/bin/env bash
# Install what Trainyard needs, idempotently: `bash scripts/bootstrap.sh python|dev|node|browser ...`
#
#   python   .venv (python3 -m venv) with requirements.txt          (used by `make run`)
#   dev      .venv with requirements-dev.txt (includes the above)   (used by `make test`)
#            and Debian's postgresql where initdb is missing (the tests' own server)
#   node     node_modules/ from package.json + package-lock.json    (azurite, for storage tests)
#   browser  Debian's chromium at /usr/bin/chromium                  (for browser tests)
#
# Each step keeps a stamp (sha256 of its input files) and does nothing, without touching the
# network, while the stamp matches. Missing system packages (python3-venv, npm, chromium,
# postgresql, bubblewrap) are installed with apt-get when running as root; otherwise the script
# says what to install (bubblewrap, for the sandbox of executions, with the python and dev steps).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

VENV="$repo_root/.venv"
PYTHON="${PYTHON:-python3}"
CHROMIUM="/usr/bin/chromium"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# The combined sha256 of the given files (their names and contents).
fingerprint() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

stamp_matches() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

apt_install() {
    if [[ "$(id -u)" -ne 0 ]]; then
        die "missing system packages: run 'sudo apt-get update && sudo apt-get install -y $*' and retry"
    fi
    say "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "$@"
}

ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        return
    fi
    if [[ -e "$VENV" ]]; then
        say "$VENV is broken (its python does not run): recreating it"
        rm -rf "$VENV"
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3 python3-venv
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Trainyard needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)"
    # Debian splits venv/ensurepip into python3-venv (or python3.X-venv).
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        py_minor="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        apt_install python3-venv "python${py_minor}-venv"
    fi
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
}

# pip_install STAMP_NAME REQUIREMENTS_FILE [OTHER_INPUT_FILES...]
pip_install() {
    local stamp="$VENV/.trainyard-$1.sha256" requirements="$2"
    shift
    local files=("$@")
    [[ -f "$requirements" ]] || die "$requirements not found"
    ensure_venv
    local sum
    sum="$(fingerprint "${files[@]}")"
    if stamp_matches "$stamp" "$sum"; then
        say "python packages from $requirements are up to date"
        return
    fi
    say "installing python packages from $requirements"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements"
    echo "$sum" > "$stamp"
}

# bubblewrap isolates executions (thread_layer/sandbox.py); without it they run with limits and
# a network namespace only (the admin page's Sandbox says what is active).
ensure_bwrap() {
    if command -v bwrap >/dev/null 2>&1; then
        say "bubblewrap is installed ($(command -v bwrap))"
        return
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        say "bubblewrap is missing: run 'sudo apt-get install -y bubblewrap' to isolate executions"
        return
    fi
    apt_install bubblewrap
}

step_python() {
    ensure_bwrap
    pip_install requirements requirements.txt
}

# PostgreSQL's initdb and pg_ctl, with which the tests start a server of their own (never the
# machine's): on PATH or in Debian's /usr/lib/postgresql/<version>/bin.
ensure_postgres_binaries() {
    command -v initdb >/dev/null 2>&1 && return
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return
    apt_install postgresql
}

step_dev() {
    ensure_postgres_binaries
    ensure_bwrap
    pip_install requirements-dev requirements-dev.txt requirements.txt
    # The dev set includes requirements.txt: the runtime set is installed too.
    fingerprint requirements.txt > "$VENV/.trainyard-requirements.sha256"
}

step_node() {
    [[ -f package.json ]] || die "package.json not found"
    if ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    local stamp="node_modules/.trainyard-packages.sha256" inputs=(package.json)
    [[ -f package-lock.json ]] && inputs+=(package-lock.json)
    local sum
    sum="$(fingerprint "${inputs[@]}")"
    if stamp_matches "$stamp" "$sum"; then
        say "node packages are up to date"
        return
    fi
    if [[ -f package-lock.json ]]; then
        say "installing node packages (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
    else
        say "installing node packages (npm install: no package-lock.json yet, commit the new one)"
        npm install --no-audit --no-fund --loglevel=error
        inputs+=(package-lock.json)
        sum="$(fingerprint "${inputs[@]}")"
    fi
    echo "$sum" > "$stamp"
}

step_browser() {
    if [[ -x "$CHROMIUM" ]]; then
        say "chromium is installed ($CHROMIUM)"
        return
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        die "$CHROMIUM is missing: run 'sudo apt-get update && sudo apt-get install -y chromium' and retry"
    fi
    apt_install chromium
    [[ -x "$CHROMIUM" ]] || die "chromium was installed but $CHROMIUM is still missing"
}

usage() {
    echo "usage: $0 {python|dev|node|browser}..." >&2
    exit 2
}

[[ $# -gt 0 ]] || usage
for step in "$@"; do
    case "$step" in
        python) step_python ;;
        dev) step_dev ;;
        node) step_node ;;
        browser) step_browser ;;
        *) usage ;;
    esac
done
