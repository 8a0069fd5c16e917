#!/bin/bash
# colovmctl drill refuses what it cannot drill, before it does anything:
# bad usage, sockets that do not answer, a socket that is not colovm's QMP:
# one clear line (and the --help hint for usage), exit 2. No guest needed
# (the drills themselves run in e2e.colo-drills, colo-heartbeat and
# colo-disk, inside a host VM).
source "$(dirname "$0")/lib.sh"
CTL=${COLOVMCTL:?}

"$CTL" drill --help >"$TMP/help" || fail "drill --help exited $?"
for w in failover secondary-loss link-cut 'VERDICT: PASS' 'Exit status'; do
	grep -q -- "$w" "$TMP/help" || fail "drill --help does not mention '$w'"
done
run_bad "no drill" "which drill\\? failover, secondary-loss or link-cut" "$CTL" drill \
	--primary a --secondary b
run_bad "unknown drill" "unknown drill 'meteor'" "$CTL" drill meteor --primary a --secondary b
run_bad "two drills" "one drill at a time, not also 'link-cut'" "$CTL" drill failover link-cut \
	--primary a --secondary b
run_bad "no primary" "--primary PSOCK and --secondary SSOCK are required" "$CTL" drill failover \
	--secondary b
run_bad "no secondary" "--primary PSOCK and --secondary SSOCK are required" "$CTL" drill \
	secondary-loss -p a
run_bad "link-cut without link" "--link IFACE is required for link-cut" "$CTL" drill link-cut \
	-p a -s b
run_bad "link with failover" "--link IFACE is for link-cut only" "$CTL" drill failover \
	-p a -s b --link eth0
run_bad "bad timeout" "bad --timeout '0' \\(1 to 3600\\)" "$CTL" drill failover -p a -s b -t 0
run_bad "unknown option" "colovmctl drill: unrecognized option '--force'" "$CTL" drill failover -p a -s b --force
run_bad "no such socket" "cannot connect to $TMP/nope.sock: No such file or directory" \
	"$CTL" drill failover --primary "$TMP/nope.sock" --secondary "$TMP/nope2.sock"

# A UNIX socket whose server is no colovm: it greets with something else.
python3 - "$TMP/fake.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b'{"hello": "not qmp"}\n')
    c.close()
PY
on_exit "kill $! 2>/dev/null"
for _ in $(seq 50); do [ -S "$TMP/fake.sock" ] && break; sleep 0.1; done
run_bad "not QMP" "no QMP greeting from $TMP/fake.sock" \
	"$CTL" drill failover --primary "$TMP/fake.sock" --secondary "$TMP/fake.sock"
run_bad "link-cut, not QMP" "no QMP greeting from $TMP/fake.sock" \
	"$CTL" drill link-cut -p "$TMP/fake.sock" -s "$TMP/fake.sock" -l lo
echo PASS
