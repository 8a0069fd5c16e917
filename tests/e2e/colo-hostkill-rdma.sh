#!/bin/bash
# e2e.colo-hostkill with the pair's channel over rdma: (Soft-RoCE, rdma_rxe,
# on each host VM's bridge: the checkpoints' pages are RDMA WRITEs in UDP
# across the link between the two host VMs): the pair forms, checkpoints,
# hands the guest over with migrate --continue, and its heartbeat notices a
# host killed outright, as over TCP. The survivor's rxe counters must show
# the traffic.
CHAN=rdma exec bash "$(dirname "$0")/colo-hostkill.sh"
