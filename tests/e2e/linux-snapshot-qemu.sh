#!/bin/bash
# linux-snapshot.sh with QEMU microvm as the VMM (same kernel, same initramfs).
VMM=qemu exec bash "$(dirname "$0")/linux-snapshot.sh"
