#!/usr/bin/env bash
# Installs the Consul binary from Debian's bullseye suite when it is missing.
# Bookworm ships no consul; bullseye's 1.8.7 is a static binary that runs here. The mirror URI and
# keyring are read from the machine's own apt sources so no host name is written into the repo.
set -euo pipefail

if command -v consul >/dev/null 2>&1; then
  consul version | head -n 1
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

sources=/etc/apt/sources.list.d/debian.sources
target=/etc/apt/sources.list.d/gorpc-bullseye.sources
if [ ! -f "$target" ]; then
  if [ -f "$sources" ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' "$sources")
    keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$sources")
  else
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  fi
  if [ -z "${uri:-}" ]; then
    echo "install-consul: no Debian mirror found in apt sources" >&2
    exit 1
  fi
  printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\nSigned-By: %s\n' \
    "$uri" "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}" | $sudo_cmd tee "$target" >/dev/null
fi

$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq consul >/dev/null
consul version | head -n 1
