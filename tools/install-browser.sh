#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/browser), when it is missing.
#
# The tests drive /usr/bin/chromium through playwright's executable_path: `playwright install`
# downloads a browser from the internet, which CI and workshop machines do not have.
# Installing needs root (CI runs as root); without it, say what to run instead of failing obscurely.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-browser: $CHROMIUM is missing; install it as root: apt-get install -y chromium" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null; then
    echo "install-browser: $CHROMIUM is missing and this system has no apt-get; install Chromium there" >&2
    exit 1
fi

echo "install-browser: installing Debian's chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium </dev/null >/dev/null

if [[ ! -x "$CHROMIUM" ]]; then
    echo "install-browser: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "install-browser: $("$CHROMIUM" --version 2>/dev/null)"
