#!/bin/bash
# A COLO pair on 127.0.0.1: app=dirty keeps rewriting its buffer on the
# primary; the secondary (same flags, same key) takes the first sync and then
# a checkpoint every 300 ms plus some on demand (x-colo-checkpoint). For at
# least 20 checkpoints the hash of the secondary's guest RAM right after it
# applied checkpoint N equals the hash of the primary's guest RAM in the
# pause of checkpoint N. query-colo-stats counts them by reason; the guest
# keeps running (its serial lines go on, no verification failure); a quit on
# the primary shuts the secondary down too.
# Both sides start from config files alone (colovm run --config FILE): the
# primary's checkpoint-interval and heartbeat-misses come from its file and
# rule the pair from its start (the secondary logs the heartbeat it got).
#
# Service side (issue #16): both sides have a real NOTIFY_SOCKET; READY=1
# arrives once per side and only once the pair is protected (the secondary
# says nothing while it waits; each READY's STATUS says "protected"), then
# STOPPING=1 at the end. The primary serves --metrics: scraped and parsed with
# prometheus_client while checkpoints go on: the
# checkpoints by reason, pages and bytes lie between query-colo-stats' read
# before and after, the pause histogram counts the scrape's checkpoints, the
# heartbeat's round trip is > 0 and sane (query-colo-status has it on both
# sides, colovmctl prints it).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
port=$((47900 + RANDOM % 90))
d=$TMP
head -c32 /dev/urandom >"$d/key"
PY=/usr/bin/python3 # Debian's, with python3-prometheus-client

notify_listen "$d/pri.notify" "$d/pri.nlog"
notify_listen "$d/sec.notify" "$d/sec.nlog"

ARGS_CONFIG="mem = 32
cmdline = app=dirty mb=8 rate=2
"
write_config "$d/sec.conf" "$d" sec secondary $CHAN:$port "peer-key = $d/key"
# (the primary's [vm] also names it and serves metrics)
ARGS_CONFIG="${ARGS_CONFIG}name = pair-test
metrics = tcp:127.0.0.1:0
" write_config "$d/pri.conf" "$d" pri primary $CHAN:$port "peer-key = $d/key" \
	"checkpoint-interval = 300" "heartbeat-misses = 20"
for f in sec pri; do
	"$COLOVM" check-config "$d/$f.conf" >"$d/$f.check" 2>&1 || fail "check-config $f.conf: $(cat "$d/$f.check")"
done
grep -q "valid: VM pair-test, primary" "$d/pri.check" || fail "check-config: $(cat "$d/pri.check")"

NOTIFY_SOCKET=$d/sec.notify start_secondary_config "$d" "$d/sec.conf"
q "$d/sec.sock" query-status | grep -q '"inmigrate"' || fail "the secondary is not inmigrate"
q "$d/sec.sock" query-colo-status | grep -q '"waiting"' || fail "the secondary is not waiting"
sleep 1 # (READY is decided every 200 ms)
! grep -q 'READY=1' "$d/sec.nlog" || fail "the secondary was READY while waiting: $(cat "$d/sec.nlog")"
NOTIFY_SOCKET=$d/pri.notify start_primary_config "$d" pri "$d/pri.conf"
wait_state "$d/pri.sock" protected 180 ||
	fail "no pair: $(q "$d/pri.sock" query-colo-status) $(cat "$d/pri.err" "$d/sec.err")"
note "paired: $(q "$d/pri.sock" query-colo-status)"
q "$d/sec.sock" query-colo-status | grep -q '"protected"' || fail "the secondary is not protected"
# Both run (or are in a checkpoint's pause, run state "colo").
q "$d/pri.sock" query-status | grep -qE '"status": "(running|colo)"' || fail "the primary is not running"
q "$d/sec.sock" query-status | grep -qE '"status": "(running|colo)"' ||
	fail "the secondary is not running: $(q "$d/sec.sock" query-status)"
# The file's tuning, in force from the start: QMP reads it back, and the
# secondary took the primary's heartbeat (100 ms, given up after 20 misses).
q "$d/pri.sock" query-migrate-parameters | grep -q '"checkpoint-interval": 300' ||
	fail "checkpoint-interval = 300 not in force: $(q "$d/pri.sock" query-migrate-parameters)"
grep -q 'heartbeat every 100 ms, the primary given up after 2000 ms' "$d/sec.err" ||
	fail "the secondary did not get heartbeat-misses = 20: $(grep heartbeat "$d/sec.err")"
q "$d/pri.sock" migrate-set-parameters x-colo-ram-digest=true >/dev/null
lines0=$(grep -c '^dirty: t=' "$d/pri.out" || true)

