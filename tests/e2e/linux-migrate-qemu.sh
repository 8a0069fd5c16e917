#!/bin/bash
# linux-migrate.sh with QEMU microvm as the VMM (same kernel, same initramfs).
VMM=qemu exec bash "$(dirname "$0")/linux-migrate.sh"
