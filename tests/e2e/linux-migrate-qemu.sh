#!/bin/bash
# linux-migrate.sh (migration, then snapshot and restore) with QEMU microvm
# as the VMM (same kernel, same initramfs).
VMM=qemu exec bash "$(dirname "$0")/linux-migrate.sh"
