// SPDX-License-Identifier: GPL-2.0-only
/*
 * Frame codec: the fixed header and sealed/opened control frames.
 *
 * Control frames are MAC'd with Poly1305 under a one-time key per frame,
 * BLAKE2b-256 keyed with the direction's session key over "ctrl" and the
 * frame's sequence number (unique per direction and session, so no key
 * tags two frames). Keyed BLAKE2b over the whole frame (wire version 1) ran
 * at 0.83 GB/s and, once a replicated disk's blocks rode in DiskWrite
 * frames, took half a core on each side of a pair writing 300 MB/s; the
 * per-frame key costs one BLAKE2b of 12 bytes, and Poly1305 runs at 10-12
 * GB/s through libcrypto (mac.c), 3.8 through libsodium, which small frames
 * use to skip libcrypto's context set-up. Bulk data uses the same Poly1305
 * with a one-time key per epoch and stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transport/internal.h"

void frame_hdr_encode(uint8_t out[TRANSPORT_HDR_LEN], const struct frame_hdr *h)
{
	for (int i = 0; i < 4; i++) {
		out[0 + i] = (uint8_t)(h->magic >> (8 * i));
		out[8 + i] = (uint8_t)(h->length >> (8 * i));
		out[12 + i] = (uint8_t)(h->flags >> (8 * i));
	}
	out[4] = (uint8_t)h->version;
	out[5] = (uint8_t)(h->version >> 8);
	out[6] = (uint8_t)h->type;
	out[7] = (uint8_t)(h->type >> 8);
	put_le64(out + 16, h->seq);
}

void frame_hdr_decode(const uint8_t in[TRANSPORT_HDR_LEN], struct frame_hdr *h)
{
	h->magic = h->length = h->flags = 0;
	for (int i = 0; i < 4; i++) {
		h->magic |= (uint32_t)in[0 + i] << (8 * i);
		h->length |= (uint32_t)in[8 + i] << (8 * i);
		h->flags |= (uint32_t)in[12 + i] << (8 * i);
	}
	h->version = (uint16_t)(in[4] | in[5] << 8);
	h->type = (uint16_t)(in[6] | in[7] << 8);
	h->seq = get_le64(in + 16);
}

int frame_check_ctrl_hdr(const struct frame_hdr *h, size_t *frame_len)
{
	if (h->magic != TRANSPORT_FRAME_MAGIC)
		return -EPROTO;
	if (h->version != TRANSPORT_WIRE_VERSION)
		return -EPROTONOSUPPORT;
	if (h->length > TRANSPORT_MAX_MSG)
		return -EMSGSIZE;
	if (h->type == 0 || h->type >= TRANSPORT_FRAME_BULK_DATA || h->flags != 0)
		return -EPROTO;
	*frame_len = TRANSPORT_HDR_LEN + (size_t)h->length + TRANSPORT_MAC_LEN;
	return 0;
}

/* Frames this long and longer go through libcrypto's faster Poly1305 (a
 * context set up per frame); shorter ones through libsodium's. */
#define FRAME_MAC_OSSL_MIN (16u << 10)

void tp_frame_key(const uint8_t key[32], uint64_t seq, uint8_t out[crypto_onetimeauth_KEYBYTES])
{
	uint8_t in[12] = {'c', 't', 'r', 'l'};

	put_le64(in + 4, seq);
	crypto_generichash(out, crypto_onetimeauth_KEYBYTES, in, sizeof(in), key, 32);
}

/* buf: a header (whose seq picks the one-time key) and its payload */
static void frame_mac(const uint8_t *buf, size_t len, const uint8_t *key,
		      uint8_t out[TRANSPORT_MAC_LEN])
{
	uint8_t k[crypto_onetimeauth_KEYBYTES];

	tp_frame_key(key, get_le64(buf + 16), k);
	if (len >= FRAME_MAC_OSSL_MIN) {
		struct tp_poly p = {0};

		tp_poly_init(&p, k);
		tp_poly_update_always(&p, buf, len);
		tp_poly_final(&p, out);
		tp_poly_free(&p);
	} else {
		crypto_onetimeauth(out, buf, len, k);
	}
	sodium_memzero(k, sizeof(k));
}

int frame_open(const uint8_t *buf, size_t len, const uint8_t *key, uint64_t expect_seq,
	       transport_msg **out)
{
	struct frame_hdr h;
	size_t flen;
	int ret;

	if (len < TRANSPORT_HDR_LEN + TRANSPORT_MAC_LEN)
		return -EPROTO;
	frame_hdr_decode(buf, &h);
	ret = frame_check_ctrl_hdr(&h, &flen);
	if (ret)
		return ret;
	if (flen != len)
		return -EPROTO;
	if (key) {
		uint8_t mac[TRANSPORT_MAC_LEN];

		frame_mac(buf, len - TRANSPORT_MAC_LEN, key, mac);
		if (sodium_memcmp(mac, buf + len - TRANSPORT_MAC_LEN, TRANSPORT_MAC_LEN))
			return -EBADMSG;
	}
	if (h.seq != expect_seq)
		return -EBADMSG;

	transport_msg *m = colovm__transport__msg__unpack(NULL, h.length, buf + TRANSPORT_HDR_LEN);
	if (!m)
		return -EPROTO;
	/* A body we do not know arrives as NOT_SET; the header says which. */
	if (m->body_case != COLOVM__TRANSPORT__MSG__BODY__NOT_SET && m->body_case != h.type) {
		colovm__transport__msg__free_unpacked(m, NULL);
		return -EPROTO;
	}
	*out = m;
	return 0;
}

int frame_seal(const transport_msg *msg, uint16_t version, uint64_t seq, const uint8_t *key,
	       uint8_t **out, size_t *out_len)
{
	size_t plen = colovm__transport__msg__get_packed_size(msg);
	struct frame_hdr h = {
	    .magic = TRANSPORT_FRAME_MAGIC,
	    .version = version,
	    .type = (uint16_t)msg->body_case,
	    .length = (uint32_t)plen,
	    .seq = seq,
	};
	size_t len = TRANSPORT_HDR_LEN + plen + TRANSPORT_MAC_LEN;
	uint8_t *buf;

	if (plen > TRANSPORT_MAX_MSG)
		return -EMSGSIZE;
	if (msg->body_case == COLOVM__TRANSPORT__MSG__BODY__NOT_SET)
		return -EINVAL;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	frame_hdr_encode(buf, &h);
	colovm__transport__msg__pack(msg, buf + TRANSPORT_HDR_LEN);
	if (key)
		frame_mac(buf, len - TRANSPORT_MAC_LEN, key, buf + len - TRANSPORT_MAC_LEN);
	else
		memset(buf + len - TRANSPORT_MAC_LEN, 0, TRANSPORT_MAC_LEN);
	*out = buf;
	*out_len = len;
	return 0;
}

void tp_bulk_key(const uint8_t base[32], uint64_t epoch, uint32_t stream,
		 uint8_t out[crypto_onetimeauth_KEYBYTES])
{
	uint8_t in[12];

	put_le64(in, epoch);
	for (int i = 0; i < 4; i++)
		in[8 + i] = (uint8_t)(stream >> (8 * i));
	crypto_generichash(out, crypto_onetimeauth_KEYBYTES, in, sizeof(in), base, 32);
}
