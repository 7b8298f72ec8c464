#!/usr/bin/env bash
# Installs every Debian package freeair needs to build, test and run
# (Debian 12 "bookworm"). Run as root or through sudo.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
packages=(
  # build
  build-essential pkg-config clang libclang-rt-14-dev
  # engine
  libdnnl-dev
  # data: DICOM (DCMTK + its tools), JPEG 2000, PNG/JPEG, zlib
  libdcmtk-dev dcmtk libopenjp2-7-dev libpng-dev libjpeg-dev zlib1g-dev libcharls-dev libsndfile1-dev
  # storage, scale-out, service
  libsqlite3-dev sqlite3 libopenmpi-dev openmpi-bin libmicrohttpd-dev libssl-dev openssl
  # independent references used by the tests (PyTorch, GDCM/pydicom, scikit-learn, R pROC)
  python3 python3-numpy python3-torch python3-torchvision python3-pydicom python3-gdcm
  python3-sklearn python3-pil r-base-core r-cran-proc dicom3tools
  # report and worklist pages are checked in headless Chromium
  chromium fonts-dejavu-core
  # benchmarks (python3-venv: bench/torch_venv.sh installs the newest PyTorch from PyPI as a peer)
  hyperfine python3-venv
)
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"
