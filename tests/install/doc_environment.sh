#!/bin/sh
# doc_environment.sh SOURCE_DIR -- every environment variable the library or the tool reads is
# documented: in the ENVIRONMENT section of the man page (docs/tasklock.1) and in the
# Environment section of docs/cli.md. The names come from the code's getenv()/env() calls, plus
# the GitHub token variables (read from a table) and libpq's PGPASSWORD (read by libpq).
set -eu
src=$(cd "$1" && pwd)
status=0

names=$(
  {
    grep -rhoE '\b(getenv|env)\("[A-Z_]+"\)' "$src/src" "$src/cli" | sed -E 's/.*"([A-Z_]+)".*/\1/'
    printf '%s\n' GH_TOKEN GITHUB_TOKEN GH_ENTERPRISE_TOKEN GITHUB_ENTERPRISE_TOKEN PGPASSWORD
  } | sort -u | grep -vx 'TASKLOCK_HANDED_OFF'
)
man=$(sed -n '/^\.SH ENVIRONMENT/,/^\.SH EXAMPLES/p' "$src/docs/tasklock.1")
cli=$(sed -n '/^## Environment/,/^## Limits/p' "$src/docs/cli.md")
for n in $names; do
  if ! printf '%s\n' "$man" | grep -q "$n"; then
    echo "doc_environment: $n is not in the ENVIRONMENT section of docs/tasklock.1" >&2
    status=1
  fi
  if ! printf '%s\n' "$cli" | grep -q "$n"; then
    echo "doc_environment: $n is not in the Environment section of docs/cli.md" >&2
    status=1
  fi
done
[ $status -ne 0 ] || echo "doc_environment: ok:" $names
exit $status
