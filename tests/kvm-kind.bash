# kvm_kind: how this machine offers KVM (source it; tests/run, tests/bench/run
# and tests/e2e/lib.sh ask it):
#   native  VT-x/AMD-V behind a usable /dev/kvm
#   pvm     /dev/kvm is kvm-pvm, KVM without hardware virtualization: guest
#           CPL 3 runs natively, guest CPL 0 is emulated at ~1.5 M
#           instructions/s (the test guest runs; Debian's kernel would take
#           half an hour to decompress itself)
#   none    no usable /dev/kvm
# COLOVM_KVM_KIND=none|pvm|native says it instead (none: a machine with
# /dev/kvm runs the suite as one without would, every KVM test in a host
# VM; tests/hostvm drops it at the host VM's door, where KVM is nested).
kvm_kind() {
	case ${COLOVM_KVM_KIND:-} in
	none | pvm | native)
		echo "$COLOVM_KVM_KIND"
		return
		;;
	"") ;;
	*) echo "COLOVM_KVM_KIND=$COLOVM_KVM_KIND: expected none, pvm or native" >&2 ;;
	esac
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		echo none
	elif [ -d /sys/module/kvm_pvm ]; then
		echo pvm
	else
		echo native
	fi
}
