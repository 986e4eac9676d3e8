#!/usr/bin/env bash
# Lints and scans the deployment template offline: cfn-lint, sam validate --lint, checkov
# (and openapi.yaml with openapi-spec-validator when it is installed).
# Usage: scripts/check-iac.sh   (VENV=/path/to/venv to use another virtualenv; default .venv)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
BIN="$VENV/bin"
TEMPLATE=template.yaml

for tool in cfn-lint sam checkov; do
    if [[ ! -x "$BIN/$tool" ]]; then
        echo "check-iac: $BIN/$tool not found; pip install cfn-lint aws-sam-cli checkov into $VENV" >&2
        exit 2
    fi
done

# Nothing here needs AWS: dummy credentials and a region keep the SDKs from probing the network
# (instance metadata), and telemetry / update checks are off.
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0
# checkov: no PyPI version check at import, no Prisma Cloud downloads (--skip-download below;
# BC_SKIP_MAPPING=TRUE is its environment equivalent).
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE

echo "== cfn-lint $TEMPLATE"
"$BIN/cfn-lint" "$TEMPLATE"
echo "ok"

echo "== sam validate --lint"
"$BIN/sam" validate --lint --template-file "$TEMPLATE" --region "$AWS_REGION"

echo "== checkov"
"$BIN/checkov" -f "$TEMPLATE" --framework cloudformation --quiet --compact --skip-download

# The OpenAPI description is checked too when the validator is installed (moto[server] brings it).
if [[ -x "$BIN/openapi-spec-validator" ]]; then
    echo "== openapi-spec-validator openapi.yaml"
    "$BIN/openapi-spec-validator" openapi.yaml
fi
echo "check-iac: all clean"
