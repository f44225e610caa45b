#!/usr/bin/env bash
# Install the headless browser the dashboard's browser test drives (used by `make setup`):
# Debian's `chromium` and its WebDriver, `chromium-driver` (/usr/bin/chromium and
# /usr/bin/chromedriver). The test starts them itself, headless, on loopback only; nothing here
# downloads a browser build of its own (Selenium's driver manager is never used).
#
# Does nothing if both are already present. Without apt-get it explains what to install and
# exits 0: the browser test then fails, saying what is missing.
set -euo pipefail
source "$(dirname "$0")/../apt.sh"

apt_ensure browser "apt-get not found: install Chromium and its matching chromedriver yourself so that
/usr/bin/chromium and /usr/bin/chromedriver exist. Until then the dashboard's browser test
(tests/e2e/test_dashboard_browser.py) fails, saying so." chromium chromium-driver
