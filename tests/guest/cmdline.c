/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Command line: space-separated "key=value" words (a word without '=' is a
 * key with an empty value). Keys the guest does not know are ignored; known
 * keys with bad values are errors (the caller exits with EXIT_USAGE).
 *
 * virtio_mmio.device=<size>@<addr>:<irq>[:<id>] may appear several times
 * (Linux's syntax: size with K/M/G suffix, addr in hex, irq in decimal) and
 * fills virtio_mmio_devs[].
 */
#include "guest.h"

#define MAX_WORDS 64
#define MAX_KEY	  64
#define MAX_VALUE 192

struct kv {
	char key[MAX_KEY];
	char value[MAX_VALUE];
};

static struct kv words[MAX_WORDS];
static unsigned int nr_words;

struct virtio_mmio_dev virtio_mmio_devs[MAX_VIRTIO_MMIO];
unsigned int nr_virtio_mmio_devs;

/* Parse an unsigned number at *s in base (0: "0x" selects 16, else 10). */
static bool parse_u64(const char **s, unsigned int base, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	bool any = false;

	if (base == 0) {
		base = 10;
		if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
			base = 16;
			p += 2;
		}
	} else if (base == 16 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
	}
	for (;; p++, any = true) {
		unsigned int d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned int)(*p - 'A' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*s = p;
	*out = v;
	return any;
}

static int parse_virtio_mmio(const char *v)
{
	struct virtio_mmio_dev d;
	const char *p = v;
	uint64_t irq, shift = 0, id;

	if (nr_virtio_mmio_devs == MAX_VIRTIO_MMIO) {
		printf("testguest: too many virtio_mmio.device entries (max %d)\n",
		       MAX_VIRTIO_MMIO);
		return -1;
	}
	if (!parse_u64(&p, 0, &d.size))
		goto bad;
	switch (*p) {
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	}
	if (shift) {
		if (d.size > (UINT64_MAX >> shift))
			goto bad;
		d.size <<= shift;
		p++;
	}
	if (*p++ != '@' || !parse_u64(&p, 16, &d.base) || *p++ != ':' || !parse_u64(&p, 10, &irq) ||
	    irq > 0xffffffffu)
		goto bad;
	if (*p == ':' && (p++, !parse_u64(&p, 10, &id)))
		goto bad;
	if (*p || !d.size)
		goto bad;
	d.irq = (uint32_t)irq;
	virtio_mmio_devs[nr_virtio_mmio_devs++] = d;
	return 0;
bad:
	printf("testguest: bad value virtio_mmio.device=%s: expected <size>[K|M|G]@<hex "
	       "addr>:<irq>\n",
	       v);
	return -1;
}

int cmdline_parse(const char *s)
{
	while (*s) {
		struct kv *w;
		size_t n;

		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		if (nr_words == MAX_WORDS) {
			printf("testguest: command line has more than %d words\n", MAX_WORDS);
			return -1;
		}
		w = &words[nr_words++];
		for (n = 0; *s && *s != '=' && *s != ' ' && *s != '\t' && *s != '\n'; s++)
			if (n < MAX_KEY - 1)
				w->key[n++] = *s;
		w->key[n] = '\0';
		if (*s == '=')
			s++;
		for (n = 0; *s && *s != ' ' && *s != '\t' && *s != '\n'; s++)
			if (n < MAX_VALUE - 1)
				w->value[n++] = *s;
		w->value[n] = '\0';
		if (!strcmp(w->key, "virtio_mmio.device") && parse_virtio_mmio(w->value))
			return -1;
	}
	return 0;
}

const char *cmdline_get(const char *key)
{
	for (unsigned int i = nr_words; i-- > 0;)
		if (!strcmp(words[i].key, key))
			return words[i].value;
	return NULL;
}

int cmdline_u64(const char *key, uint64_t def, uint64_t max, uint64_t *out)
{
	const char *v = cmdline_get(key), *p = v;
	uint64_t n;

	if (!v) {
		*out = def;
		return 0;
	}
	if (!parse_u64(&p, 0, &n) || *p) {
		printf("testguest: bad value %s=%s: expected a number\n", key, v);
		return -1;
	}
	if (n > max) {
		printf("testguest: bad value %s=%s: at most %lu\n", key, v, max);
		return -1;
	}
	*out = n;
	return 0;
}
