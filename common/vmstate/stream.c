/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * common/vmstate: the checkpoint stream writer and the two-phase reader.
 * The byte layout and the load contract are documented in vmstate.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

#include "common/vmstate/vmstate_int.h"

#define HEADER_BYTES	 16
#define MAX_RUNS	 1024
#define RUN_HDR_MAX	 (VMSTATE_RUN_HDR + 4)
#define MAX_RUN_PAGES	 16384u
#define FRAME_SMALL	 9 /* type u8 | id u32 | len u32 */

/* ---- writer -------------------------------------------------------------- */

struct vmstate_writer {
	struct vmstate_sink *sink;
	struct vmstate_writer_opts o;
	uint32_t next_id, ram_id;
	bool ram_started;
	uint64_t ram_pages;
	uint32_t nrecords;
	struct vbuf rec;
	/* RAM batch: iov[0] is the frame header, runs follow, then the CRC. */
	struct iovec *iov;
	int niov;
	uint32_t nruns;
	uint8_t *hdrs;
	size_t hdr_len;
	uint8_t *zbuf;
	size_t zlen, zcap;
	size_t batch_bytes;
	ZSTD_CCtx *zc;
	struct vmstate_ram_stats st;
};

int vmstate_writer_new(struct vmstate_writer **out, struct vmstate_sink *sink,
		       const struct vmstate_writer_opts *opts)
{
	struct vmstate_writer *w;

	if (!sink)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->sink = sink;
	if (opts)
		w->o = *opts;
	if (!w->o.zstd_margin_pct)
		w->o.zstd_margin_pct = 10;
	if (!w->o.run_max_pages)
		w->o.run_max_pages = 256;
	if (!w->o.batch_max_bytes)
		w->o.batch_max_bytes = 8u << 20;
	if (w->o.zstd_margin_pct >= 100 || w->o.run_max_pages > MAX_RUN_PAGES ||
	    w->o.batch_max_bytes < w->o.run_max_pages * VMSTATE_PAGE_SIZE + RUN_HDR_MAX ||
	    w->o.batch_max_bytes > (256u << 20))
		goto inval;
	w->next_id = 1;
	w->iov = calloc(2 + 2 * MAX_RUNS, sizeof(*w->iov));
	w->hdrs = malloc(MAX_RUNS * RUN_HDR_MAX + FRAME_SMALL + 4);
	if (!w->iov || !w->hdrs)
		goto nomem;
	if (w->o.zstd_level) {
		w->zcap = w->o.batch_max_bytes;
		w->zbuf = malloc(w->zcap);
		w->zc = ZSTD_createCCtx();
		if (!w->zbuf || !w->zc)
			goto nomem;
	}
	w->niov = 1;
	w->hdr_len = FRAME_SMALL;
	*out = w;
	return 0;
inval:
	free(w);
	return -EINVAL;
nomem:
	vmstate_writer_free(w);
	return -ENOMEM;
}

void vmstate_writer_free(struct vmstate_writer *w)
{
	if (!w)
		return;
	ZSTD_freeCCtx(w->zc);
	free(w->zbuf);
	free(w->hdrs);
	free(w->iov);
	vbuf_free(&w->rec);
	free(w);
}

void vmstate_writer_ram_stats(const struct vmstate_writer *w, struct vmstate_ram_stats *st)
{
	*st = w->st;
}

static int sink_write(struct vmstate_writer *w, const struct iovec *iov, int n, const char *what,
		      struct vmstate_error *err)
{
	int ret = vmstate_sink_writev(w->sink, iov, n);

	if (ret)
		return vmstate_seterr(err, ret, "%s: write failed: %s", what, strerror(-ret));
	return 0;
}

int vmstate_write_header(struct vmstate_writer *w, struct vmstate_error *err)
{
	uint8_t h[HEADER_BYTES];
	struct iovec iov = {.iov_base = h, .iov_len = sizeof(h)};

	put_le32(h, VMSTATE_MAGIC);
	put_le16(h + 4, VMSTATE_VERSION_MAJOR);
	put_le16(h + 6, VMSTATE_VERSION_MINOR);
	put_le32(h + 8, VMSTATE_PAGE_SIZE);
	put_le32(h + 12, vmstate_crc(0, h, 12));
	return sink_write(w, &iov, 1, "stream header", err);
}

/* Write w->rec (a complete record without CRC) with its CRC appended. */
static int write_rec(struct vmstate_writer *w, const char *what, struct vmstate_error *err)
{
	uint8_t crc[4];
	struct iovec iov[2] = {{.iov_base = w->rec.p, .iov_len = w->rec.len},
			       {.iov_base = crc, .iov_len = 4}};
	int ret;

	put_le32(crc, vmstate_crc(0, w->rec.p, w->rec.len));
	ret = sink_write(w, iov, 2, what, err);
	if (!ret)
		w->nrecords++;
	return ret;
}

