#!/usr/bin/env bash
# compare.sh runs ROUNDS (default 2) rounds of the loopback intake comparison
# (BENCHMARKS.md): in each round every server given, started fresh on
# 127.0.0.1:18090, under wrk -t1 -c32 -d10s with the pre-signed bodies of
# REQUESTS (default /tmp/req.tsv, written by `load -requests`; wrk starts over
# from the first body when it runs out, so write more than a run can send:
# 1000000 lasts ten seconds up to 100k/s). It prints each
# run's rate, p50, p99 and the server's own CPU time per request
# (utime + stime from /proc); each later server's rate is also given as a ratio
# to the first server's in the same round. The last lines give each later
# server's median ratio over the rounds, and the ratio of its best round to the
# first server's best: the machine's other users only ever slow a run down, so
# a server's fastest run is the one they disturbed least.
#
#   WHATSAPP_APP_SECRET=dev-secret cmd/load/compare.sh "/tmp/load -bare" "/tmp/load -intake"
set -euo pipefail
cd "$(dirname "$0")/../.."
requests=${REQUESTS:-/tmp/req.tsv}
tick=$(getconf CLK_TCK)
addr=127.0.0.1:18090
ratios=$(mktemp)
rates=$(mktemp)
trap 'rm -f "$ratios" "$rates"' EXIT
for round in $(seq 1 "${ROUNDS:-2}"); do
  first=""
  for server in "$@"; do
    # shellcheck disable=SC2086 # the server is a command and its flags
    $server "$addr" >/dev/null 2>&1 &
    pid=$!
    sleep 1
    out=$(wrk -t1 -c32 -d10s --latency -s cmd/load/wrk.lua "http://$addr/" -- "$requests" 1)
    cpu=$(awk -v t="$tick" '{print ($14 + $15) / t}' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    printf '%s\t%s\n' "$server" "$rps" >>"$rates"
    ratio=""
    if [ -z "$first" ]; then
      first=$rps
    else
      ratio=$(awk -v a="$rps" -v b="$first" 'BEGIN {printf "%.2f", a / b}')
      printf '%s\t%s\n' "$server" "$ratio" >>"$ratios"
    fi
    awk -v r="$round" -v s="$server" -v c="$cpu" -v n="$n" -v x="$ratio" -v rps="$rps" '
      $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2} /Non-2xx/ {bad = $0}
      END {printf "round %s %-28s %9.0f req/s %s p50 %s  p99 %s  cpu %.1f us/req %s\n", r, s, rps, (x == "" ? "" : "(" x "x)"), p50, p99, c * 1e6 / n, bad}' <<<"$out"
  done
done
# The median ratio of each later server to the first, over the rounds, and
# the ratio of their best rounds.
best() { awk -F'\t' -v s="$1" '$1 == s && $2 > b {b = $2} END {print b}' "$rates"; }
for server in "${@:2}"; do
  awk -F'\t' -v s="$server" '$1 == s {print $2}' "$ratios" | sort -n |
    awk -v s="$server" -v base="$1" '{v[NR] = $1} END {if (NR) printf "median %-28s %.2fx of %s over %d rounds (%s-%s)\n", s, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), base, NR, v[1], v[NR]}'
  awk -v s="$server" -v base="$1" -v a="$(best "$server")" -v b="$(best "$1")" \
    'BEGIN {printf "best   %-28s %.2fx of %s (%.0f against %.0f req/s)\n", s, a / b, base, a, b}'
done
