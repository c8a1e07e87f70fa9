#!/usr/bin/env bash
# Checks a Debian package from scripts/package-deb.sh without installing it: its files, the
# systemd units (`systemd-analyze verify`, when systemd is there), and the units' command
# lines run as systemd would run them with the packaged /etc/default/edgenlu — `serve` answers
# /healthz and drains on SIGTERM; the agent is skipped while no channel is set, and with one
# set runs a round (against a registry that is not there: the round fails, the status record
# says so, the agent exits cleanly).
#
# Usage: scripts/check-package.sh PACKAGE.deb   (scripts/test.sh runs it on the test build)
source "$(dirname "$0")/common.sh"
[ $# -eq 1 ] || { echo "usage: $0 PACKAGE.deb" >&2; exit 2; }
deb="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
root="$(mktemp -d)"
trap 'rm -rf "$root"; [ -z "${serve_pid:-}" ] || kill "$serve_pid" 2>/dev/null || true' EXIT
dpkg-deb -x "$deb" "$root"
control="$(dpkg-deb -f "$deb" Package Architecture Version Depends)"
echo "$control" >&2
for f in usr/bin/edgenlu lib/systemd/system/edgenlu-serve.service \
    lib/systemd/system/edgenlu-agent.service etc/default/edgenlu usr/share/doc/edgenlu/README.md; do
    [ -e "$root/$f" ] || { echo "error: the package has no /$f" >&2; exit 1; }
done
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/default/edgenlu ] || { echo "error: /etc/default/edgenlu is not a conffile" >&2; exit 1; }

# The units with their binary at the unpacked path, as systemd would read them.
units="$root/units"
mkdir -p "$units"
for u in edgenlu-serve edgenlu-agent; do
    sed "s|/usr/bin/edgenlu|$root/usr/bin/edgenlu|g" "$root/lib/systemd/system/$u.service" > "$units/$u.service"
done
if command -v systemd-analyze >/dev/null; then
    out="$(systemd-analyze verify "$units/edgenlu-serve.service" "$units/edgenlu-agent.service" 2>&1 || true)"
    [ -z "$out" ] || { echo "error: systemd-analyze verify: $out" >&2; exit 1; }
    echo "systemd-analyze verify: both units clean" >&2
fi

# exec_line UNIT KEY: a unit's line KEY= (one line each in these units).
exec_line() { sed -n "s/^$2=//p" "$units/$1.service"; }
# run_unit_line LINE UNIT: replaces the calling (sub)shell with LINE run with UNIT's defaults
# and the packaged settings, expanding ${VAR} as one word and $VAR split on whitespace, as
# systemd does. Call it in a subshell.
run_unit_line() {
    local line="$1"
    line="$(printf '%s' "$line" | sed -E 's/\$\{([A-Z_]+)\}/"${\1}"/g')"
    set -a
    eval "$(sed -n 's/^Environment=//p' "$units/$2.service" | tr ' ' '\n')"
    # shellcheck disable=SC1091
    source "$root/etc/default/edgenlu"
    set +a
    export EDGENLU_HOME="$store" EDGENLU_LISTEN="$listen" EDGENLU_SERVE_ARGS="--index check-snips"
    export EDGENLU_CHANNEL="${channel:-}" EDGENLU_AGENT_ARGS="${agent_args:-}"
    eval "exec $line"
}
store="$root/store"
use_temp_store "$store"
"$edgenlu" skill index --data "$datasets/snips/train.jsonl" --per-intent 5 --name check-snips >/dev/null
listen="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

step "edgenlu-serve.service's command line"
(run_unit_line "$(exec_line edgenlu-serve ExecStart)" edgenlu-serve) > "$root/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://$listen/healthz', timeout=1)" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$root/serve.log" >&2; echo "error: serve exited" >&2; exit 1; }
    sleep 0.2
done
python3 -c "import urllib.request; print('healthz:', urllib.request.urlopen('http://$listen/healthz', timeout=5).read().decode().strip())" >&2
kill -TERM "$serve_pid"
wait "$serve_pid" || { cat "$root/serve.log" >&2; echo "error: serve did not stop cleanly on SIGTERM" >&2; exit 1; }
serve_pid=""

step "edgenlu-agent.service: skipped without a channel; with one, a round against a registry that is not there"
if (run_unit_line "$(exec_line edgenlu-agent ExecCondition)" edgenlu-agent); then
    echo "error: the agent's ExecCondition passed with no channel set" >&2; exit 1
fi
channel="127.0.0.1:9/acme/channel:stable" agent_args="--rounds 1 --attempts 1"
(run_unit_line "$(exec_line edgenlu-agent ExecCondition)" edgenlu-agent)
(run_unit_line "$(exec_line edgenlu-agent ExecStart)" edgenlu-agent) > "$root/agent.log" 2>&1 || true
grep -q '"result": "failed"' "$store/status.json" || { cat "$root/agent.log" >&2; echo "error: the agent wrote no failed round" >&2; exit 1; }
echo "package $(basename "$deb"): files, units, serve and agent command lines check" >&2
