#!/usr/bin/env bash
# Builds the host tools the test plane drives clusters with (kind, kubectl, helm, crictl)
# from the Go module proxy at pinned versions, into ~/.cache/tributary/bin.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$E2E_DIR/node-image/go-components.sh" "$BIN_DIR" host
