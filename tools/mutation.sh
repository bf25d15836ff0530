#!/usr/bin/env bash
# Mutation testing of one module against the test files that concern it (docs/testing.md has the scores):
#   bash tools/mutation.sh MODULE.py TEST_FILE... [-- PYTEST_ARGS...]
# e.g. bash tools/mutation.sh engine/core/exact.py tests/test_exact.py
# Works on a scratch copy of the checkout (mutmut writes mutants/ and rewrites modules there), with a [tool.mutmut]
# section naming the module and the tests; prints mutmut's results and the killed share. Needs mutmut
# (requirements-dev.txt). CPU heavy: one module at a time; MUTMUT_JOBS (default 2) parallel workers.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash tools/mutation.sh MODULE.py TEST_FILE... [-- PYTEST_ARGS...]" >&2; exit 2; }
module=$1; shift
tests=(); extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  tests+=("$1"); shift
done
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mutation.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$root"
git ls-files -co --exclude-standard | grep -v '^cache/' | tar -cf - -T - | tar -xf - -C "$scratch"
cd "$scratch"
quote() { local out=""; for x in "$@"; do out+="\"$x\", "; done; echo "[${out%, }]"; }
cat >> pyproject.toml <<TOML

[tool.mutmut]
source_paths = ["engine", "ui"]
only_mutate = ["$module"]
also_copy = ["pages", "tools", "app.py", "benchmarks", "docs"]
pytest_add_cli_args_test_selection = $(quote "${tests[@]}")
pytest_add_cli_args = $(quote -p no:cacheprovider -p no:randomly -x -q "${extra[@]}")
TOML
export SPARSE_SGD_CACHE="$scratch/cache"
python3 -m mutmut run --max-children "${MUTMUT_JOBS:-2}" >/dev/null 2>&1 || true
python3 -m mutmut results --all true > results.txt 2>&1 || true
python3 - "$module" <<'PY'
import re, sys
from collections import Counter
lines = [l.strip() for l in open("results.txt") if ": " in l]
status = Counter(l.rsplit(": ", 1)[1] for l in lines)
total = sum(status.values())
killed = status.get("killed", 0) + status.get("timeout", 0)
print("\n".join(l for l in lines if not l.endswith(": killed")))
print(f"{sys.argv[1]}: {killed} of {total} mutants killed ({100 * killed / max(total, 1):.1f}%): {dict(status)}")
PY
if [ -n "${SHOW_SURVIVORS:-}" ]; then
  for name in $(grep -E ': (survived|no tests)$' results.txt | cut -d: -f1); do python3 -m mutmut show "$name" 2>&1 | grep -E '^[-+][^-+]'; echo "  ($name)"; done
fi