static int ram_flush(struct vmstate_writer *w, uint8_t type, struct vmstate_error *err)
{
	uint8_t crcb[4];
	uint32_t crc;
	int i, ret;

	if (type == VMSTATE_REC_PART && !w->nruns)
		return 0;
	w->hdrs[0] = type;
	put_le32(w->hdrs + 1, w->ram_id);
	put_le32(w->hdrs + 5, (uint32_t)w->batch_bytes);
	w->iov[0] = (struct iovec){.iov_base = w->hdrs, .iov_len = FRAME_SMALL};
	crc = 0;
	for (i = 0; i < w->niov; i++)
		crc = vmstate_crc(crc, w->iov[i].iov_base, w->iov[i].iov_len);
	put_le32(crcb, crc);
	w->iov[w->niov] = (struct iovec){.iov_base = crcb, .iov_len = 4};
	ret = sink_write(w, w->iov, w->niov + 1, "section 'ram'", err);
	w->niov = 1;
	w->nruns = 0;
	w->hdr_len = FRAME_SMALL;
	w->zlen = 0;
	w->batch_bytes = 0;
	if (!ret)
		w->nrecords++;
	return ret;
}

int vmstate_write_ram_flush(struct vmstate_writer *w, struct vmstate_error *err)
{
	return ram_flush(w, VMSTATE_REC_PART, err);
}

int vmstate_write_ram_end(struct vmstate_writer *w, struct vmstate_error *err)
{
	if (!w->ram_started)
		return vmstate_seterr(err, -EINVAL, "section 'ram': END before START");
	return ram_flush(w, VMSTATE_REC_END, err);
}

static int write_ident(struct vmstate_writer *w, uint8_t type, uint32_t id, const char *name,
		       uint32_t instance, uint32_t version)
{
	size_t nl = strlen(name);
	uint8_t h[1 + 4 + 1 + VMSTATE_NAME_MAX + 12];

	h[0] = type;
	put_le32(h + 1, id);
	h[5] = (uint8_t)nl;
	memcpy(h + 6, name, nl);
	put_le32(h + 6 + nl, instance);
	put_le32(h + 10 + nl, version);
	put_le32(h + 14 + nl, 0); /* payload length, patched */
	w->rec.len = 0;
	return vbuf_put(&w->rec, h, 18 + nl);
}

int vmstate_write_ram_start(struct vmstate_writer *w, uint64_t ram_bytes,
			    struct vmstate_error *err)
{
	uint8_t p[8];
	int ret;

	if (w->ram_started)
		return vmstate_seterr(err, -EINVAL, "section 'ram': already started");
	if (!ram_bytes || ram_bytes % VMSTATE_PAGE_SIZE)
		return vmstate_seterr(err, -EINVAL, "section 'ram': size %" PRIu64
						   " is not a positive multiple of the page size",
				      ram_bytes);
	w->ram_id = w->next_id++;
	put_le64(p, ram_bytes);
	if (write_ident(w, VMSTATE_REC_START, w->ram_id, VMSTATE_RAM_NAME, 0, 1) ||
	    vbuf_put(&w->rec, p, 8))
		return vmstate_seterr(err, -ENOMEM, "out of memory");
	put_le32(w->rec.p + w->rec.len - 12, 8);
	ret = write_rec(w, "section 'ram'", err);
	if (ret)
		return ret;
	w->ram_started = true;
	w->ram_pages = ram_bytes / VMSTATE_PAGE_SIZE;
	return 0;
}

bool vmstate_page_is_zero(const void *p)
{
	const uint64_t *q = (const uint64_t *)p;
	size_t i, j;

	for (i = 0; i < VMSTATE_PAGE_SIZE / 8; i += 32) {
		uint64_t acc = 0;

		for (j = 0; j < 32; j++)
			acc |= q[i + j];
		if (acc)
			return false;
	}
	return true;
}

