/* SPDX-License-Identifier: GPL-2.0-only */
/* Ethernet II: dispatch by EtherType, frames for our MAC or broadcast only. */
#include "net.h"
#include "../virtio-net.h"

static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

void eth_input(uint8_t *frame, size_t len)
{
	if (len < ETH_HLEN) {
		net_stats.eth_short++;
		return;
	}
	if (memcmp(frame, net_cfg.mac, 6) && memcmp(frame, broadcast, 6)) {
		net_stats.eth_other++;
		return;
	}
	switch (get16(frame + 12)) {
	case ETH_P_IP:
		ip_input(frame + 6, frame + ETH_HLEN, len - ETH_HLEN);
		break;
	case ETH_P_ARP:
		arp_input(frame + ETH_HLEN, len - ETH_HLEN);
		break;
	default:
		net_stats.eth_other++;
	}
}

uint8_t *eth_alloc(void)
{
	uint8_t *f = vnet_tx_buf();

	if (!f)
		net_stats.tx_no_buf++;
	return f;
}

void eth_send(uint8_t *frame, const uint8_t dst[6], uint16_t type, size_t payload_len)
{
	memcpy(frame, dst, 6);
	memcpy(frame + 6, net_cfg.mac, 6);
	put16(frame + 12, type);
	net_stats.tx_frames++;
	vnet_tx_send(frame, ETH_HLEN + payload_len);
}

void eth_drop(uint8_t *frame)
{
	vnet_tx_drop(frame);
}
