#!/usr/bin/env bash
# Installs the system packages moa builds against on Debian 12 / Ubuntu: libtorch (CPU) with
# OpenBLAS (without it matmul falls back to the reference BLAS, ~50x slower), and the C++
# toolchain node-gyp needs, and Chromium for the web studio's browser tests (playwright-core
# drives Debian's chromium; Playwright's own browser download does not work offline), and a font
# for the text sharp draws (the eval grid's column names). Skips what is already there. Set
# LIBTORCH to use your own libtorch.
set -euo pipefail

packages=(g++ make python3 libopenblas0-pthread chromium fonts-dejavu-core)
[ -n "${LIBTORCH:-}" ] || packages+=(libtorch-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "moa: system packages present (${packages[*]})"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "moa: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "moa: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "moa: system packages installed"