static int emit_run(struct vmstate_writer *w, bool zero, const uint8_t *p, uint64_t gfn,
		    uint32_t n, struct vmstate_error *err)
{
	size_t raw = (size_t)n * VMSTATE_PAGE_SIZE, need = zero ? VMSTATE_RUN_HDR : RUN_HDR_MAX + raw;
	uint8_t *h;
	int ret;

	if (w->nruns == MAX_RUNS || w->batch_bytes + need > w->o.batch_max_bytes) {
		ret = ram_flush(w, VMSTATE_REC_PART, err);
		if (ret)
			return ret;
	}
	h = w->hdrs + w->hdr_len;
	h[0] = VMSTATE_RUN_ZERO;
	put_le64(h + 1, gfn);
	put_le32(h + 9, n);
	w->iov[w->niov++] = (struct iovec){.iov_base = h, .iov_len = VMSTATE_RUN_HDR};
	w->hdr_len += VMSTATE_RUN_HDR;
	w->batch_bytes += VMSTATE_RUN_HDR;
	w->nruns++;
	if (zero) {
		w->st.pages_zero += n;
		return 0;
	}
	if (w->zc) {
		size_t cap = raw / 100 * (100 - w->o.zstd_margin_pct), r;

		if (cap > w->zcap - w->zlen) {
			/* Out of compression space: start a new record for this run. */
			w->niov--;
			w->hdr_len -= VMSTATE_RUN_HDR;
			w->batch_bytes -= VMSTATE_RUN_HDR;
			w->nruns--;
			ret = ram_flush(w, VMSTATE_REC_PART, err);
			if (ret)
				return ret;
			return emit_run(w, zero, p, gfn, n, err);
		}
		r = ZSTD_compressCCtx(w->zc, w->zbuf + w->zlen, cap, p, raw, w->o.zstd_level);
		if (!ZSTD_isError(r)) {
			h[0] = VMSTATE_RUN_ZSTD;
			put_le32(h + VMSTATE_RUN_HDR, (uint32_t)r);
			w->iov[w->niov - 1].iov_len = RUN_HDR_MAX;
			w->hdr_len += 4;
			w->iov[w->niov++] =
				(struct iovec){.iov_base = w->zbuf + w->zlen, .iov_len = r};
			w->zlen += r;
			w->batch_bytes += 4 + r;
			w->st.pages_zstd += n;
			w->st.bytes_zstd_in += raw;
			w->st.bytes_zstd_out += r;
			return 0;
		}
	}
	h[0] = VMSTATE_RUN_RAW;
	w->iov[w->niov++] = (struct iovec){.iov_base = (void *)p, .iov_len = raw};
	w->batch_bytes += raw;
	w->st.pages_raw += n;
	return 0;
}

int vmstate_write_ram_pages(struct vmstate_writer *w, const void *ram, uint64_t gfn,
			    uint64_t npages, struct vmstate_error *err)
{
	const uint8_t *base = ram;
	int ret;

	if (!w->ram_started)
		return vmstate_seterr(err, -EINVAL, "section 'ram': pages before START");
	if (gfn > w->ram_pages || npages > w->ram_pages - gfn)
		return vmstate_seterr(err, -ERANGE,
				      "section 'ram': pages [%" PRIu64 ", +%" PRIu64
				      ") outside RAM of %" PRIu64 " pages",
				      gfn, npages, w->ram_pages);
	while (npages) {
		const uint8_t *p = base + gfn * VMSTATE_PAGE_SIZE;
		bool zero = vmstate_page_is_zero(p);
		uint32_t n = 1;

		while (n < npages && n < w->o.run_max_pages &&
		       vmstate_page_is_zero(p + (size_t)n * VMSTATE_PAGE_SIZE) == zero)
			n++;
		ret = emit_run(w, zero, p, gfn, n, err);
		if (ret)
			return ret;
		gfn += n;
		npages -= n;
	}
	return 0;
}

static int write_entry(struct vmstate_writer *w, const struct vmstate_entry *e,
		       struct vmstate_error *err)
{
	char what[VMSTATE_NAME_MAX + 40];
	size_t start;
	int ret;

	snprintf(what, sizeof(what), "section '%s' instance %u", e->desc->name, e->instance_id);
	ret = ram_flush(w, VMSTATE_REC_PART, err);
	if (ret)
		return ret;
	if (write_ident(w, VMSTATE_REC_FULL, w->next_id++, e->desc->name, e->instance_id,
			e->desc->version_id))
		return vmstate_seterr(err, -ENOMEM, "%s: out of memory", what);
	start = w->rec.len;
	ret = vmstate_encode(e, &w->rec, what, err);
	if (ret)
		return ret;
	if (w->rec.len - start > UINT32_MAX)
		return vmstate_seterr(err, -E2BIG, "%s: state too large", what);
	put_le32(w->rec.p + start - 4, (uint32_t)(w->rec.len - start));
	return write_rec(w, what, err);
}

int vmstate_write_device(struct vmstate_writer *w, struct vmstate_registry *reg,
			 const char *name, uint32_t instance_id, struct vmstate_error *err)
{
	const struct vmstate_entry *e = vmstate_find(reg, name, strlen(name), instance_id);

	if (!e)
		return vmstate_seterr(err, -ENOENT, "section '%s' instance %u: not registered",
				      name, instance_id);
	return write_entry(w, e, err);
}

