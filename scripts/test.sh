#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, vet, unit tests.
# Long runs (full-size parity, learning curves) live behind -short / build
# tags and in scripts/.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -short -count=1 -timeout 30m ./... "$@"
