/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * common/vmstate: the registry, description checks and the field codec
 * (device state <-> section payload bytes).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
#ifdef VMSTATE_HAVE_ISAL
#include <isa-l/crc.h>
#endif

#include "common/vmstate/vmstate_int.h"

int vmstate_seterr(struct vmstate_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

uint32_t vmstate_crc(uint32_t crc, const void *p, size_t len)
{
#ifdef VMSTATE_HAVE_ISAL
	return crc32_gzip_refl(crc, (const unsigned char *)p, len);
#else
	const unsigned char *q = p;

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = (uint32_t)crc32(crc, q, n);
		q += n;
		len -= n;
	}
	return crc;
#endif
}

/* ---- vbuf ---------------------------------------------------------------- */

int vbuf_reserve(struct vbuf *b, size_t more)
{
	size_t cap;
	uint8_t *p;

	if (b->len + more <= b->cap)
		return 0;
	if (b->len + more < b->len)
		return -ENOMEM;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int vbuf_put(struct vbuf *b, const void *data, size_t len)
{
	int ret = vbuf_reserve(b, len);

	if (ret)
		return ret;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

void vbuf_free(struct vbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- description checks -------------------------------------------------- */

static size_t kind_width(enum vmstate_kind k)
{
	switch (k) {
	case VMSTATE_KIND_U8:
	case VMSTATE_KIND_BOOL:
		return 1;
	case VMSTATE_KIND_U16:
		return 2;
	case VMSTATE_KIND_U32:
	case VMSTATE_KIND_I32:
		return 4;
	case VMSTATE_KIND_U64:
	case VMSTATE_KIND_I64:
		return 8;
	default:
		return 0;
	}
}

static const struct vmstate_field *find_count_field(const struct vmstate_field *fields,
						    const struct vmstate_field *upto,
						    const char *name)
{
	const struct vmstate_field *f;

	for (f = fields; f != upto; f++)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

static int check_desc(const struct vmstate_desc *d, int depth, bool top, size_t *extent,
		      struct vmstate_error *err);

static int check_field(const struct vmstate_desc *d, const struct vmstate_field *f, int depth,
		       size_t *extent, struct vmstate_error *err)
{
	const struct vmstate_field *cf;
	size_t w = kind_width(f->kind), sub_extent = 0, end;
	int ret;

	if (f->kind == VMSTATE_KIND_BUFFER) {
		if (!f->size)
			goto bad;
	} else if (f->kind == VMSTATE_KIND_STRUCT) {
		/* Nested descriptions carry fields only: no subsections, no hooks. */
		if (!f->sub || (f->sub->subsections && f->sub->subsections[0]))
			goto bad;
		ret = check_desc(f->sub, depth + 1, false, &sub_extent, err);
		if (ret)
			return ret;
		if (sub_extent > f->size)
			return vmstate_seterr(err, -EINVAL,
					      "description '%s': field '%s' element size %zu < "
					      "extent %zu of '%s'",
					      d->name, f->name, f->size, sub_extent, f->sub->name);
	} else if (!w || w != f->size) {
		goto bad;
	}
	if (!f->count || (f->kind == VMSTATE_KIND_BUFFER && f->count != 1))
		goto bad;
	if (f->version > d->version_id)
		return vmstate_seterr(err, -EINVAL,
				      "description '%s': field '%s' version %u > description "
				      "version %u",
				      d->name, f->name, f->version, d->version_id);
	if (f->count_field) {
		if (f->kind == VMSTATE_KIND_BUFFER)
			goto bad;
		cf = find_count_field(d->fields, f, f->count_field);
		if (!cf || cf->count != 1 || cf->count_field ||
		    (cf->kind != VMSTATE_KIND_U8 && cf->kind != VMSTATE_KIND_U16 &&
		     cf->kind != VMSTATE_KIND_U32) ||
		    cf->version > f->version)
			return vmstate_seterr(err, -EINVAL,
					      "description '%s': field '%s' needs count field '%s' "
					      "as an earlier u8/u16/u32 field of the same or older "
					      "version",
					      d->name, f->name, f->count_field);
	}
	if (f->size > SIZE_MAX / f->count || f->offset > SIZE_MAX - f->size * f->count)
		goto bad;
	end = f->offset + f->size * f->count;
	*extent = MAX(*extent, end);
	return 0;
bad:
	return vmstate_seterr(err, -EINVAL, "description '%s': field '%s' is malformed (kind %d, "
				       "size %zu, count %u)",
			      d->name, f->name, (int)f->kind, f->size, f->count);
}

static int check_desc(const struct vmstate_desc *d, int depth, bool top, size_t *extent,
		      struct vmstate_error *err)
{
	const struct vmstate_field *f;
	size_t nsub = 0, i, j;
	int ret;

	if (!d || !d->name || !d->name[0] || strlen(d->name) > VMSTATE_NAME_MAX)
		return vmstate_seterr(err, -EINVAL, "description without a valid name");
	if (depth > VMSTATE_MAX_DEPTH)
		return vmstate_seterr(err, -EINVAL, "description '%s': nested too deep", d->name);
	if (d->minimum_version_id > d->version_id)
		return vmstate_seterr(err, -EINVAL,
				      "description '%s': minimum_version_id %u > version_id %u",
				      d->name, d->minimum_version_id, d->version_id);
	if (!top && (d->pre_save || d->post_load))
		return vmstate_seterr(err, -EINVAL,
				      "description '%s': hooks are only run on a top-level "
				      "description",
				      d->name);
	if (top && d->needed)
		return vmstate_seterr(err, -EINVAL,
				      "description '%s': needed() is for subsections", d->name);
	if (!d->fields)
		return vmstate_seterr(err, -EINVAL, "description '%s': no field table", d->name);
	for (f = d->fields; f->name; f++) {
		ret = check_field(d, f, depth, extent, err);
		if (ret)
			return ret;
	}
	for (i = 0; d->subsections && d->subsections[i]; i++) {
		if (++nsub > VMSTATE_MAX_SUBSECTIONS)
			return vmstate_seterr(err, -EINVAL, "description '%s': too many subsections",
					      d->name);
		for (j = 0; j < i; j++)
			if (!strcmp(d->subsections[j]->name, d->subsections[i]->name))
				return vmstate_seterr(err, -EINVAL,
						      "description '%s': duplicate subsection '%s'",
						      d->name, d->subsections[i]->name);
		/* A subsection is a top-level description of the same opaque. */
		ret = check_desc(d->subsections[i], depth + 1, false, extent, err);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- registry ------------------------------------------------------------ */

int vmstate_registry_new(struct vmstate_registry **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void vmstate_registry_free(struct vmstate_registry *reg)
{
	if (!reg)
		return;
	free(reg->entries);
	free(reg);
}

struct vmstate_entry *vmstate_find(struct vmstate_registry *reg, const char *name,
				   size_t name_len, uint32_t instance_id)
{
	size_t i;

	for (i = 0; i < reg->n; i++) {
		struct vmstate_entry *e = &reg->entries[i];

		if (e->instance_id == instance_id && strlen(e->desc->name) == name_len &&
		    !memcmp(e->desc->name, name, name_len))
			return e;
	}
	return NULL;
}

int vmstate_register(struct vmstate_registry *reg, const struct vmstate_desc *desc,
		     uint32_t instance_id, void *opaque, struct vmstate_error *err)
{
	struct vmstate_entry *e;
	size_t extent = 0;
	int ret;

	if (!reg || !opaque)
		return vmstate_seterr(err, -EINVAL, "vmstate_register: no registry or opaque");
	ret = check_desc(desc, 0, true, &extent, err);
	if (ret)
		return ret;
	if (!strcmp(desc->name, VMSTATE_RAM_NAME))
		return vmstate_seterr(err, -EINVAL, "section name '%s' is reserved", desc->name);
	if (vmstate_find(reg, desc->name, strlen(desc->name), instance_id))
		return vmstate_seterr(err, -EEXIST, "section '%s' instance %u already registered",
				      desc->name, instance_id);
	if (reg->n == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 16;

		e = realloc(reg->entries, cap * sizeof(*e));
		if (!e)
			return vmstate_seterr(err, -ENOMEM, "out of memory");
		reg->entries = e;
		reg->cap = cap;
	}
	reg->entries[reg->n++] = (struct vmstate_entry){
		.desc = desc, .instance_id = instance_id, .opaque = opaque, .extent = extent};
	return 0;
}

int vmstate_unregister(struct vmstate_registry *reg, const char *name, uint32_t instance_id)
{
	struct vmstate_entry *e = vmstate_find(reg, name, strlen(name), instance_id);
	size_t i;

	if (!e)
		return -ENOENT;
	i = (size_t)(e - reg->entries);
	memmove(e, e + 1, (reg->n - i - 1) * sizeof(*e));
	reg->n--;
	return 0;
}

/* ---- encode -------------------------------------------------------------- */

static uint32_t read_count(const void *base, const struct vmstate_field *cf)
{
	const uint8_t *p = (const uint8_t *)base + cf->offset;
	uint16_t v16;
	uint32_t v32;

	switch (cf->kind) {
	case VMSTATE_KIND_U8:
		return *p;
	case VMSTATE_KIND_U16:
		memcpy(&v16, p, 2);
		return v16;
	default:
		memcpy(&v32, p, 4);
		return v32;
	}
}

static int elem_count(const struct vmstate_desc *d, const struct vmstate_field *f,
		      const void *base, uint32_t *n, const char *what, struct vmstate_error *err)
{
	*n = f->count;
	if (!f->count_field)
		return 0;
	*n = read_count(base, find_count_field(d->fields, f, f->count_field));
	if (*n > f->count)
		return vmstate_seterr(err, -EINVAL, "%s: field '%s' count %u exceeds bound %u", what,
				      f->name, *n, f->count);
	return 0;
}

static int encode_fields(const struct vmstate_desc *d, const void *base, uint32_t version,
			 struct vbuf *out, const char *what, struct vmstate_error *err);

static int encode_field(const struct vmstate_desc *d, const struct vmstate_field *f,
			const void *base, uint32_t version, struct vbuf *out, const char *what,
			struct vmstate_error *err)
{
	const uint8_t *p = (const uint8_t *)base + f->offset;
	size_t w = kind_width(f->kind);
	uint32_t n, i;
	uint8_t *o;
	int ret;

	ret = elem_count(d, f, base, &n, what, err);
	if (ret)
		return ret;
	if (f->kind == VMSTATE_KIND_STRUCT) {
		for (i = 0; i < n; i++) {
			ret = encode_fields(f->sub, p + (size_t)i * f->size, version, out, what,
					    err);
			if (ret)
				return ret;
		}
		return 0;
	}
	if (f->kind == VMSTATE_KIND_BUFFER)
		w = f->size;
	if (vbuf_reserve(out, w * n))
		return vmstate_seterr(err, -ENOMEM, "%s: out of memory", what);
	o = out->p + out->len;
	if (f->kind == VMSTATE_KIND_BOOL) {
		for (i = 0; i < n; i++)
			o[i] = p[i] ? 1 : 0;
	} else {
		/* Little-endian host: the wire bytes are the memory bytes. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vmstate codec assumes a little-endian host"
#endif
		memcpy(o, p, w * n);
	}
	out->len += w * n;
	return 0;
}

static int encode_fields(const struct vmstate_desc *d, const void *base, uint32_t version,
			 struct vbuf *out, const char *what, struct vmstate_error *err)
{
	const struct vmstate_field *f;
	size_t i, start, nl;
	uint8_t hdr[1 + 1 + VMSTATE_NAME_MAX + 8];
	int ret;

	for (f = d->fields; f->name; f++) {
		if (f->version > version)
			continue;
		ret = encode_field(d, f, base, version, out, what, err);
		if (ret)
			return ret;
	}
	for (i = 0; d->subsections && d->subsections[i]; i++) {
		const struct vmstate_desc *s = d->subsections[i];

		if (s->needed && !s->needed((void *)base))
			continue;
		nl = strlen(s->name);
		hdr[0] = VMSTATE_SUBSECTION_MARK;
		hdr[1] = (uint8_t)nl;
		memcpy(hdr + 2, s->name, nl);
		put_le32(hdr + 2 + nl, s->version_id);
		put_le32(hdr + 6 + nl, 0);
		if (vbuf_put(out, hdr, 10 + nl))
			return vmstate_seterr(err, -ENOMEM, "%s: out of memory", what);
		start = out->len;
		ret = encode_fields(s, base, s->version_id, out, what, err);
		if (ret)
			return ret;
		if (out->len - start > UINT32_MAX)
			return vmstate_seterr(err, -E2BIG, "%s: subsection '%s' too large", what,
					      s->name);
		put_le32(out->p + start - 4, (uint32_t)(out->len - start));
	}
	return 0;
}

int vmstate_encode(const struct vmstate_entry *e, struct vbuf *out, const char *what,
		   struct vmstate_error *err)
{
	int ret;

	if (e->desc->pre_save) {
		ret = e->desc->pre_save(e->opaque);
		if (ret)
			return vmstate_seterr(err, ret < 0 ? ret : -EINVAL, "%s: pre_save failed (%d)",
					      what, ret);
	}
	return encode_fields(e->desc, e->opaque, e->desc->version_id, out, what, err);
}

/* ---- decode -------------------------------------------------------------- */

static int take(struct vcur *c, size_t n, const uint8_t **p, const char *what, const char *field,
		struct vmstate_error *err)
{
	if (n > c->len - c->pos)
		return vmstate_seterr(err, -EINVAL,
				      "%s: field '%s' needs %zu bytes, %zu left in the payload",
				      what, field, n, c->len - c->pos);
	*p = c->p + c->pos;
	c->pos += n;
	return 0;
}

static int decode_desc(const struct vmstate_desc *d, void *base, uint32_t version,
		       struct vcur *c, bool with_subs, const char *what,
		       struct vmstate_error *err);

static int decode_field(const struct vmstate_desc *d, const struct vmstate_field *f, void *base,
			uint32_t version, struct vcur *c, const char *what,
			struct vmstate_error *err)
{
	uint8_t *p = (uint8_t *)base + f->offset;
	size_t w = kind_width(f->kind);
	const uint8_t *src = NULL;
	uint32_t n, i;
	int ret;

	ret = elem_count(d, f, base, &n, what, err);
	if (ret)
		return ret;
	if (f->kind == VMSTATE_KIND_STRUCT) {
		for (i = 0; i < n; i++) {
			ret = decode_desc(f->sub, p + (size_t)i * f->size, version, c, false, what,
					  err);
			if (ret)
				return ret;
		}
		return 0;
	}
	if (f->kind == VMSTATE_KIND_BUFFER)
		w = f->size;
	ret = take(c, w * n, &src, what, f->name, err);
	if (ret)
		return ret;
	if (f->kind == VMSTATE_KIND_BOOL) {
		for (i = 0; i < n; i++) {
			if (src[i] > 1)
				return vmstate_seterr(err, -EINVAL,
						      "%s: field '%s' bool value %u is not 0/1",
						      what, f->name, src[i]);
			p[i] = src[i];
		}
		return 0;
	}
	memcpy(p, src, w * n);
	return 0;
}

static int decode_subsections(const struct vmstate_desc *d, void *base, struct vcur *c,
			      const char *what, struct vmstate_error *err)
{
	uint64_t seen = 0;
	const uint8_t *h = NULL, *name = NULL;
	uint32_t ver, len;
	struct vcur sc;
	size_t i;
	int ret;

	while (c->pos < c->len) {
		const struct vmstate_desc *s = NULL;

		ret = take(c, 2, &h, what, "<subsection>", err);
		if (ret)
			return ret;
		if (h[0] != VMSTATE_SUBSECTION_MARK)
			return vmstate_seterr(err, -EINVAL,
					      "%s: %zu trailing bytes after the fields of '%s'",
					      what, c->len - c->pos + 2, d->name);
		ret = take(c, h[1], &name, what, "<subsection>", err);
		if (ret)
			return ret;
		for (i = 0; d->subsections && d->subsections[i]; i++) {
			if (strlen(d->subsections[i]->name) == h[1] &&
			    !memcmp(d->subsections[i]->name, name, h[1])) {
				s = d->subsections[i];
				break;
			}
		}
		if (!s)
			return vmstate_seterr(err, -EINVAL, "%s: unknown subsection '%.*s'", what,
					      (int)h[1], name);
		if (seen & (1ull << i))
			return vmstate_seterr(err, -EINVAL, "%s: duplicate subsection '%s'", what,
					      s->name);
		seen |= 1ull << i;
		ret = take(c, 8, &h, what, s->name, err);
		if (ret)
			return ret;
		ver = get_le32(h);
		len = get_le32(h + 4);
		if (ver > s->version_id || ver < s->minimum_version_id)
			return vmstate_seterr(err, -EINVAL,
					      "%s: subsection '%s' version %u outside [%u, %u]",
					      what, s->name, ver, s->minimum_version_id,
					      s->version_id);
		if (len > c->len - c->pos)
			return vmstate_seterr(err, -EINVAL,
					      "%s: subsection '%s' length %u exceeds the payload",
					      what, s->name, len);
		sc = (struct vcur){.p = c->p + c->pos, .len = len};
		c->pos += len;
		ret = decode_desc(s, base, ver, &sc, true, what, err);
		if (ret)
			return ret;
	}
	return 0;
}

static int decode_desc(const struct vmstate_desc *d, void *base, uint32_t version,
		       struct vcur *c, bool with_subs, const char *what,
		       struct vmstate_error *err)
{
	const struct vmstate_field *f;
	int ret;

	for (f = d->fields; f->name; f++) {
		if (f->version > version)
			continue;
		ret = decode_field(d, f, base, version, c, what, err);
		if (ret)
			return ret;
	}
	if (!with_subs)
		return 0;
	return decode_subsections(d, base, c, what, err);
}

int vmstate_decode(const struct vmstate_desc *desc, void *base, uint32_t version,
		   const uint8_t *p, size_t len, const char *what, struct vmstate_error *err)
{
	struct vcur c = {.p = p, .len = len};

	return decode_desc(desc, base, version, &c, true, what, err);
}
