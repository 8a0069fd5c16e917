// SPDX-License-Identifier: GPL-2.0-only
/*
 * mac_bench MB: the message authentication codes of Debian's crypto
 * libraries that could authenticate the bulk path, one core each, over MB
 * MiB: "cached" re-reads one 256 KiB piece (what the transport MACs right
 * after the kernel's copy touched it), "memory" walks a 64 MiB buffer.
 * Prints a markdown table, GB/s, median of 3 runs. The first row is the
 * transport's own bulk MAC (transport/mac.c: libcrypto's Poly1305).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/evp.h>
#include <sodium.h>
#ifdef HAVE_NETTLE
#include <nettle/gcm.h>
#include <nettle/umac.h>
#endif
#ifdef HAVE_GCRYPT
#include <gcrypt.h>
#endif

#include "common/common.h"
#include "transport/internal.h"

#define PIECE (256u << 10)
#define BIG   (64u << 20)

static const uint8_t key[32] = {7, 1, 2, 3}, iv[16] = {9};

struct cand {
	const char *name;
	void *(*init)(void);
	void (*update)(void *ctx, const uint8_t *p, size_t len);
	void (*done)(void *ctx);
};

static void *sodium_init_(void)
{
	crypto_onetimeauth_state *st = malloc(sizeof(*st));

	crypto_onetimeauth_init(st, key);
	return st;
}
static void sodium_update(void *c, const uint8_t *p, size_t len)
{
	crypto_onetimeauth_update(c, p, len);
}
static void sodium_done(void *c)
{
	uint8_t tag[16];

	crypto_onetimeauth_final(c, tag);
	free(c);
}

/* the transport's own bulk MAC (transport/mac.c: libcrypto's Poly1305) */
static void *tp_init(void)
{
	struct tp_poly *p = calloc(1, sizeof(*p));

	if (p)
		tp_poly_init(p, key);
	return p;
}
static void tp_update(void *c, const uint8_t *p, size_t len)
{
	tp_poly_update(c, p, len);
}
static void tp_done(void *c)
{
	uint8_t tag[16];

	tp_poly_final(c, tag);
	tp_poly_free(c);
	free(c);
}

/* GMAC: AES-128-GCM over additional data only */
static void *ossl_gmac_init(void)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	if (c && !EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, iv)) {
		EVP_CIPHER_CTX_free(c);
		c = NULL;
	}
	return c;
}
static void ossl_gmac_update(void *c, const uint8_t *p, size_t len)
{
	int n;

	EVP_EncryptUpdate(c, NULL, &n, p, (int)len);
}
static void ossl_gmac_done(void *c)
{
	uint8_t tag[16];
	int n;

	EVP_EncryptFinal_ex(c, tag, &n);
	EVP_CIPHER_CTX_free(c);
}

#ifdef HAVE_NETTLE
static void *umac64_init(void)
{
	struct umac64_ctx *c = malloc(sizeof(*c));

	umac64_set_key(c, key);
	umac64_set_nonce(c, 8, iv);
	return c;
}
static void umac64_up(void *c, const uint8_t *p, size_t len)
{
	umac64_update(c, len, p);
}
static void umac64_done(void *c)
{
	uint8_t tag[8];

	umac64_digest(c, sizeof(tag), tag);
	free(c);
}
static void *umac128_init(void)
{
	struct umac128_ctx *c = malloc(sizeof(*c));

	umac128_set_key(c, key);
	umac128_set_nonce(c, 8, iv);
	return c;
}
static void umac128_up(void *c, const uint8_t *p, size_t len)
{
	umac128_update(c, len, p);
}
static void umac128_done(void *c)
{
	uint8_t tag[16];

	umac128_digest(c, sizeof(tag), tag);
	free(c);
}
static void *ngmac_init(void)
{
	struct gcm_aes128_ctx *c = malloc(sizeof(*c));

	gcm_aes128_set_key(c, key);
	gcm_aes128_set_iv(c, 12, iv);
	return c;
}
static void ngmac_up(void *c, const uint8_t *p, size_t len)
{
	gcm_aes128_update(c, len, p);
}
static void ngmac_done(void *c)
{
	uint8_t tag[16];

	gcm_aes128_digest(c, sizeof(tag), tag);
	free(c);
}
#endif

#ifdef HAVE_GCRYPT
static void *gc_open(int algo, size_t klen, size_t ivlen)
{
	gcry_mac_hd_t h;

	if (gcry_mac_open(&h, algo, 0, NULL))
		return NULL;
	if (gcry_mac_setkey(h, key, klen) || (ivlen && gcry_mac_setiv(h, iv, ivlen))) {
		gcry_mac_close(h);
		return NULL;
	}
	return h;
}
static void *gc_poly_init(void)
{
	return gc_open(GCRY_MAC_POLY1305, 32, 0);
}
static void *gc_gmac_init(void)
{
	return gc_open(GCRY_MAC_GMAC_AES, 16, 12);
}
static void gc_update(void *c, const uint8_t *p, size_t len)
{
	gcry_mac_write(c, p, len);
}
static void gc_done(void *c)
{
	uint8_t tag[16];
	size_t n = sizeof(tag);

	gcry_mac_read(c, tag, &n);
	gcry_mac_close(c);
}
#endif

static const struct cand cands[] = {
    {"libcrypto (OpenSSL) Poly1305 [used: transport/mac.c]", tp_init, tp_update, tp_done},
    {"libcrypto (OpenSSL) GMAC AES-128", ossl_gmac_init, ossl_gmac_update, ossl_gmac_done},
    {"libsodium Poly1305", sodium_init_, sodium_update, sodium_done},
#ifdef HAVE_GCRYPT
    {"libgcrypt Poly1305", gc_poly_init, gc_update, gc_done},
    {"libgcrypt GMAC AES-128", gc_gmac_init, gc_update, gc_done},
#endif
#ifdef HAVE_NETTLE
    {"nettle UMAC-64", umac64_init, umac64_up, umac64_done},
    {"nettle UMAC-128", umac128_init, umac128_up, umac128_done},
    {"nettle GMAC AES-128", ngmac_init, ngmac_up, ngmac_done},
#endif
};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* GB/s over total bytes read from buf (span bytes, wrapping); median of 3 */
static double measure(const struct cand *c, const uint8_t *buf, size_t span, uint64_t total)
{
	double r[3];

	for (int k = 0; k < 3; k++) {
		void *ctx = c->init();
		uint64_t t0;

		if (!ctx)
			return 0;
		t0 = clock_ns();
		for (uint64_t d = 0; d < total; d += PIECE)
			c->update(ctx, buf + d % span, PIECE);
		c->done(ctx);
		r[k] = (double)total / (double)(clock_ns() - t0);
	}
	qsort(r, 3, sizeof(r[0]), cmp_d);
	return r[1];
}

int main(int argc, char **argv)
{
	uint64_t total = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1024) << 20;
	uint8_t *buf = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED || sodium_init() < 0)
		return 2;
#ifdef HAVE_GCRYPT
	gcry_check_version(NULL);
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
#endif
	randombytes_buf(buf, BIG);
	total = ALIGN_UP(total, (uint64_t)PIECE);
	printf("| MAC (one core) | cached GB/s | from memory GB/s |\n|---|---:|---:|\n");
	for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
		double hot = measure(&cands[i], buf, PIECE, total);
		double cold = measure(&cands[i], buf, BIG, total);

		if (hot == 0)
			printf("| %s | unavailable | |\n", cands[i].name);
		else
			printf("| %s | %.2f | %.2f |\n", cands[i].name, hot, cold);
	}
	return 0;
}