compare_digests "$d" 20 450 4
note "20 checkpoints compared, the last $LAST"
# each page's hash at a checkpoint, on both sides (what a mismatch names)
pages_differ "$d/pri.sock" "$d/sec.sock" "$d" "$LAST" | grep -q "^0 pages differ at checkpoint $LAST:" ||
	fail "page hashes at checkpoint $LAST: $(pages_differ "$d/pri.sock" "$d/sec.sock" "$d" "$LAST")"
old=$((LAST - 10)) # (its digest kept, its pages' hashes gone)
! q "$d/pri.sock" x-colo-ram-digest id=$old pages-file="$d/x.pages" 2>"$d/x.err" &&
	grep -q "No page hashes kept for checkpoint $old" "$d/x.err" ||
	fail "page hashes of checkpoint $old: $(cat "$d/x.err")"
stats=$(q "$d/pri.sock" query-colo-stats)
note "primary stats: $stats"
note "secondary stats: $(q "$d/sec.sock" query-colo-stats)"
n=$(echo "$stats" | jq_ 'd["checkpoints"]')
[ "$n" -ge 20 ] || fail "query-colo-stats counts $n checkpoints"
[ "$(echo "$stats" | jq_ 'd["by-reason"]["periodic"]')" -gt 0 ] || fail "no periodic checkpoint"
[ "$(echo "$stats" | jq_ 'd["by-reason"]["request"]')" -gt 0 ] || fail "no requested checkpoint"
[ "$(echo "$stats" | jq_ 'd["failed"]')" = 0 ] || fail "failed checkpoints"
[ "$(echo "$stats" | jq_ 'd["pages"]["total"] > 0 and d["pause"]["max-ms"] > 0')" = True ] ||
	fail "no pages or pause recorded"
# where the pauses go: the six parts, each >= 0, pages sent and the ack
# awaited in every one, and the parts of the last pause no longer than
# the longest pause
[ "$(echo "$stats" | jq_ '(sorted(d["pause-phases"]) == sorted(["stop", "disk", "ram", "device-state", "ack", "resume"])
	and all(v["mean"] >= 0 and v["last"] >= 0 for v in d["pause-phases"].values())
	and d["pause-phases"]["ram"]["mean"] > 0 and d["pause-phases"]["ack"]["mean"] > 0
	and sum(v["last"] for v in d["pause-phases"].values()) <= d["pause"]["max-ms"] + 0.01)')" = True ] ||
	fail "pause-phases: $(echo "$stats" | jq_ 'd.get("pause-phases")') (pause $(echo "$stats" | jq_ 'd["pause"]'))"
note "where the pauses go (mean ms): $(echo "$stats" | jq_ '", ".join("%s %.2f" % (k, v["mean"]) for k, v in d["pause-phases"].items())')"
[ "$(q "$d/sec.sock" query-colo-stats | jq_ 'd["checkpoints"]')" -ge 20 ] ||
	fail "the secondary applied fewer than 20 checkpoints"
"$CTL" --qmp "$d/pri.sock" colo-status >"$d/status.txt" || fail "colovmctl colo-status failed"
grep -q 'protected' "$d/status.txt" || fail "colo-status: $(cat "$d/status.txt")"
grep -qE '^heartbeat RTT: +last [0-9]+ us, min [0-9]+, avg [0-9]+, max [0-9]+ \([1-9][0-9]* samples\)' \
	"$d/status.txt" || fail "colo-status shows no heartbeat RTT"
cat "$d/status.txt" >&2

# --- systemd: one READY per side, sent while protected
for side in pri sec; do
	[ "$(grep -c 'READY=1' "$d/$side.nlog")" = 1 ] ||
		fail "$side: not exactly one READY=1: $(cat "$d/$side.nlog")"
done
grep 'READY=1' "$d/pri.nlog" | grep -q 'STATUS=primary: protected, paired with' ||
	fail "the primary's READY was not sent protected: $(cat "$d/pri.nlog")"
grep 'READY=1' "$d/sec.nlog" | grep -q 'STATUS=secondary: protected, paired with' ||
	fail "the secondary's READY was not sent protected: $(cat "$d/sec.nlog")"
note "READY: $(grep READY "$d/pri.nlog") / $(grep READY "$d/sec.nlog")"

# --- metrics: the same counters as query-colo-stats (checkpoints go on
# meanwhile: each figure lies between the stats read before the scrape and
# those read after it; one scrape is one instant: its pause histogram counts
# exactly its checkpoints)
MURL=$(grep -oE 'metrics: serving http://[^ ]+' "$d/pri.err" | grep -oE 'http://.*')
[ -n "$MURL" ] || fail "the primary does not say where its metrics are"
q "$d/pri.sock" query-colo-stats >"$d/stats0.json"
q "$d/pri.sock" query-colo-status >"$d/colo-status.json"
q "$d/sec.sock" query-colo-status >"$d/sec-status.json"
$PY - "$MURL" "$d/stats0.json" "$d/colo-status.json" "$d/sec-status.json" "$CTL" "$d/pri.sock" <<'PY' ||
import json, subprocess, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen(sys.argv[1], timeout=20).read().decode()
s1 = json.loads(subprocess.check_output([sys.argv[5], "--qmp", sys.argv[6], "query-colo-stats"]))
s0, cs, ss = (json.load(open(f)) for f in sys.argv[2:5])
fams = {f.name: f for f in text_string_to_metric_families(text)}
def sample(metric, **labels):
    for f in fams.values():
        for s in f.samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError("no sample %s%s" % (metric, labels))
