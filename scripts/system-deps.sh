#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the gateway needs, only those that are missing:
#   softhsm2       - the embedded-default PKCS#11 token (keys live there, never in files)
#   poppler-utils  - pdfsig, the independent validator the demo and tests use
#   python3-venv   - to create the project's virtual environment
#   fonts-liberation2 - Liberation Serif, metric-compatible with Times New Roman (which
#                    Decree 30 names) and with full Vietnamese coverage, for the text
#                    of visible signatures (DejaVu, when present, is the fallback)
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
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
