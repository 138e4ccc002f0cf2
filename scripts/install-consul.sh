#!/usr/bin/env bash
# Installs the Consul binary from Debian's bullseye suite when it is missing.
# Bookworm ships no consul; bullseye's 1.8.7 is a static binary that runs here. The mirror URI and
# keyring are read from the machine's own apt sources so no host name is written into the repo.
#
# apt's sources are left as they were: the bullseye entry lives in a temporary directory that apt
# is pointed at (with copies of the machine's own entries) for this one update and install.
set -euo pipefail

if command -v consul >/dev/null 2>&1; then
  consul version | awk 'NR == 1'  # awk reads it all: head would leave consul a SIGPIPE (exit 141 under pipefail)
  exit 0
fi

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

sources=/etc/apt/sources.list.d/debian.sources
if [ -f "$sources" ]; then
  uri=$(awk '/^URIs:/ {print $2; exit}' "$sources")
  keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$sources")
else
  uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
if [ -z "${uri:-}" ]; then
  echo "install-consul: no Debian mirror found in apt sources" >&2
  exit 1
fi

sources_snapshot() { (ls -l /etc/apt/sources.list.d; cat /etc/apt/sources.list /etc/apt/sources.list.d/*) 2>/dev/null || true; }
before=$(sources_snapshot | sha256sum)
parts=$(mktemp -d)
trap 'rm -rf "$parts"' EXIT
cp /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list "$parts"/ 2>/dev/null || true
printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\nSigned-By: %s\n' \
  "$uri" "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}" >"$parts/gorpc-bullseye.sources"
chmod -R a+rX "$parts"  # apt reads sources as its unprivileged user too

apt_options=(-o "Dir::Etc::SourceParts=$parts")
$sudo_cmd apt-get "${apt_options[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get "${apt_options[@]}" install -y -qq consul >/dev/null

after=$(sources_snapshot | sha256sum)
if [ "$before" != "$after" ]; then
  echo "install-consul: apt's sources changed; they must be left as they were" >&2
  exit 1
fi
consul version | awk 'NR == 1'
