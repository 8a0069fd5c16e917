#!/bin/bash
# linux-shutdown.sh with QEMU microvm as the VMM: system_powerdown over QMP.
VMM=qemu exec bash "$(dirname "$0")/linux-shutdown.sh"
