#!/bin/bash
# linux-guest.sh's checks with QEMU microvm as the VMM (same kernel, same
# initramfs, virtio-mmio devices from QEMU's ACPI DSDT).
VMM=qemu exec bash "$(dirname "$0")/linux-guest.sh"
