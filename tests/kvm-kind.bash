# kvm_kind: how this machine offers KVM (source it; tests/run, tests/bench/run
# and tests/e2e/lib.sh ask it):
#   native  VT-x/AMD-V behind a usable /dev/kvm
#   pvm     /dev/kvm is kvm-pvm, KVM without hardware virtualization: guest
#           CPL 3 runs natively, guest CPL 0 is emulated at ~1.5 M
#           instructions/s (the test guest runs; Debian's kernel would take
#           half an hour to decompress itself)
#   none    no usable /dev/kvm
kvm_kind() {
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		echo none
	elif [ -d /sys/module/kvm_pvm ]; then
		echo pvm
	else
		echo native
	fi
}