int vmstate_write_devices(struct vmstate_writer *w, struct vmstate_registry *reg,
			  struct vmstate_error *err)
{
	size_t i;
	int ret;

	for (i = 0; i < reg->n; i++) {
		ret = write_entry(w, &reg->entries[i], err);
		if (ret)
			return ret;
	}
	return 0;
}

const char *vmstate_cmd_name(enum vmstate_cmd cmd)
{
	switch (cmd) {
	case VMSTATE_CMD_ENABLE_COLO:
		return "ENABLE_COLO";
	case VMSTATE_CMD_PING:
		return "PING";
	case VMSTATE_CMD_PONG:
		return "PONG";
	}
	return "unknown";
}

static int cmd_len(uint16_t cmd)
{
	switch (cmd) {
	case VMSTATE_CMD_ENABLE_COLO:
		return 0;
	case VMSTATE_CMD_PING:
	case VMSTATE_CMD_PONG:
		return 4;
	}
	return -1;
}

int vmstate_write_cmd(struct vmstate_writer *w, enum vmstate_cmd cmd, uint32_t value,
		      struct vmstate_error *err)
{
	uint8_t h[15];
	int len = cmd_len((uint16_t)cmd), ret;

	if (len < 0)
		return vmstate_seterr(err, -EINVAL, "command %d: unknown", (int)cmd);
	ret = ram_flush(w, VMSTATE_REC_PART, err);
	if (ret)
		return ret;
	h[0] = VMSTATE_REC_CMD;
	put_le32(h + 1, 0);
	put_le16(h + 5, (uint16_t)cmd);
	put_le32(h + 7, (uint32_t)len);
	put_le32(h + 11, value);
	w->rec.len = 0;
	if (vbuf_put(&w->rec, h, 11 + (size_t)len))
		return vmstate_seterr(err, -ENOMEM, "out of memory");
	return write_rec(w, "command", err);
}

int vmstate_write_eof(struct vmstate_writer *w, struct vmstate_error *err)
{
	uint8_t h[9];
	struct iovec iov = {.iov_base = h, .iov_len = sizeof(h)};
	int ret;

	ret = ram_flush(w, VMSTATE_REC_PART, err);
	if (ret)
		return ret;
	h[0] = VMSTATE_REC_EOF;
	put_le32(h + 1, w->nrecords);
	put_le32(h + 5, vmstate_crc(0, h, 5));
	ret = sink_write(w, &iov, 1, "EOF", err);
	if (!ret)
		w->nrecords = 0;
	return ret;
}

/* ---- reader -------------------------------------------------------------- */

struct staged {
	struct vmstate_entry *e;
	uint32_t version;
	uint8_t *payload;
	uint32_t len;
};

struct vmstate_reader {
	struct vmstate_source *src;
	struct vmstate_registry *reg;
	struct vmstate_load_ops ops;
	struct vmstate_limits lim;
	bool header_ok, broken;
	bool ram_open;
	uint32_t ram_id;
	uint64_t ram_bytes, ram_pages;
	uint64_t off;
	uint32_t crc;
	char what[VMSTATE_NAME_MAX + 64];
	struct staged *st;
	size_t nst, capst;
	uint8_t *zbuf;
	size_t zcap;
	ZSTD_DCtx *zd;
};

