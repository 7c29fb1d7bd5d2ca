#!/usr/bin/env bash
# Install what pip cannot, only when missing: git, git-lfs, Python's venv module (Debian
# ships it separately as python3-venv) and chromium, the browser the site tests drive
# (Playwright's own browser downloads are never used). Uses apt-get; sudo when not root.
set -euo pipefail
PYTHON=${PYTHON:-python3}
missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
git lfs version >/dev/null 2>&1 || missing+=(git-lfs)
"$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} with apt-get" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
