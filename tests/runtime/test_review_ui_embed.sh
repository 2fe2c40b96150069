#!/usr/bin/env bash
# test_review_ui_embed.sh - engine/review/ui.c is what engine/review/ui/embed.sh makes of the
# assets (index.html, app.css, app.js): nobody edited an asset and forgot to regenerate, and
# the served assets hold no innerHTML / external URL (self-contained, DOM built as text).
set -euo pipefail
src=${VG_SOURCE_DIR:?}
diff <(bash "$src/engine/review/ui/embed.sh") "$src/engine/review/ui.c" >/dev/null ||
  { echo "FAIL: engine/review/ui.c is stale: run bash engine/review/ui/embed.sh > engine/review/ui.c" >&2; exit 1; }
if grep -nE 'innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(' "$src/engine/review/ui/app.js"; then
  echo "FAIL: app.js builds HTML from strings" >&2
  exit 1
fi
if grep -nE '(src|href)="(https?:)?//' "$src/engine/review/ui/index.html"; then
  echo "FAIL: index.html loads something from another origin" >&2
  exit 1
fi
echo ok