int vmstate_reader_new(struct vmstate_reader **out, struct vmstate_source *src,
		       struct vmstate_registry *reg, const struct vmstate_load_ops *ops,
		       const struct vmstate_limits *limits)
{
	struct vmstate_reader *r;

	if (!src || !reg)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->src = src;
	r->reg = reg;
	if (ops)
		r->ops = *ops;
	if (limits)
		r->lim = *limits;
	if (!r->lim.max_device_bytes)
		r->lim.max_device_bytes = 16u << 20;
	if (!r->lim.max_ram_bytes)
		r->lim.max_ram_bytes = 256u << 20;
	if (!r->lim.max_records)
		r->lim.max_records = 1u << 24;
	r->zd = ZSTD_createDCtx();
	if (!r->zd) {
		free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

void vmstate_reader_free(struct vmstate_reader *r)
{
	if (!r)
		return;
	vmstate_load_abort(r);
	free(r->st);
	free(r->zbuf);
	ZSTD_freeDCtx(r->zd);
	free(r);
}

uint64_t vmstate_reader_ram_bytes(const struct vmstate_reader *r)
{
	return r->ram_bytes;
}

size_t vmstate_load_staged(const struct vmstate_reader *r)
{
	return r->nst;
}

void vmstate_load_abort(struct vmstate_reader *r)
{
	size_t i;

	for (i = 0; i < r->nst; i++)
		free(r->st[i].payload);
	r->nst = 0;
}

/* Reads are checksummed in pieces of this size, while the bytes are still in
 * the cache the copy from the socket left them in (a whole 1 MiB run read
 * first and checksummed afterwards comes back from memory). */
#define RD_CHUNK (64 * 1024)

/* Read exactly len bytes into buf, adding them to the record CRC. */
static int rd(struct vmstate_reader *r, void *buf, size_t len, struct vmstate_error *err)
{
	uint8_t *p = buf;

	while (len) {
		size_t n = MIN(len, RD_CHUNK);
		int ret = vmstate_source_read(r->src, p, n);

		if (ret == -ENODATA)
			return vmstate_seterr(err, -ENODATA,
					      "%s: truncated stream at offset %" PRIu64, r->what,
					      r->off);
		if (ret)
			return vmstate_seterr(err, ret, "%s: read failed at offset %" PRIu64 ": %s",
					      r->what, r->off, strerror(-ret));
		r->crc = vmstate_crc(r->crc, p, n);
		r->off += n;
		p += n;
		len -= n;
	}
	return 0;
}

static int check_crc(struct vmstate_reader *r, struct vmstate_error *err)
{
	uint32_t want = r->crc;
	uint8_t b[4];
	int ret = rd(r, b, 4, err);

	if (ret)
		return ret;
#ifdef VMSTATE_FUZZ_NO_CRC
	/* Fuzz builds only: let the fuzzer reach the parsers behind the CRC. */
	want = get_le32(b);
#endif
	if (get_le32(b) != want)
		return vmstate_seterr(err, -EBADMSG,
				      "%s: CRC mismatch (stream 0x%08x, computed 0x%08x)", r->what,
				      get_le32(b), want);
	return 0;
}

int vmstate_read_header(struct vmstate_reader *r, struct vmstate_error *err)
{
	uint8_t h[HEADER_BYTES];
	int ret;

	snprintf(r->what, sizeof(r->what), "stream header");
	r->crc = 0;
	ret = rd(r, h, 12, err);
	if (ret)
		goto fail;
	if (get_le32(h) != VMSTATE_MAGIC) {
		ret = vmstate_seterr(err, -EPROTO, "stream header: bad magic 0x%08x", get_le32(h));
		goto fail;
	}
	ret = check_crc(r, err);
	if (ret)
		goto fail;
	if (get_le16(h + 4) != VMSTATE_VERSION_MAJOR || get_le16(h + 6) > VMSTATE_VERSION_MINOR) {
		ret = vmstate_seterr(err, -EPROTO,
				     "stream header: version %u.%u not supported (this is %u.%u)",
				     get_le16(h + 4), get_le16(h + 6), VMSTATE_VERSION_MAJOR,
				     VMSTATE_VERSION_MINOR);
		goto fail;
	}
	if (get_le32(h + 8) != VMSTATE_PAGE_SIZE) {
		ret = vmstate_seterr(err, -EPROTO, "stream header: page size %u, expected %u",
				     get_le32(h + 8), VMSTATE_PAGE_SIZE);
		goto fail;
	}
	r->header_ok = true;
	return 0;
fail:
	r->broken = true;
	return ret;
}

/* Reads name_len, name, instance, version, len of a START/FULL record. */
static int read_ident(struct vmstate_reader *r, char *name, uint32_t *instance, uint32_t *version,
		      uint32_t *len, struct vmstate_error *err)
{
	uint8_t nl, b[12];
	int ret;

	ret = rd(r, &nl, 1, err);
	if (!ret)
		ret = rd(r, name, nl, err);
	if (!ret)
		ret = rd(r, b, 12, err);
	if (ret)
		return ret;
	name[nl] = '\0';
	*instance = get_le32(b);
	*version = get_le32(b + 4);
	*len = get_le32(b + 8);
	snprintf(r->what, sizeof(r->what), "section '%s' instance %u", name, *instance);
	if (memchr(name, '\0', nl))
		return vmstate_seterr(err, -EINVAL, "%s: NUL in section name", r->what);
	return 0;
}

static int load_start(struct vmstate_reader *r, uint32_t id, struct vmstate_error *err)
{
	char name[VMSTATE_NAME_MAX + 1];
	uint32_t instance, version, len;
	uint8_t p[8];
	uint64_t bytes;
	int ret;

	ret = read_ident(r, name, &instance, &version, &len, err);
	if (ret)
		return ret;
	if (strcmp(name, VMSTATE_RAM_NAME))
		return vmstate_seterr(err, -EINVAL, "%s: START is only used for RAM", r->what);
	if (instance != 0 || version != 1 || len != 8 || !id)
		return vmstate_seterr(err, -EINVAL,
				      "%s: bad START (id %u, version %u, length %u)", r->what, id,
				      version, len);
	if (r->ram_open)
		return vmstate_seterr(err, -EINVAL, "%s: started twice", r->what);
	ret = rd(r, p, 8, err);
	if (!ret)
		ret = check_crc(r, err);
	if (ret)
		return ret;
	bytes = get_le64(p);
	if (!bytes || bytes % VMSTATE_PAGE_SIZE || bytes > (1ull << 52))
		return vmstate_seterr(err, -EINVAL, "%s: bad RAM size %" PRIu64, r->what, bytes);
	r->ram_open = true;
	r->ram_id = id;
	r->ram_bytes = bytes;
	r->ram_pages = bytes / VMSTATE_PAGE_SIZE;
	return 0;
}

static int load_full(struct vmstate_reader *r, uint32_t id, struct vmstate_error *err)
{
	char name[VMSTATE_NAME_MAX + 1];
	uint32_t instance, version, len;
	struct vmstate_entry *e;
	struct staged *s;
	uint8_t *payload = NULL, *scratch = NULL;
	size_t i;
	int ret;

	ret = read_ident(r, name, &instance, &version, &len, err);
	if (ret)
		return ret;
	if (!id || (r->ram_open && id == r->ram_id))
		return vmstate_seterr(err, -EINVAL, "%s: bad section id %u", r->what, id);
	e = vmstate_find(r->reg, name, strlen(name), instance);
	if (!e)
		return vmstate_seterr(err, -ENOENT, "%s: unknown section", r->what);
	if (version > e->desc->version_id)
		return vmstate_seterr(err, -EPROTO, "%s: version %u is newer than supported %u",
				      r->what, version, e->desc->version_id);
	if (version < e->desc->minimum_version_id)
		return vmstate_seterr(err, -EPROTO, "%s: version %u is older than minimum %u",
				      r->what, version, e->desc->minimum_version_id);
	if (len > r->lim.max_device_bytes)
		return vmstate_seterr(err, -E2BIG, "%s: length %u over the limit %u", r->what, len,
				      r->lim.max_device_bytes);
	for (i = 0; i < r->nst; i++)
		if (r->st[i].e == e)
			return vmstate_seterr(err, -EINVAL, "%s: sent twice in one unit", r->what);
	payload = malloc(len ? len : 1);
	scratch = malloc(e->extent ? e->extent : 1);
	if (!payload || !scratch) {
		ret = vmstate_seterr(err, -ENOMEM, "%s: out of memory", r->what);
		goto out;
	}
	ret = rd(r, payload, len, err);
	if (!ret)
		ret = check_crc(r, err);
	if (ret)
		goto out;
	/* Validate by decoding into a copy; the device is not touched. */
	memcpy(scratch, e->opaque, e->extent);
	ret = vmstate_decode(e->desc, scratch, version, payload, len, r->what, err);
	if (ret)
		goto out;
	if (r->nst == r->capst) {
		size_t cap = r->capst ? r->capst * 2 : 16;

		s = realloc(r->st, cap * sizeof(*s));
		if (!s) {
			ret = vmstate_seterr(err, -ENOMEM, "%s: out of memory", r->what);
			goto out;
		}
		r->st = s;
		r->capst = cap;
	}
	r->st[r->nst++] = (struct staged){.e = e, .version = version, .payload = payload, .len = len};
	payload = NULL;
out:
	free(scratch);
	free(payload);
	return ret;
}

static void *map_pages(struct vmstate_reader *r, uint64_t gfn, uint32_t n,
		       struct vmstate_error *err)
{
	void *p = r->ops.ram_map ? r->ops.ram_map(r->ops.opaque, gfn, n) : NULL;

	if (!p)
		vmstate_seterr(err, -EFAULT,
			       "%s: RAM handler refused pages [%" PRIu64 ", +%u)", r->what, gfn, n);
	return p;
}

static int load_run(struct vmstate_reader *r, uint32_t *remaining, struct vmstate_error *err)
{
	uint8_t h[VMSTATE_RUN_HDR], cl[4];
	uint64_t gfn;
	uint32_t n, clen;
	size_t raw;
	void *dst;
	int ret;

	if (*remaining < VMSTATE_RUN_HDR)
		return vmstate_seterr(err, -EINVAL, "%s: run header crosses the record end",
				      r->what);
	ret = rd(r, h, sizeof(h), err);
	if (ret)
		return ret;
	*remaining -= VMSTATE_RUN_HDR;
	gfn = get_le64(h + 1);
	n = get_le32(h + 9);
	if (!n || n > r->lim.max_ram_bytes / VMSTATE_PAGE_SIZE || gfn >= r->ram_pages ||
	    n > r->ram_pages - gfn)
		return vmstate_seterr(err, -EINVAL,
				      "%s: run [%" PRIu64 ", +%u) outside RAM of %" PRIu64 " pages",
				      r->what, gfn, n, r->ram_pages);
	raw = (size_t)n * VMSTATE_PAGE_SIZE;
	switch (h[0]) {
	case VMSTATE_RUN_ZERO:
		if (r->ops.ram_zero) {
			int zr = r->ops.ram_zero(r->ops.opaque, gfn, n);

			return zr ? vmstate_seterr(err, zr, "%s: cannot clear run [%" PRIu64 ", +%u)",
						   r->what, gfn, n)
				  : 0;
		}
		dst = map_pages(r, gfn, n, err);
		if (!dst)
			return -EFAULT;
		memset(dst, 0, raw);
		return 0;
	case VMSTATE_RUN_RAW:
		if (raw > *remaining)
			return vmstate_seterr(err, -EINVAL, "%s: run data crosses the record end",
					      r->what);
		dst = map_pages(r, gfn, n, err);
		if (!dst)
			return -EFAULT;
		*remaining -= (uint32_t)raw;
		return rd(r, dst, raw, err);
	case VMSTATE_RUN_ZSTD:
		if (*remaining < 4)
			return vmstate_seterr(err, -EINVAL, "%s: run crosses the record end",
					      r->what);
		ret = rd(r, cl, 4, err);
		if (ret)
			return ret;
		*remaining -= 4;
		clen = get_le32(cl);
		if (!clen || clen >= raw || clen > *remaining)
			return vmstate_seterr(err, -EINVAL,
					      "%s: compressed length %u invalid for %zu bytes",
					      r->what, clen, raw);
		if (clen > r->zcap) {
			uint8_t *z = realloc(r->zbuf, clen);

			if (!z)
				return vmstate_seterr(err, -ENOMEM, "%s: out of memory", r->what);
			r->zbuf = z;
			r->zcap = clen;
		}
		ret = rd(r, r->zbuf, clen, err);
		if (ret)
			return ret;
		*remaining -= clen;
		dst = map_pages(r, gfn, n, err);
		if (!dst)
			return -EFAULT;
		if (ZSTD_decompressDCtx(r->zd, dst, raw, r->zbuf, clen) != raw)
			return vmstate_seterr(err, -EINVAL,
					      "%s: run [%" PRIu64 ", +%u) does not decompress",
					      r->what, gfn, n);
		return 0;
	}
	return vmstate_seterr(err, -EINVAL, "%s: unknown run flags 0x%02x", r->what, h[0]);
}

static int load_ram(struct vmstate_reader *r, uint8_t type, uint32_t id,
		    struct vmstate_error *err)
{
	uint8_t b[4];
	uint32_t len;
	int ret;

	snprintf(r->what, sizeof(r->what), "section 'ram' (%s)",
		 type == VMSTATE_REC_PART ? "PART" : "END");
	if (!r->ram_open || id != r->ram_id)
		return vmstate_seterr(err, -ENOENT, "%s: unknown section id %u", r->what, id);
	ret = rd(r, b, 4, err);
	if (ret)
		return ret;
	len = get_le32(b);
	if (len > r->lim.max_ram_bytes)
		return vmstate_seterr(err, -E2BIG, "%s: length %u over the limit %u", r->what, len,
				      r->lim.max_ram_bytes);
	while (len) {
		ret = load_run(r, &len, err);
		if (ret)
			return ret;
	}
	return check_crc(r, err);
}

static int load_cmd(struct vmstate_reader *r, uint32_t id, struct vmstate_error *err)
{
	uint8_t b[6], v[4] = {0};
	uint16_t cmd;
	uint32_t len;
	int ret;

	snprintf(r->what, sizeof(r->what), "command record");
	ret = rd(r, b, 6, err);
	if (ret)
		return ret;
	cmd = get_le16(b);
	len = get_le32(b + 2);
	if (cmd_len(cmd) < 0)
		return vmstate_seterr(err, -EINVAL, "%s: unknown command %u", r->what, cmd);
	snprintf(r->what, sizeof(r->what), "command %s", vmstate_cmd_name(cmd));
	if (id || len != (uint32_t)cmd_len(cmd))
		return vmstate_seterr(err, -EINVAL, "%s: bad id %u or length %u", r->what, id, len);
	ret = rd(r, v, len, err);
	if (!ret)
		ret = check_crc(r, err);
	if (ret)
		return ret;
	if (r->ops.cmd) {
		ret = r->ops.cmd(r->ops.opaque, cmd, get_le32(v));
		if (ret)
			return vmstate_seterr(err, ret < 0 ? ret : -EINVAL,
					      "%s: refused by the caller (%d)", r->what, ret);
	}
	return 0;
}

int vmstate_load_begin(struct vmstate_reader *r, struct vmstate_error *err)
{
	uint32_t nrec = 0, id;
	uint8_t type, b[4];
	int ret;

	vmstate_load_abort(r);
	if (r->broken)
		return vmstate_seterr(err, -EPIPE, "stream unusable after an earlier error");
	if (!r->header_ok)
		return vmstate_seterr(err, -EINVAL, "stream header not read");
	for (;;) {
		snprintf(r->what, sizeof(r->what), "record at offset %" PRIu64, r->off);
		r->crc = 0;
		ret = rd(r, &type, 1, err);
		if (ret)
			goto fail;
		if (type == VMSTATE_REC_EOF) {
			snprintf(r->what, sizeof(r->what), "EOF at offset %" PRIu64, r->off - 1);
			ret = rd(r, b, 4, err);
			if (!ret)
				ret = check_crc(r, err);
			if (ret)
				goto fail;
			if (get_le32(b) != nrec) {
				ret = vmstate_seterr(err, -EINVAL,
						     "%s: %u records announced, %u read", r->what,
						     get_le32(b), nrec);
				goto fail;
			}
			return 0;
		}
		if (++nrec > r->lim.max_records) {
			ret = vmstate_seterr(err, -E2BIG, "%s: more than %u records in a unit",
					     r->what, r->lim.max_records);
			goto fail;
		}
		ret = rd(r, b, 4, err);
		if (ret)
			goto fail;
		id = get_le32(b);
		switch (type) {
		case VMSTATE_REC_START:
			ret = load_start(r, id, err);
			break;
		case VMSTATE_REC_FULL:
			ret = load_full(r, id, err);
			break;
		case VMSTATE_REC_PART:
		case VMSTATE_REC_END:
			ret = load_ram(r, type, id, err);
			if (!ret && type == VMSTATE_REC_END && r->ops.ram_end)
				r->ops.ram_end(r->ops.opaque);
			break;
		case VMSTATE_REC_CMD:
			ret = load_cmd(r, id, err);
			break;
		default:
			ret = vmstate_seterr(err, -EINVAL, "%s: unknown record type 0x%02x",
					     r->what, type);
		}
		if (ret)
			goto fail;
	}
fail:
	r->broken = true;
	vmstate_load_abort(r);
	return ret;
}

int vmstate_load_commit(struct vmstate_reader *r, struct vmstate_error *err)
{
	uint8_t **backup;
	char what[VMSTATE_NAME_MAX + 40];
	size_t i, j, applied = 0;
	int ret = 0;

	if (!r->nst)
		return 0;
	backup = calloc(r->nst, sizeof(*backup));
	if (!backup)
		return vmstate_seterr(err, -ENOMEM, "commit: out of memory");
	for (i = 0; i < r->nst; i++) {
		struct vmstate_entry *e = r->st[i].e;

		backup[i] = malloc(e->extent ? e->extent : 1);
		if (!backup[i]) {
			ret = vmstate_seterr(err, -ENOMEM, "commit: out of memory");
			goto out;
		}
		memcpy(backup[i], e->opaque, e->extent);
	}
	for (i = 0; i < r->nst; i++) {
		struct staged *s = &r->st[i];

		snprintf(what, sizeof(what), "section '%s' instance %u", s->e->desc->name,
			 s->e->instance_id);
		applied = i + 1;
		/* Validated by load_begin on a copy: the same bytes decode again. */
		ret = vmstate_decode(s->e->desc, s->e->opaque, s->version, s->payload, s->len, what,
				     err);
		if (ret)
			goto rollback;
		if (s->e->desc->post_load) {
			ret = s->e->desc->post_load(s->e->opaque, s->version);
			if (ret) {
				ret = vmstate_seterr(err, ret < 0 ? ret : -EINVAL,
						     "%s: post_load refused the state (%d)", what,
						     ret);
				goto rollback;
			}
		}
	}
	goto out;
rollback:
	for (j = 0; j < applied; j++)
		memcpy(r->st[j].e->opaque, backup[j], r->st[j].e->extent);
	/* Re-sync what the successful post_load hooks derived from the new state. */
	for (j = 0; j + 1 < applied; j++)
		if (r->st[j].e->desc->post_load)
			r->st[j].e->desc->post_load(r->st[j].e->opaque,
						    r->st[j].e->desc->version_id);
out:
	for (i = 0; i < r->nst; i++)
		free(backup[i]);
	free(backup);
	vmstate_load_abort(r);
	return ret;
}
