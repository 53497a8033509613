#!/usr/bin/env bash
# diff_markdown.sh ENV FILE: a `cdk diff` output as a Markdown section (for the run summary and
# the pull-request comment), cut to stay well inside GitHub's 65,536-character comment limit.
set -euo pipefail
env_name=$1
file=$2
limit=60000
echo "### cdk diff: ${env_name}"
echo
echo '```'
head -c "$limit" "$file"
echo
echo '```'
if [ "$(wc -c < "$file")" -gt "$limit" ]; then
  echo
  echo "Cut at ${limit} characters: the whole diff is in the job's log."
fi
