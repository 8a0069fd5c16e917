# `cmake --install` into a temporary prefix puts exactly the expected files
# in place: the binaries (that run), the systemd units (their ExecStart=
# the installed colovm, verified by systemd-analyze with the installed man
# pages on MANPATH, so Documentation=man:colovm(1) resolves too), the man
# pages (rendered by man without a warning) and the example configs (each
# valid for colovm check-config once its paths exist).
source "$(dirname "$0")/lib.sh"
: "${BUILD:?}" "${SRC:?}"
p=$TMP/prefix
cmake --install "$BUILD" --prefix "$p" >"$TMP/install.log" || fail "cmake --install: $(cat "$TMP/install.log")"
(cd "$p" && find . -type f -o -type l | sed 's|^\./||' | sort) >"$TMP/got"
cat >"$TMP/want" <<'LIST'
bin/colovm
bin/colovmctl
lib/ocf/resource.d/colovm/colovm-witness
lib/systemd/system/colovm-witness.service
lib/systemd/system/colovm@.service
sbin/colovm-net
share/doc/colovm/examples/primary.conf
share/doc/colovm/examples/secondary.conf
share/doc/colovm/examples/witness.conf
share/man/man1/colovm.1
share/man/man1/colovmctl.1
LIST
diff -u "$TMP/want" "$TMP/got" || fail "installed files differ from the expected list"
"$p/bin/colovm" --version | grep -q '^colovm ' || fail "the installed colovm does not run"
"$p/bin/colovmctl" --help | grep -q 'Usage: colovmctl' || fail "the installed colovmctl does not run"

# the man pages: man renders them, groff finds nothing to warn about
for m in colovm colovmctl; do
	f=$p/share/man/man1/$m.1
	groff -man -ww -z "$f" 2>"$TMP/$m.groff" || fail "groff: $m.1: $(cat "$TMP/$m.groff")"
	[ ! -s "$TMP/$m.groff" ] || fail "groff warns on $m.1: $(cat "$TMP/$m.groff")"
	if command -v man >/dev/null; then
		MANWIDTH=80 man -l "$f" >"$TMP/$m.txt" 2>"$TMP/$m.err" || fail "man -l $m.1: $(cat "$TMP/$m.err")"
		[ ! -s "$TMP/$m.err" ] || fail "man -l $m.1 warns: $(cat "$TMP/$m.err")"
		grep -q "^NAME" "$TMP/$m.txt" && grep -q "^SYNOPSIS" "$TMP/$m.txt" ||
			fail "$m.1 renders without NAME/SYNOPSIS"
	fi
done
grep -q 'check-config FILE' "$TMP/colovm.txt" || fail "colovm(1) has no check-config"
# every `colovm run` flag and its key are in colovm(1)
for f in $("$p/bin/colovm" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+' | sort -u); do
	case $f in --help | --version) continue ;; esac
	grep -q -- "$f" "$TMP/colovm.txt" || fail "colovm(1) does not document $f"
done

# the units point at the installed binary and pass systemd-analyze verify
grep -qx "ExecStart=$p/bin/colovm run --config /etc/colovm/%i.conf" "$p/lib/systemd/system/colovm@.service" ||
	fail "colovm@.service: $(grep ExecStart "$p/lib/systemd/system/colovm@.service")"
grep -qx "ExecStart=$p/bin/colovm witness --config /etc/colovm/witness.conf" \
	"$p/lib/systemd/system/colovm-witness.service" || fail "colovm-witness.service: ExecStart"
if command -v systemd-analyze >/dev/null; then
	mkdir "$TMP/units"
	cp "$p/lib/systemd/system/colovm@.service" "$TMP/units/colovm@kv.service"
	cp "$p/lib/systemd/system/colovm-witness.service" "$TMP/units/"
	MANPATH=$p/share/man systemd-analyze verify "$TMP/units/colovm@kv.service" \
		"$TMP/units/colovm-witness.service" >"$TMP/verify" 2>&1 ||
		fail "systemd-analyze verify: $(cat "$TMP/verify")"
	[ ! -s "$TMP/verify" ] || fail "systemd-analyze verify warns: $(cat "$TMP/verify")"
else
	fail "no systemd-analyze (deploy/install-deps installs systemd)"
fi

# the example configs: valid once their kernel and key exist
head -c32 /dev/urandom >"$TMP/peer.key"
for f in primary secondary witness; do
	sed -e "s|/var/lib/colovm/kv/testguest.elf|$TESTGUEST|" -e "s|/etc/colovm/peer.key|$TMP/peer.key|" \
		"$p/share/doc/colovm/examples/$f.conf" >"$TMP/$f.conf"
	"$p/bin/colovm" check-config "$TMP/$f.conf" >"$TMP/$f.out" 2>&1 ||
		fail "check-config $f.conf: $(cat "$TMP/$f.out")"
	grep -q "valid" "$TMP/$f.out" || fail "check-config $f.conf said: $(cat "$TMP/$f.out")"
done
echo PASS
