#!/usr/bin/env bash
# Lint protos/ and check them for breaking changes with buf (rules in buf.yaml).
#
# The breaking check compares protos/ with the main they change:
# - protos/ with uncommitted edits (a developer at work): against HEAD;
# - protos/ as committed (CI on a clean clone): the last commit that changed protos/
#   against the commit before it, however many commits came after it, so the change
#   that landed is the one checked.
# Without that parent (first commit, shallow clone) it falls back to HEAD and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF=${BUF:-node_modules/.bin/buf}

echo "buf lint: protos/"
"$BUF" lint

if ! git rev-parse --verify --quiet 'HEAD^{commit}' >/dev/null; then
  echo "buf breaking: skipped, the repository has no commit to compare protos/ with" >&2
  exit 0
fi

# Untracked .proto files count as edits too: git diff alone does not see new files.
if git diff --quiet HEAD -- protos &&
  [ -z "$(git ls-files --others --exclude-standard -- protos)" ]; then
  last_change=$(git log -1 --format=%H -- protos)
  if [ -n "$last_change" ] && git rev-parse --verify --quiet "$last_change~1^{commit}" >/dev/null; then
    against="$last_change~1"
  else
    echo "buf breaking: the commit before the last change of protos/ is not available" \
      "(first commit or shallow clone); FALLING BACK to HEAD, which equals protos/," \
      "so no change is checked" >&2
    against=HEAD
  fi
else
  against=HEAD
fi

commit=$(git rev-parse "$against")
echo "buf breaking: protos/ against $against (${commit:0:12})"
"$BUF" breaking protos --against ".git#ref=$commit,subdir=protos"
