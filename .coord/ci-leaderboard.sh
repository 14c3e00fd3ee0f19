# Lines for .ci/run (after the pip installs, before pytest): the leaderboard's browser
# tests (tests/test_leaderboard_browser.py) drive Debian's Chromium through Playwright's
# Python API; Playwright's own browser download is never used. Without chromium those
# tests skip with a reason, so CI must install it. Uses sudo only when not root.
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium) \
    || echo "ci: could not install chromium; browser tests will be skipped"
fi
# Screenshots from those tests land in tests/_artifacts/leaderboard/ (gitignored); keep
# them as CI artifacts if the runner supports it.
