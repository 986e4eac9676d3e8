#!/usr/bin/env bash
# Runs `sam build` (cargo lambda, release, arm64 through zig) when anything it builds from has
# changed since the last build verified on this machine kind, and records the new fingerprint.
# A cold build takes about 20 minutes on 2 cores, too long for every CI run; `make sam-build`
# always builds. FORCE_SAM_BUILD=1 builds regardless.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.ci/sam-build.fingerprint
inputs=(template.yaml Cargo.toml Cargo.lock shared functions)
fingerprint=$(git ls-files -s -- "${inputs[@]}" | sha256sum | cut -d' ' -f1)
if [[ ${FORCE_SAM_BUILD:-0} != 1 && -f $stamp && $(cat "$stamp") == "$fingerprint" ]]; then
  echo "sam build: inputs unchanged since the last verified build ($fingerprint); skipping (FORCE_SAM_BUILD=1 to build)"
  exit 0
fi
echo "sam build: inputs changed; building"
make sam-build
echo "$fingerprint" > "$stamp"
echo "sam build: verified; fingerprint recorded in $stamp (commit it)"
