#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the gateway needs, only those that are missing:
#   softhsm2       - the embedded-default PKCS#11 token (keys live there, never in files)
#   poppler-utils  - pdfsig, the independent validator the demo and tests use
#   python3-venv   - to create the project's virtual environment
#   fonts-liberation2 - Liberation Serif, metric-compatible with Times New Roman (which
#                    Decree 30 names) and with full Vietnamese coverage, for the text
#                    of visible signatures (DejaVu, when present, is the fallback)
#   chromium       - the headless browser in which the demo and the tests drive the
#                    tablet app (Playwright drives it; it never downloads a browser)
# With --test also:
#   gcc, libc6-dev - the tests compile a small PKCS#11 fault-injection shim
set -euo pipefail
need=()
if [ "${1:-}" = "--test" ]; then
  command -v gcc >/dev/null 2>&1 || need+=(gcc)
  [ -e /usr/include/dlfcn.h ] || need+=(libc6-dev)
fi
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v pdfsig >/dev/null 2>&1 || need+=(poppler-utils)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
[ -e /usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf ] || need+=(fonts-liberation2)
[ -x "${GATEWAY_CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "system-deps: installing ${need[*]} from the distribution's packages"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "system-deps: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt-get or an unattended upgrade may hold the package locks: wait for it (up to
# APT_LOCK_WAIT seconds, 10 minutes by default) instead of failing at once.
wait=${APT_LOCK_WAIT:-600}
locked() {
  # prints the lock files some process holds now (fcntl locks, as apt and dpkg take them)
  python3 - "$@" <<'PY'
import fcntl, sys
for path in sys.argv[1:]:
    try:
        with open(path, "a") as f:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        pass
    except PermissionError:
        pass
    except OSError:
        print(path)
PY
}
locks=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
deadline=$((SECONDS + wait))
while held=$(locked "${locks[@]}"); [ -n "$held" ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "system-deps: another package manager still holds $held after ${wait} s;" \
      "let it finish (or set APT_LOCK_WAIT) and run this again" >&2
    exit 1
  fi
  echo "system-deps: waiting for another package manager to release $held" \
    "(up to $((deadline - SECONDS)) s more)"
  sleep 5
done
apt_wait=(-o "DPkg::Lock::Timeout=$((deadline > SECONDS ? deadline - SECONDS : 1))")
$sudo apt-get "${apt_wait[@]}" update -qq
$sudo apt-get "${apt_wait[@]}" install -y -qq --no-install-recommends "${need[@]}"
