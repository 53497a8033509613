#!/usr/bin/env bash
# pr_comment.sh PR_NUMBER KEY FILE: create or update the pull request's comment marked KEY with
# FILE's contents, so each push updates one comment per environment instead of adding another.
# Needs GH_TOKEN (pull-requests: write) and GITHUB_REPOSITORY; gh is on GitHub's runners.
set -euo pipefail
pr=$1
key=$2
file=$3
marker="<!-- ${key} -->"
body="$(printf '%s\n%s\n' "$marker" "$(cat "$file")")"
# All matching ids first, then the first one (piping into `head` could cut gh off mid-write).
ids=$(gh api --paginate "repos/${GITHUB_REPOSITORY}/issues/${pr}/comments" \
  --jq ".[] | select(.user.login == \"github-actions[bot]\" and (.body | startswith(\"${marker}\"))) | .id")
existing=${ids%%$'\n'*}
if [ -n "$existing" ]; then
  gh api --method PATCH "repos/${GITHUB_REPOSITORY}/issues/comments/${existing}" -f body="$body" > /dev/null
  echo "updated comment ${existing} on #${pr}"
else
  gh api --method POST "repos/${GITHUB_REPOSITORY}/issues/${pr}/comments" -f body="$body" > /dev/null
  echo "commented on #${pr}"
fi
