// SPDX-License-Identifier: GPL-2.0-only
/* Frame codec and key loading: seal/open, tampering, replay, versions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport/internal.h"

static const uint8_t k1[32] = {1, 2, 3}, k2[32] = {9};

static void seal_hb(uint64_t seq, const uint8_t *key, uint8_t **buf, size_t *len)
{
	Colovm__Transport__Heartbeat h = COLOVM__TRANSPORT__HEARTBEAT__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	h.seq = 77;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT;
	m.heartbeat = &h;
	assert_int_equal(frame_seal(&m, TRANSPORT_WIRE_VERSION, seq, key, buf, len), 0);
}

static void test_roundtrip(void **state)
{
	uint8_t *buf;
	size_t len;
	transport_msg *m;

	seal_hb(5, k1, &buf, &len);
	assert_int_equal(frame_open(buf, len, k1, 5, &m), 0);
	assert_int_equal(m->body_case, COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT);
	assert_int_equal(m->heartbeat->seq, 77);
	transport_msg_free(m);
	free(buf);
}

static void test_tamper_replay(void **state)
{
	uint8_t *buf;
	size_t len;
	transport_msg *m;

	seal_hb(5, k1, &buf, &len);
	assert_int_equal(frame_open(buf, len, k2, 5, &m), -EBADMSG); /* wrong key */
	assert_int_equal(frame_open(buf, len, k1, 6, &m), -EBADMSG); /* replayed */
	assert_int_equal(frame_open(buf, len, k1, 4, &m), -EBADMSG); /* reordered */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x40;
		int r = frame_open(buf, len, k1, 5, &m);
		assert_true(r < 0);
		buf[i] ^= 0x40;
	}
	assert_int_equal(frame_open(buf, len - 1, k1, 5, &m), -EPROTO);
	free(buf);
}

/*
 * A large frame (a DiskWrite of 256 KiB: libcrypto's Poly1305 when built
 * with it) carries the same tag as libsodium's Poly1305 under the frame's
 * one-time key, and opens only whole and under its own key and seq.
 */
static void test_big_frame(void **state)
{
	static uint8_t data[256u << 10];
	Colovm__Transport__DiskWrite w = COLOVM__TRANSPORT__DISK_WRITE__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT, *m;
	uint8_t otk[crypto_onetimeauth_KEYBYTES], want[TRANSPORT_MAC_LEN], *buf;
	size_t len;

	(void)state;
	randombytes_buf(data, sizeof(data));
	w.offset = 1u << 20;
	w.data.data = data;
	w.data.len = sizeof(data);
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_DISK_WRITE;
	msg.disk_write = &w;
	assert_int_equal(frame_seal(&msg, TRANSPORT_WIRE_VERSION, 9, k1, &buf, &len), 0);
	tp_frame_key(k1, 9, otk);
	crypto_onetimeauth(want, buf, len - TRANSPORT_MAC_LEN, otk);
	assert_memory_equal(buf + len - TRANSPORT_MAC_LEN, want, TRANSPORT_MAC_LEN);
	assert_int_equal(frame_open(buf, len, k1, 9, &m), 0);
	assert_int_equal(m->body_case, COLOVM__TRANSPORT__MSG__BODY_DISK_WRITE);
	assert_int_equal(m->disk_write->data.len, sizeof(data));
	assert_memory_equal(m->disk_write->data.data, data, sizeof(data));
	transport_msg_free(m);
	assert_int_equal(frame_open(buf, len, k2, 9, &m), -EBADMSG);
	assert_int_equal(frame_open(buf, len, k1, 10, &m), -EBADMSG);
	buf[len / 2] ^= 1;
	assert_int_equal(frame_open(buf, len, k1, 9, &m), -EBADMSG);
	free(buf);
}