def check(cond, what):
    if not cond:
        sys.exit("metrics: " + what)
def between(v, a, b, what):
    check(a <= v <= b, "%s: %s, query-colo-stats %s before and %s after" % (what, v, a, b))
for f in fams.values():
    check(f.documentation, "no HELP for " + f.name)
check(fams["colovm_checkpoints"].type == "counter", "checkpoints_total is not a counter")
total = 0
for reason in s0["by-reason"]:
    v = sample("colovm_checkpoints_total", reason=reason)
    between(v, s0["by-reason"][reason], s1["by-reason"][reason], "checkpoints{%s}" % reason)
    total += v
check(sample("colovm_checkpoint_failures_total") == s1["failed"] == 0, "failures")
check(fams["colovm_checkpoint_pause_seconds"].type == "histogram", "pause: not a histogram")
count = sample("colovm_checkpoint_pause_seconds_count")
check(count == total > 0, "pause count %s, checkpoints %s" % (count, total))
check(sample("colovm_checkpoint_pause_seconds_bucket", le="+Inf") == count, "+Inf bucket")
buckets = sorted((float(s.labels["le"]), s.value) for s in fams["colovm_checkpoint_pause_seconds"].samples
                 if s.name.endswith("_bucket"))
check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "buckets not cumulative")
check(sample("colovm_checkpoint_pause_seconds_sum") > 0, "pause sum")
between(sample("colovm_checkpoint_pages_total"), s0["pages"]["total"], s1["pages"]["total"], "pages")
between(sample("colovm_checkpoint_bytes_total"), s0["bytes"]["total"], s1["bytes"]["total"], "bytes")
check(s0["pages"]["total"] > 0, "no pages")
rtt = sample("colovm_heartbeat_rtt_seconds")
check(0 < rtt < 5, "heartbeat RTT %s s" % rtt)
for name, s in (("primary", cs), ("secondary", ss)):
    r = s["heartbeat-rtt"]
    check(r["samples"] > 0 and 0 < r["min-us"] <= r["avg-us"] <= r["max-us"] < 5000000,
          "%s heartbeat-rtt %s" % (name, r))
check(sample("colovm_colo_role", role="primary") == 1, "role")
check(sample("colovm_colo_state", state="protected") == 1, "colo state")
check(sum(s.value for s in fams["colovm_run_state"].samples) == 1, "one run state")
check(sample("colovm_run_state", state="running") + sample("colovm_run_state", state="colo") == 1,
      "run state neither running nor colo")
check(sample("colovm_build_info", name="pair-test") == 1, "build info")
for v in ("match", "mismatch", "timeout", "unverified", "passthrough"):
    sample("colovm_compare_packets_total", verdict=v)
sample("colovm_held_packets")
check(sample("colovm_failovers_total", reason="heartbeat") == 0, "failovers")
print("metrics: %d checkpoints, pause count %d, rtt %.6f s (primary avg %d us, secondary avg %d us)"
      % (total, count, rtt, cs["heartbeat-rtt"]["avg-us"], ss["heartbeat-rtt"]["avg-us"]),
      file=sys.stderr)
PY
	fail "metrics do not match query-colo-stats"

# The guest goes on: more lines, no lost write, on either side.
lines1=$(grep -c '^dirty: t=' "$d/pri.out" || true)
[ "$lines1" -gt "$lines0" ] || fail "the primary's guest printed nothing during the checkpoints"
! grep -q 'verify failed' "$d/pri.out" "$d/sec.out" || fail "the guest lost a write"
q "$d/pri.sock" query-colo-status | grep -q '"protected"' || fail "no longer protected"

# An orderly end on the primary ends the secondary (FailoverNotice).
q "$d/pri.sock" quit >/dev/null || true
wait_exit $PRI_PID 30 || true
st=0
wait_exit $SEC_PID 30 || st=$?
[ $st = 0 ] || fail "the secondary exited $st after the primary quit: $(tail -3 "$d/sec.err")"
grep -q 'the primary ends the pair' "$d/sec.err" || fail "the secondary did not say why it ended"
grep -q 'STOPPING=1' "$d/pri.nlog" || fail "no STOPPING=1 from the primary"
grep -q 'STOPPING=1' "$d/sec.nlog" || fail "no STOPPING=1 from the secondary"
no_crash "$d/pri.err" "$d/sec.err"
echo PASS
