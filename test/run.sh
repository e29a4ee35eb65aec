#!/usr/bin/env bash
# `npm test`: install what is missing, build, run the suite (extra arguments go to vitest), then check that the
# suite left nothing of berth on the host.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/prepare.sh
npm run build --silent
status=0
npx vitest run "$@" || status=$?
node test/check-leaks.mjs || status=1
exit "$status"
