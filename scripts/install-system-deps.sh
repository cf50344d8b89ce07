#!/usr/bin/env bash
# System packages the test suite needs: PostgreSQL 15 server binaries (a throwaway
# cluster per test session) and Debian's Chromium (browser tests). Installs only what is
# missing, and only as root on a Debian-like machine; otherwise says what to install.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || need+=(postgresql-15)
command -v unshare >/dev/null || need+=(util-linux)
if [ "${SHUYUN_BROWSER_TESTS:-1}" = "1" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  # Chinese text (district, product and unit names) renders as empty boxes without a CJK font.
  [ -d /usr/share/fonts/truetype/wqy ] || need+=(fonts-wqy-zenhei)
fi
# The browser tests' OpenID provider (npm oidc-provider, pinned by tests/e2e/oidc/package-lock.json).
if [ "${SHUYUN_BROWSER_TESTS:-1}" = "1" ] && command -v npm >/dev/null && [ ! -d "$(dirname "$0")/../tests/e2e/oidc/node_modules/oidc-provider" ]; then
  (cd "$(dirname "$0")/../tests/e2e/oidc" && npm ci --no-audit --no-fund --silent)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them with your package manager, e.g. apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
