#!/usr/bin/env bash
# Install what pip cannot: git and git-lfs (Debian packages), only when missing.
set -euo pipefail
missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
git lfs version >/dev/null 2>&1 || missing+=(git-lfs)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} with apt-get" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
