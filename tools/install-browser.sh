#!/usr/bin/env bash
# Install what the browser tests (tests/browser) need, when it is missing: Debian's Chromium, and fonts
# for the bookstore's Chinese titles and the notebooks' emoji, so screenshots show what attendees see.
#
# The tests drive /usr/bin/chromium through playwright's executable_path: `playwright install`
# downloads a browser from the internet, which CI and workshop machines do not have.
# Installing needs root (CI runs as root); without it, say what to run instead of failing obscurely.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=(chromium fonts-wqy-zenhei fonts-noto-color-emoji)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 && -x "$CHROMIUM" ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-browser: missing ${missing[*]}; install as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null; then
    echo "install-browser: missing ${missing[*]} and this system has no apt-get; install them there" >&2
    exit 1
fi

echo "install-browser: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null

if [[ ! -x "$CHROMIUM" ]]; then
    echo "install-browser: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "install-browser: $("$CHROMIUM" --version 2>/dev/null)"
