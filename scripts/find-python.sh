#!/usr/bin/env bash
# Prints the path of a working Python X.Y interpreter: `pythonX.Y` on PATH, or one installed under
# pyenv. Exits 1, saying so, when there is none: CI fails on a missing interpreter, never skips it.
set -euo pipefail
version="${1:?usage: find-python.sh X.Y}"

works() { "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" 2>/dev/null; }

if candidate=$(command -v "python$version" 2>/dev/null) && works "$candidate"; then
  echo "$candidate"
  exit 0
fi
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for candidate in $(ls -d "$root"/versions/"$version".* 2>/dev/null | sort -V -r); do
  if works "$candidate/bin/python$version"; then
    echo "$candidate/bin/python$version"
    exit 0
  fi
done
echo "find-python: no Python $version found (on PATH or under pyenv)" >&2
exit 1
