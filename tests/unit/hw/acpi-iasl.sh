# hw.acpi-iasl: the tables test_acpi builds (2 vCPUs; virtio-mmio at
# 0xd0000000 IRQ 5 and 0xd0001000 IRQ 6), written out and disassembled by
# acpica-tools' iasl, an independent reader: each must disassemble without
# an error or warning, the DSDT must declare both LNRO0005 devices with
# their window and interrupt, the UART and the power button (a Generic
# Event Device on GSI 16 whose _EVT notifies \_SB.PWRB, a PNP0C0C), the
# MADT both LAPICs and the IOAPIC, the FADT hardware-reduced with its reset
# register.
set -euo pipefail
test_acpi=$1
if ! command -v iasl >/dev/null; then
	echo "SKIP: *** iasl not found: install acpica-tools (deploy/install-deps) ***" >&2
	exit 77
fi
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d /tmp/colovm-acpi.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$test_acpi" --dump "$dir" || fail "test_acpi --dump failed"
cd "$dir"
for t in XSDT FACP APIC DSDT; do
	[ -s $t.dat ] || fail "no $t table dumped"
	iasl -d $t.dat >$t.log 2>&1 || { cat $t.log; fail "iasl -d $t.dat exited $?"; }
	if grep -Eiq 'error|warning' $t.log; then
		cat $t.log
		fail "iasl reports problems in $t"
	fi
	[ -s $t.dsl ] || fail "iasl wrote no $t.dsl"
done

# Collapse the disassembly (without its // comments) so that a multi-line
# ASL construct is one line.
flat() { sed 's|//.*||' "$1" | tr -s ' \n' ' '; }

dsdt=$(flat DSDT.dsl)
for dev in "VR00 0xD0000000 0x00000005" "VR01 0xD0001000 0x00000006"; do
	set -- $dev
	re="Device \($1\) \{ Name \(_HID, \"LNRO0005\"\).*"
	re+="Memory32Fixed \(ReadWrite, $2, 0x00000200, \) "
	re+="Interrupt \(ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, \) \{ $3, \}"
	grep -Eq "$re" <<<"$dsdt" || { cat DSDT.dsl; fail "DSDT: no $1 (LNRO0005 at $2, IRQ $3)"; }
done
[ "$(grep -c '"LNRO0005"' DSDT.dsl)" = 2 ] || fail "DSDT: expected exactly 2 LNRO0005 devices"
grep -Eq 'EisaId \("PNP0501"\).*IO \(Decode16, 0x03F8, 0x03F8, 0x01, 0x08, \) IRQNoFlags \(\) \{4\}' \
	<<<"$dsdt" || { cat DSDT.dsl; fail "DSDT: no COM1 (PNP0501, 0x3f8, IRQ 4)"; }

# The power button: \_SB.GED (ACPI0013) on GSI 16, edge, active high, whose
# _EVT(Arg0) notifies \_SB.PWRB with 0x80 (pressed) when Arg0 is its GSI,
# and \_SB.PWRB, a PNP0C0C. Both once, both in \_SB.
re='Scope \(\\_SB\) \{.* Device \(GED\) \{ Name \(_HID, "ACPI0013" /\* Generic Event Device \*/\) '
re+='Name \(_UID, Zero\) Name \(_CRS, ResourceTemplate \(\) \{ '
re+='Interrupt \(ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, \) \{ 0x00000010, \} \}\) '
re+='Method \(_EVT, 1, NotSerialized\) \{ If \(\(Arg0 == 0x10\)\) \{ Notify \(\\_SB\.PWRB, 0x80\) \} \} \} '
re+='Device \(PWRB\) \{ Name \(_HID, EisaId \("PNP0C0C"\) /\* Power Button Device \*/\) Name \(_UID, Zero\) \} \} \}'
grep -Eq "$re" <<<"$dsdt" || { cat DSDT.dsl; fail "DSDT: no GED on GSI 16 notifying \\_SB.PWRB (PNP0C0C) in \\_SB"; }
[ "$(grep -c '"ACPI0013"' DSDT.dsl)" = 1 ] || fail "DSDT: expected exactly 1 Generic Event Device"
[ "$(grep -c 'EisaId ("PNP0C0C")' DSDT.dsl)" = 1 ] || fail "DSDT: expected exactly 1 power button"

grep -Eq 'Name \(\\_S5, Package \(0x02\) \{ 0x05, Zero \}\)' <<<"$dsdt" ||
	{ cat DSDT.dsl; fail "DSDT: no \\_S5 (soft-off sleep type 5)"; }

apic=$(flat APIC.dsl)
for id in 00 01; do
	grep -Eq "Subtable Type : 00 \[Processor Local APIC\] .{0,80}Processor ID : $id .{0,40}Local Apic ID : $id .{0,80}Processor Enabled : 1" <<<"$apic" ||
		{ cat APIC.dsl; fail "MADT: no enabled LAPIC $id"; }
done
[ "$(grep -c 'Processor Local APIC\]' APIC.dsl)" = 2 ] || fail "MADT: expected exactly 2 LAPICs"
grep -Eq 'Subtable Type : 01 \[I/O APIC\] .{0,160}Address : FEC00000 .{0,40}Interrupt : 00000000' \
	<<<"$apic" || { cat APIC.dsl; fail "MADT: no IOAPIC at 0xfec00000 with GSI base 0"; }

facp=$(flat FACP.dsl)
grep -q 'Hardware Reduced (V5) : 1' <<<"$facp" || fail "FADT: not hardware-reduced"
for reg in "Sleep Control Register" "Sleep Status Register"; do
	grep -Eq "$reg : \[Generic Address Structure\] .{0,40}Space ID : 01 \[SystemIO\].{0,200}Address : 00000000000003C0 " \
		<<<"$facp" || { cat FACP.dsl; fail "FADT: $reg is not port 0x3c0"; }
done
grep -Eq 'Reset Register Supported \(V2\) : 1' <<<"$facp" || fail "FADT: no reset register"
grep -Eq 'Space ID : 01 \[SystemIO\].{0,200}Address : 0000000000000064 .{0,40}Value to cause reset : FE' \
	<<<"$facp" || fail "FADT: reset register is not port 0x64 <- 0xfe"
[ "$(grep -c 'ACPI Table Address' XSDT.dsl)" = 2 ] || fail "XSDT: expected 2 table addresses"
echo "ok: iasl disassembles XSDT, FADT, MADT and DSDT cleanly; devices, power button, CPUs and IOAPIC as built"
