#!/usr/bin/env bash
# System packages the test suite uses beyond the virtualenv: Debian's Chromium, for the browser test of
# `python -m trajfusion.show --html`. Idempotent and quiet; when it cannot install (not root, no apt, no
# package registry) it says so in one line and the tests that need it skip with that reason.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ci_deps: chromium not installed (needs root and apt-get); its browser test will skip"
  exit 0
fi
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; then
  echo "ci_deps: could not install chromium from the package registry; its browser test will skip"
fi
exit 0
