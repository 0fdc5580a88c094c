#!/usr/bin/env bash
# The Debian packages the tests use, installed by CI (.ci/run) and by `make test` alike.
#
#   scripts/install-system-deps.sh            install the missing ones (needs root)
#   scripts/install-system-deps.sh --check    list the missing ones; exit 1 when any is
#   scripts/install-system-deps.sh --dry-run  say what would be installed, install nothing
#
# DCMTIER_ASSUME_MISSING="pkg ..." treats those packages as missing (to try the other paths of
# this script on a machine that has them); nothing is uninstalled.
set -euo pipefail

# Independent decoders (gdcmconv, opj_decompress), the DICOM validator (dciodvfy) the tests
# check outputs with, djxl (libjxl-tools) for the JPEG XL outputs, docker-compose for the
# deployment file's config check, chromium for the screenshot test of the compression pages, and
# Orthanc with its DICOMweb plugin, the real archive the DICOMweb tests start on loopback (the
# package's own service is not used: the tests run Orthanc with a configuration of their own).
apt_packages=(libgdcm-tools libopenjp2-tools dicom3tools libjxl-tools docker-compose chromium
  orthanc orthanc-dicomweb)

mode=install
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --dry-run) mode=dry-run ;;
  -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "install-system-deps.sh: unknown option $1 (--check, --dry-run, --help)" >&2; exit 2 ;;
esac

assumed=" ${DCMTIER_ASSUME_MISSING:-} "
missing=()
for pkg in "${apt_packages[@]}"; do
  if [[ "$assumed" == *" $pkg "* ]] || ! dpkg -s "$pkg" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  [ "$mode" = install ] || echo "system packages: all present (${apt_packages[*]})"
  exit 0
fi

command="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
case "$mode" in
  check)
    echo "system packages missing: ${missing[*]}"
    exit 1
    ;;
  dry-run)
    echo "would run: $command"
    exit 0
    ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages the tests use: ${missing[*]}; install them as root with: sudo bash scripts/install-system-deps.sh" >&2
  exit 1
fi
echo "installing the Debian packages the tests use: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
