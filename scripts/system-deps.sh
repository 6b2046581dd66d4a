#!/usr/bin/env bash
# Installs the Debian packages teleoffice needs, only the missing ones.
#   scripts/system-deps.sh run    what `make run` needs (Python with venv, voicemail prompts)
#   scripts/system-deps.sh test   also the real SIP peers the test suite drives, and PostgreSQL
# Runs apt-get only when something is missing, so repeated calls are instant.
set -euo pipefail

# Voicemail prompts, read at run time: asterisk-core-sounds-en-wav holds the
# recorded English prompts (8 kHz WAV) and asterisk-core-sounds-en links them as
# /usr/share/asterisk/sounds/en (it is only "recommended", and recommends are not
# installed here); espeak-ng synthesises what that set lacks.  Without them
# teleoffice still works, with tones only.
want=(python3 python3-venv asterisk-core-sounds-en-wav asterisk-core-sounds-en espeak-ng)
if [ "${1:-run}" = "test" ]; then
    # sip-tester = sipp; baresip-core = a real softphone for end-to-end tests;
    # postgresql = the server whose initdb and postgres (/usr/lib/postgresql/N/bin)
    # start a throwaway cluster for the database tests (tests/pg.py).
    # chromium = the browser the portal's Playwright tests drive (tests/browser).
    want+=(sip-tester baresip-core postgresql chromium)
fi

missing=()
for pkg in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
# A python3 from elsewhere (pyenv, a distribution build) with a working venv is fine.
if command -v python3 >/dev/null && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    filtered=()
    for pkg in "${missing[@]}"; do
        case "$pkg" in python3|python3-venv) ;; *) filtered+=("$pkg") ;; esac
    done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "teleoffice: please install these Debian packages as root: ${missing[*]}" >&2
    exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
