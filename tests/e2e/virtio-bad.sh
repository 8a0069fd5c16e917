# Bad --net/--disk specs and unusable backends: one clear line on stderr,
# exit status 2, no crash. Misprogrammed queues (rings outside RAM, loops,
# indirect-in-indirect, bad lengths, huge queue sizes) are driven by the
# hw.virtio unit test through the same register interface; the test guest
# has no app that misprograms its own devices.
source "$(dirname "$0")/lib.sh"

run_bad "--net without value" "needs an argument" "$COLOVM" run --kernel "$TESTGUEST" --net
run_bad "--disk without value" "needs an argument" "$COLOVM" run --kernel "$TESTGUEST" --disk

need_kvm
K=(run --kernel "$TESTGUEST" --cmdline app=hello)
truncate -s 1M "$TMP/disk.img"
run_bad "net kind" "--net bogus: expected tap=IFNAME or hook" "$COLOVM" "${K[@]}" --net bogus
run_bad "net empty" "--net : empty" "$COLOVM" "${K[@]}" --net ""
run_bad "net tap no name" "expected tap=IFNAME" "$COLOVM" "${K[@]}" --net tap=
run_bad "net long ifname" "expected tap=IFNAME" "$COLOVM" "${K[@]}" --net tap=abcdefghijklmnopqrstuvwxyz
run_bad "net bad mac" "bad MAC address 'zz:54:00:12:34:56'" \
	"$COLOVM" "${K[@]}" --net hook,mac=zz:54:00:12:34:56
run_bad "net multicast mac" "bad MAC address" "$COLOVM" "${K[@]}" --net hook,mac=01:00:5e:00:00:01
run_bad "net unknown option" "unknown option 'queues'" "$COLOVM" "${K[@]}" --net hook,queues=4
run_bad "disk missing" "--disk $TMP/nope.img: cannot open: No such file" \
	"$COLOVM" "${K[@]}" --disk "$TMP/nope.img"
run_bad "disk directory" "--disk $TMP: cannot open: Is a directory" "$COLOVM" "${K[@]}" --disk "$TMP"
run_bad "disk unknown option" "unknown option 'rw'" "$COLOVM" "${K[@]}" --disk "$TMP/disk.img,rw"
run_bad "disk no path" "expected PATH" "$COLOVM" "${K[@]}" --disk ,readonly
args=()
for i in $(seq 11); do args+=(--disk "$TMP/disk.img,readonly"); done
run_bad "too many devices" "too many virtio devices" "$COLOVM" "${K[@]}" "${args[@]}"
if [ "$(id -u)" != 0 ]; then
	run_bad "tap without permission" "--net tap=colovmx0: cannot" "$COLOVM" "${K[@]}" --net tap=colovmx0
fi

# Devices a guest ignores do not disturb it (the test guest takes at most 8).
args=(--net hook)
for i in $(seq 7); do args+=(--disk "$TMP/disk.img,readonly"); done
expect_status 0 "$COLOVM" "${K[@]}" --serial "file:$TMP/console" "${args[@]}"
grep -q "testguest: hello, world" "$TMP/console" || fail "guest did not run with 8 devices"
echo "ok: 8 idle devices, guest ran"
# Ten is colovm's limit (IRQ pins 5, 6, 7, 9..15): all announced.
args+=(--disk "$TMP/disk.img,readonly" --disk "$TMP/disk.img,readonly")
"$COLOVM" "${K[@]}" --serial "file:$TMP/console" "${args[@]}" 2>"$TMP/err" || true
! grep -qE 'AddressSanitizer|runtime error' "$TMP/err" || fail "10 devices: crashed"
grep -q "virtio_mmio.device=512@0xd0009000:15" "$TMP/console" || fail "tenth device not announced"
echo "ok: 10 devices announced"