static void test_header_checks(void **state)
{
	uint8_t *buf;
	size_t len, flen;
	struct frame_hdr h;

	seal_hb(0, NULL, &buf, &len);
	frame_hdr_decode(buf, &h);
	assert_int_equal(frame_check_ctrl_hdr(&h, &flen), 0);
	assert_int_equal(flen, len);
	h.version = TRANSPORT_WIRE_VERSION - 1; /* version 1: BLAKE2b, 32-byte MACs */
	assert_int_equal(frame_check_ctrl_hdr(&h, &flen), -EPROTONOSUPPORT);
	h.version = TRANSPORT_WIRE_VERSION + 1;
	assert_int_equal(frame_check_ctrl_hdr(&h, &flen), -EPROTONOSUPPORT);
	h.version = TRANSPORT_WIRE_VERSION;
	h.magic = 0;
	assert_int_equal(frame_check_ctrl_hdr(&h, &flen), -EPROTO);
	h.magic = TRANSPORT_FRAME_MAGIC;
	h.length = TRANSPORT_MAX_MSG + 1;
	assert_int_equal(frame_check_ctrl_hdr(&h, &flen), -EMSGSIZE);
	free(buf);
}

/* A newer peer's extra field (number 99) is tolerated. */
static void test_unknown_field(void **state)
{
	uint8_t *buf, *big;
	size_t len;
	transport_msg *m;
	struct frame_hdr h;
	/* field 99, varint: key = 99<<3|0 = 0x318 -> 0x98 0x06, value 1 */
	const uint8_t extra[] = {0x98, 0x06, 0x01};

	seal_hb(3, NULL, &buf, &len);
	frame_hdr_decode(buf, &h);
	big = calloc(1, len + sizeof(extra));
	memcpy(big, buf, TRANSPORT_HDR_LEN + h.length);
	memcpy(big + TRANSPORT_HDR_LEN + h.length, extra, sizeof(extra));
	h.length += sizeof(extra);
	frame_hdr_encode(big, &h);
	{
		uint8_t otk[crypto_onetimeauth_KEYBYTES];

		tp_frame_key(k1, 3, otk);
		crypto_onetimeauth(big + TRANSPORT_HDR_LEN + h.length, big,
				   TRANSPORT_HDR_LEN + h.length, otk);
	}
	assert_int_equal(frame_open(big, len + sizeof(extra), k1, 3, &m), 0);
	assert_int_equal(m->body_case, COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT);
	transport_msg_free(m);
	free(big);
	free(buf);
}

/* tp_poly (libcrypto when built with it) gives crypto_onetimeauth's tags. */
static void test_poly_matches_sodium(void **state)
{
	static uint8_t data[3u << 20];
	uint8_t key[crypto_onetimeauth_KEYBYTES], want[16], got[16];
	struct tp_poly p = {0};
	size_t lens[] = {0, 1, 15, 16, 17, 4096, 65537, sizeof(data)};

	(void)state;
	randombytes_buf(data, sizeof(data));
	for (int round = 0; round < 3; round++) {
		randombytes_buf(key, sizeof(key));
		for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
			size_t done = 0, step = 1 + (size_t)randombytes_uniform(300000);

			crypto_onetimeauth(want, data, lens[i], key);
			tp_poly_init(&p, key); /* re-init of a used context too */
			while (done < lens[i]) {
				size_t take = MIN(step, lens[i] - done);

				tp_poly_update(&p, data + done, take);
				done += take;
			}
			tp_poly_final(&p, got);
			assert_memory_equal(want, got, sizeof(want));
		}
	}
	tp_poly_free(&p);
}

static void test_key_load(void **state)
{
	char path[] = "/tmp/tpkeyXXXXXX";
	struct transport_key k;
	int fd = mkstemp(path);
	const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
	assert_int_equal(transport_key_load(path, &k), 0);
	assert_int_equal(k.bytes[31], 0x1f);
	assert_int_equal(ftruncate(fd, 10), 0);
	assert_int_equal(transport_key_load(path, &k), -EINVAL);
	close(fd);
	unlink(path);
	assert_int_equal(transport_key_load("/nonexistent/key", &k), -ENOENT);
	assert_int_equal(transport_key_set(&k, hex, 5), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),	  cmocka_unit_test(test_tamper_replay),
	    cmocka_unit_test(test_header_checks),
	    cmocka_unit_test(test_big_frame), cmocka_unit_test(test_unknown_field),
	    cmocka_unit_test(test_key_load),	  cmocka_unit_test(test_poly_matches_sodium),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
