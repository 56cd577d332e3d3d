#!/usr/bin/env bash
# System packages the tests need beyond .venv (`make browser-deps`, and .ci/run before `make test`):
#   chromium + chromium-driver  tests/test_apps_browser.py drives chapter 14's Gradio app in headless Chromium
#   fonts-noto-cjk              Chinese text on the app's posters and in the browser's screenshots
# Debian/Ubuntu (apt-get). Does nothing, in well under a second, when all three are there already; else
# `apt-get update`, then one `apt-get install` (sudo when not root). Exits non-zero, saying what to do, when
# it cannot install (no apt-get, not root and no sudo) or the tools are still missing afterwards.
set -euo pipefail

PACKAGES=(chromium chromium-driver fonts-noto-cjk)

has_cjk_font() {
  command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family 2>/dev/null)" ]
}

missing() {  # prints what is missing, one word each
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || echo chromium
  command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || echo chromedriver
  has_cjk_font || echo "a CJK font (fc-list :lang=zh is empty)"
}

report() {
  echo "install_system_deps: $(chromium --version 2>/dev/null | head -n1 || echo 'chromium: ?');" \
       "$(chromedriver --version 2>/dev/null | cut -d' ' -f1-2 || echo 'chromedriver: ?');" \
       "CJK fonts: $(fc-list :lang=zh family 2>/dev/null | wc -l) families"
}

todo="$(missing)"
if [ -z "$todo" ]; then
  report
  exit 0
fi
echo "install_system_deps: missing: $(echo "$todo" | paste -sd, -); installing ${PACKAGES[*]} with apt-get"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: no apt-get on this machine: install Chromium, its matching chromedriver and" \
       "a CJK font (Noto Sans CJK) with your system's package manager, then rerun." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install_system_deps: not root and no sudo: ask an administrator to run" \
       "'apt-get install --no-install-recommends ${PACKAGES[*]}', or rerun this script as root." >&2
  exit 1
fi
if grep -qi '^ID=ubuntu' /etc/os-release 2>/dev/null; then
  echo "install_system_deps: note: on Ubuntu the chromium packages are snap shims that need snapd;" \
       "if the test cannot start Chromium, install Chromium and chromedriver another way." >&2
fi
if ! command -v fc-list >/dev/null 2>&1; then
  PACKAGES+=(fontconfig)  # fc-list, the check above; chromium itself only needs libfontconfig1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${PACKAGES[@]}"

todo="$(missing)"
if [ -n "$todo" ]; then
  echo "install_system_deps: still missing after apt-get install: $(echo "$todo" | paste -sd, -)" >&2
  exit 1
fi
report
