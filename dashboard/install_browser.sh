#!/bin/sh
# Installs Debian's Chromium (for the dashboard's browser tests) when it is not there yet.
set -e
if [ -x /usr/bin/chromium ]; then  # where the browser test looks (tests/dashboard/test_live.py)
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium is missing and cannot be installed here (needs root and apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Twice, 20 s apart: a mirror's passing failure should not cost a CI run its browser test.
for attempt in 1 2; do
  if apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; then
    exit 0
  fi
  [ "$attempt" = 2 ] || sleep 20
done
echo "chromium could not be installed with apt-get" >&2
exit 1
