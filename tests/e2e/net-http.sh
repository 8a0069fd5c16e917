#!/bin/bash
# app=http on colovm: curl fetches / twice over one keep-alive connection and
# the page's request counter goes up by one; /static is the same page
# without the counter, alike every time; other paths get 404;
# "Connection: close" is honoured; wrk for a second with 100 connections
# gets no errors; idle again, the guest halts instead of spinning.
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/tools/netenv.sh"

need_kvm
need_netns
net_setup

vm_start http colovm "app=http"
nsx curl -sv --max-time 10 http://10.0.0.2/ http://10.0.0.2/ >"$TMP/pages" 2>"$TMP/curl.err" ||
	{ cat "$TMP/curl.err" >&2; fail "curl"; }
grep -q 'Re-using existing connection' "$TMP/curl.err" ||
	{ cat "$TMP/curl.err" >&2; fail "curl did not reuse the connection"; }
[ "$(grep -c '^Connected to\|^\* Connected to' "$TMP/curl.err")" = 1 ] || fail "curl connected twice"
mapfile -t counts < <(grep -o 'requests: [0-9]*' "$TMP/pages" | cut -d' ' -f2)
[ "${#counts[@]}" = 2 ] || { cat "$TMP/pages" >&2; fail "expected two pages"; }
[ "${counts[1]}" = $((counts[0] + 1)) ] || fail "counter went ${counts[0]} -> ${counts[1]}"
nsx curl -s --max-time 10 http://10.0.0.2/static -o "$TMP/s1" http://10.0.0.2/static -o "$TMP/s2" ||
	fail "curl /static"
grep -q '<h1>colovm test guest</h1>' "$TMP/s1" || { cat "$TMP/s1" >&2; fail "/static: not the page"; }
! grep -q 'requests:' "$TMP/s1" || fail "/static carries the counter"
cmp -s "$TMP/s1" "$TMP/s2" || fail "/static differs between two requests"
code=$(nsx curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://10.0.0.2/missing)
[ "$code" = 404 ] || fail "/missing: HTTP $code"
hdr=$(nsx curl -s -D - -o /dev/null -H 'Connection: close' --max-time 10 http://10.0.0.2/)
grep -qi '^Connection: close' <<<"$hdr" || fail "Connection: close not honoured"
nsx wrk -t1 -c100 -d1s http://10.0.0.2/ >"$TMP/wrk.out" 2>&1 || { cat "$TMP/wrk.out" >&2; fail "wrk"; }
cat "$TMP/wrk.out" >&2
! grep -q 'Socket errors\|Non-2xx' "$TMP/wrk.out" || fail "wrk saw errors"
# Idle, the guest halts (tests/guest/irq.c): colovm's whole process uses
# far less than the core a spinning vCPU would (clock ticks over 2 s).
cpu_ticks() { awk '{print $14 + $15}' "/proc/${vm_pid[http]}/stat"; }
sleep 1
t0=$(cpu_ticks)
sleep 2
used=$(($(cpu_ticks) - t0))
note "idle guest: colovm used $used of $((2 * $(getconf CLK_TCK))) clock ticks in 2 s"
[ "$used" -lt "$(getconf CLK_TCK)" ] || fail "an idle guest kept colovm busy ($used ticks in 2 s)"
vm_alive http || fail "colovm died"
echo "PASS"
