/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ARP (RFC 826) for IPv4 over Ethernet: answer requests for our address,
 * cache senders (of ARP and of IPv4 frames from on-link hosts) in a small
 * table replaced round-robin, and ask for unknown next hops. A packet whose
 * next hop is unknown is dropped; the peer's retransmission finds the entry.
 */
#include "net.h"

#define ARP_ENTRIES  32
#define ARP_REQUEST  1
#define ARP_REPLY    2
#define ARP_LEN	     28
#define ARP_RETRY_US 100000

struct arp_entry {
	uint32_t ip;
	uint8_t mac[6];
	bool valid;
};

static struct arp_entry cache[ARP_ENTRIES];
static unsigned int next_victim;
static uint32_t last_asked;
static uint64_t last_asked_at;
static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

void arp_learn(uint32_t ip, const uint8_t mac[6])
{
	struct arp_entry *e;

	if (!ip || (mac[0] & 1))
		return;
	for (unsigned int i = 0; i < ARP_ENTRIES; i++) {
		if (cache[i].valid && cache[i].ip == ip) {
			memcpy(cache[i].mac, mac, 6);
			return;
		}
	}
	e = &cache[next_victim];
	next_victim = (next_victim + 1) % ARP_ENTRIES;
	e->ip = ip;
	memcpy(e->mac, mac, 6);
	e->valid = true;
}

static void arp_send(uint16_t op, const uint8_t tha[6], uint32_t tpa)
{
	uint8_t *f = eth_alloc(), *p;

	if (!f)
		return;
	p = f + ETH_HLEN;
	put16(p, 1); /* hardware: Ethernet */
	put16(p + 2, ETH_P_IP);
	p[4] = 6;
	p[5] = 4;
	put16(p + 6, op);
	memcpy(p + 8, net_cfg.mac, 6);
	put32(p + 14, net_cfg.ip);
	memcpy(p + 18, tha, 6);
	put32(p + 24, tpa);
	eth_send(f, op == ARP_REQUEST ? broadcast : tha, ETH_P_ARP, ARP_LEN);
}

void arp_input(const uint8_t *p, size_t len)
{
	uint32_t spa, tpa;
	uint16_t op;

	if (len < ARP_LEN || get16(p) != 1 || get16(p + 2) != ETH_P_IP || p[4] != 6 || p[5] != 4) {
		net_stats.arp_bad++;
		return;
	}
	op = get16(p + 6);
	spa = get32(p + 14);
	tpa = get32(p + 24);
	if (tpa != net_cfg.ip)
		return;
	arp_learn(spa, p + 8);
	if (op == ARP_REQUEST) {
		net_stats.arp_requests++;
		arp_send(ARP_REPLY, p + 8, spa);
	} else if (op == ARP_REPLY) {
		net_stats.arp_replies++;
	}
}

bool arp_resolve(uint32_t ip, uint8_t mac[6])
{
	uint64_t now;

	if (ip == 0xffffffffu || ip == (net_cfg.ip | ~net_cfg.mask)) {
		memcpy(mac, broadcast, 6);
		return true;
	}
	for (unsigned int i = 0; i < ARP_ENTRIES; i++) {
		if (cache[i].valid && cache[i].ip == ip) {
			memcpy(mac, cache[i].mac, 6);
			return true;
		}
	}
	net_stats.arp_unresolved++;
	now = now_us();
	if (ip != last_asked || now - last_asked_at >= ARP_RETRY_US) {
		last_asked = ip;
		last_asked_at = now;
		arp_send(ARP_REQUEST, (const uint8_t[6]){0}, ip);
	}
	return false;
}
