#!/usr/bin/env bash
# Schemathesis (property-based API tests) against `atlas dev`, driven by
# shared/query/openapi.json: a fixed seed and a bounded number of examples
# per operation, every check but positive_data_acceptance (see the toml).
# It must find no server error and no answer that breaks the document.
#
# Needs: the `atlas` binary (ATLAS_BIN, default the debug build), the
# machine's PostgreSQL (ATLAS_TEST_DATABASE_URL's server) and `st` (pip
# install schemathesis). Prints Schemathesis' summary; exits non-zero on
# any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
atlas="${ATLAS_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/atlas}"
server="${ATLAS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="atlas_st_$$"
port="${ATLAS_ST_PORT:-9187}"
seed="${ATLAS_ST_SEED:-1}"
examples="${ATLAS_ST_EXAMPLES:-50}"
work="$(mktemp -d)"
dev_pid=""

cleanup() {
    if [ -n "$dev_pid" ]; then kill "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; fi
    # atlas dev's change tap holds a slot on the database, and its
    # warehouse is a database of its own.
    psql "$server" -q \
        -c "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname IN ('$db', '${db}_warehouse')" \
        -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$db' AND NOT active" \
        -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS ${db}_warehouse WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

command -v st >/dev/null || { echo "schemathesis (st) is required: pip install schemathesis"; exit 1; }
psql "$server" -qc "CREATE DATABASE $db"
url="${server%/*}/$db"
"$atlas" dev --database-url "$url" --port "$port" --data-dir "$work" >"$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 60); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/entities/1" && break
    kill -0 "$dev_pid" 2>/dev/null || { echo "atlas dev stopped:"; cat "$work/dev.log"; exit 1; }
    sleep 0.5
done
token="$("$atlas" token --tenant 1 --data-dir "$work")"
# The warehouse's first load (the demo catalog), so its routes answer.
today="$(date -u +%F)"
for _ in $(seq 60); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$port/v1/analytics/attributes/temperature/daily?from=$today&to=$today")"
    [ "$code" = 200 ] && break
    sleep 0.5
done
[ "$code" = 200 ] || { echo "the warehouse never loaded (last answer $code):"; tail -20 "$work/dev.log"; exit 1; }

# Only what answers Schemathesis counts below: the wait above is answered
# 503 "the warehouse has loaded nothing yet; retry later" by design.
seen="$(wc -l <"$work/dev.log")"

# The plugin upload takes a WebAssembly body, which Schemathesis cannot
# generate; tests/openapi.rs and tests/plugins.rs cover that operation.
set +e
st --config-file "$here/schemathesis.toml" run "$root/shared/query/openapi.json" \
    --url "http://127.0.0.1:$port" -H "Authorization: Bearer $token" \
    --seed "$seed" --max-examples "$examples" --workers 1 \
    --checks all --exclude-checks positive_data_acceptance --exclude-operation-id uploadPlugin \
    --no-color --output-truncate true >"$work/st.log" 2>&1
status=$?
set -e
# The summary, and every failure in full when there are any.
if [ "$status" -ne 0 ]; then cat "$work/st.log"; else sed -n '/SUMMARY/,$p' "$work/st.log"; fi
# Schemathesis' not_a_server_error check sees each answer; the server's own
# log is read too, so no 5xx goes unnoticed.
errors="$(tail -n +"$((seen + 1))" "$work/dev.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -E 'status=5[0-9]{2}' || true)"
if [ -n "$errors" ]; then
    echo "atlas dev answered with a 5xx:"; echo "$errors" | head -20
    status=1
fi
exit "$status"
