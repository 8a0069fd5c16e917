/* SPDX-License-Identifier: GPL-2.0-only */
/* Unit tests for common/vmstate: descriptions, stream format, hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "testdev.h"

#define RAM_PAGES 64

/* ---- helpers ------------------------------------------------------------- */

struct ram_cache {
	uint8_t *mem;
	uint64_t npages;
	uint64_t maps;
};

static void *cache_map(void *opaque, uint64_t gfn, uint32_t npages)
{
	struct ram_cache *c = opaque;

	if (gfn >= c->npages || npages > c->npages - gfn)
		return NULL;
	c->maps++;
	return c->mem + gfn * VMSTATE_PAGE_SIZE;
}

struct cmd_log {
	int n;
	enum vmstate_cmd cmd[8];
	uint32_t val[8];
};

static int cmd_cb(void *opaque, enum vmstate_cmd cmd, uint32_t value)
{
	struct cmd_log *l = opaque;

	if (l->n < 8) {
		l->cmd[l->n] = cmd;
		l->val[l->n] = value;
	}
	l->n++;
	return 0;
}

/* A stream in a malloc'd buffer. */
struct blob {
	uint8_t *p;
	size_t len;
};

static void blob_from_sink(struct blob *b, struct vmstate_sink *sink)
{
	size_t len;
	const uint8_t *d = vmstate_sink_mem_data(sink, &len);

	b->p = malloc(len ? len : 1);
	assert_non_null(b->p);
	memcpy(b->p, d, len);
	b->len = len;
}

/* Writes header + [ram] + device sections + [cmds] + EOF. */
static void make_stream(struct blob *out, const struct vmstate_desc *desc, struct td_state *s,
			const uint8_t *ram, uint64_t ram_pages, int zstd_level, bool cmds)
{
	struct vmstate_registry *reg;
	struct vmstate_sink *sink;
	struct vmstate_writer *w;
	struct vmstate_writer_opts o = {.zstd_level = zstd_level};
	struct vmstate_error err = {0};

	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_register(reg, desc, 0, s, &err), 0);
	assert_int_equal(vmstate_sink_new_mem(&sink), 0);
	assert_int_equal(vmstate_writer_new(&w, sink, &o), 0);
	assert_int_equal(vmstate_write_header(w, &err), 0);
	if (cmds)
		assert_int_equal(vmstate_write_cmd(w, VMSTATE_CMD_PING, 42, &err), 0);
	if (ram) {
		assert_int_equal(vmstate_write_ram_start(w, ram_pages * VMSTATE_PAGE_SIZE, &err),
				 0);
		assert_int_equal(vmstate_write_ram_pages(w, ram, 0, ram_pages, &err), 0);
		assert_int_equal(vmstate_write_ram_end(w, &err), 0);
	}
	assert_int_equal(vmstate_write_devices(w, reg, &err), 0);
	if (cmds)
		assert_int_equal(vmstate_write_cmd(w, VMSTATE_CMD_ENABLE_COLO, 0, &err), 0);
	assert_int_equal(vmstate_write_eof(w, &err), 0);
	blob_from_sink(out, sink);
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	vmstate_registry_free(reg);
}

struct loader {
	struct vmstate_registry *reg;
	struct vmstate_source *src;
	struct vmstate_reader *r;
	struct ram_cache cache;
	struct cmd_log cmds;
	struct vmstate_error err;
};

/* ram_map and cmd get the loader; forward to its members. */
static void *loader_map(void *opaque, uint64_t gfn, uint32_t n)
{
	return cache_map(&((struct loader *)opaque)->cache, gfn, n);
}

static int loader_cmd(void *opaque, enum vmstate_cmd cmd, uint32_t v)
{
	return cmd_cb(&((struct loader *)opaque)->cmds, cmd, v);
}

static void loader_open2(struct loader *l, const struct vmstate_desc *desc, struct td_state *dst,
			 const uint8_t *buf, size_t len, uint8_t *cache, uint64_t cache_pages)
{
	struct vmstate_load_ops ops = {.ram_map = loader_map, .cmd = loader_cmd};

	memset(l, 0, sizeof(*l));
	l->cache.mem = cache;
	l->cache.npages = cache_pages;
	assert_int_equal(vmstate_registry_new(&l->reg), 0);
	if (desc)
		assert_int_equal(vmstate_register(l->reg, desc, 0, dst, &l->err), 0);
	assert_int_equal(vmstate_source_new_mem(&l->src, buf, len), 0);
	ops.opaque = l;
	assert_int_equal(vmstate_reader_new(&l->r, l->src, l->reg, &ops, NULL), 0);
}

static void loader_close(struct loader *l)
{
	vmstate_reader_free(l->r);
	vmstate_source_free(l->src);
	vmstate_registry_free(l->reg);
}

/* Header + begin; returns the first error. */
static int loader_begin(struct loader *l)
{
	int ret = vmstate_read_header(l->r, &l->err);

	if (ret)
		return ret;
	return vmstate_load_begin(l->r, &l->err);
}

/* Compare the described part of two states (everything before the bookkeeping). */
static void assert_state_equal(const struct td_state *a, const struct td_state *b)
{
	assert_memory_equal(a, b, offsetof(struct td_state, post_load_calls));
}

/* A small stream with every record kind: RAM runs of all three flags, device, commands. */
static void small_stream(struct blob *b, struct td_state *src)
{
	static uint8_t ram[8 * VMSTATE_PAGE_SIZE];

	td_fill(src, 1);
	td_fill_ram(ram, 8, 3);
	make_stream(b, &td_desc, src, ram, 8, 1, true);
}

/* ---- tests --------------------------------------------------------------- */

static void test_roundtrip_all_kinds(void **state)
{
	struct td_state src, dst, again;
	struct blob b1, b2;
	struct loader l;

	td_fill(&src, 7);
	make_stream(&b1, &td_desc, &src, NULL, 0, 0, false);
	assert_int_equal(src.pre_save_calls, 1);

	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc, &dst, b1.p, b1.len, NULL, 0);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_load_staged(l.r), 1);
	/* Phase 1 touches nothing and runs no hook. */
	memset(&again, 0, sizeof(again));
	assert_memory_equal(&dst, &again, sizeof(dst));
	assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
	assert_int_equal(dst.post_load_calls, 1);
	assert_int_equal(dst.post_load_version, 2);
	assert_state_equal(&src, &dst);
	loader_close(&l);

	/* Saving the loaded object gives the same bytes. */
	make_stream(&b2, &td_desc, &dst, NULL, 0, 0, false);
	assert_int_equal(b1.len, b2.len);
	assert_memory_equal(b1.p, b2.p, b1.len);
	free(b1.p);
	free(b2.p);
}

static void test_version_field_absent_in_old_stream(void **state)
{
	struct td_state src, dst;
	struct blob b;
	struct loader l;

	td_fill(&src, 3);
	make_stream(&b, &td_desc_v1, &src, NULL, 0, 0, false); /* old software */
	memset(&dst, 0, sizeof(dst));
	dst.v2field = 777;
	loader_open2(&l, &td_desc, &dst, b.p, b.len, NULL, 0);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
	assert_int_equal(dst.v2field, 777); /* not in a version 1 stream */
	assert_int_equal(dst.u64, src.u64);
	assert_int_equal(dst.post_load_version, 1);
	loader_close(&l);
	free(b.p);
}

static void test_version_newer_refused(void **state)
{
	struct td_state src, dst;
	struct blob b;
	struct loader l;

	td_fill(&src, 3);
	make_stream(&b, &td_desc, &src, NULL, 0, 0, false);
	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc_v1, &dst, b.p, b.len, NULL, 0);
	assert_int_equal(loader_begin(&l), -EPROTO);
	assert_non_null(strstr(l.err.msg, "section 'td' instance 0: version 2 is newer"));
	assert_int_equal(vmstate_load_staged(l.r), 0);
	loader_close(&l);
	free(b.p);
}

static void test_version_below_minimum_refused(void **state)
{
	static const struct vmstate_desc td_desc_min2 = {
		.name = "td", .version_id = 2, .minimum_version_id = 2,
		.fields = td_fields_v2, .subsections = td_subs,
	};
	struct td_state src, dst;
	struct blob b;
	struct loader l;

	td_fill(&src, 3);
	make_stream(&b, &td_desc_v1, &src, NULL, 0, 0, false);
	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc_min2, &dst, b.p, b.len, NULL, 0);
	assert_int_equal(loader_begin(&l), -EPROTO);
	assert_non_null(strstr(l.err.msg, "older than minimum 2"));
	loader_close(&l);
	free(b.p);
}

static void patch_header(struct blob *b, uint16_t major, uint16_t minor)
{
	uint32_t crc;

	b->p[4] = (uint8_t)major;
	b->p[5] = (uint8_t)(major >> 8);
	b->p[6] = (uint8_t)minor;
	b->p[7] = (uint8_t)(minor >> 8);
	crc = (uint32_t)crc32(0, b->p, 12);
	memcpy(b->p + 12, &crc, 4);
}

static void test_stream_version(void **state)
{
	struct td_state src, dst;
	struct blob b;
	struct loader l;

	td_fill(&src, 3);
	make_stream(&b, &td_desc, &src, NULL, 0, 0, false);
	patch_header(&b, VMSTATE_VERSION_MAJOR + 1, 0);
	loader_open2(&l, &td_desc, &dst, b.p, b.len, NULL, 0);
	assert_int_equal(loader_begin(&l), -EPROTO);
	assert_non_null(strstr(l.err.msg, "stream header: version 2.0 not supported"));
	loader_close(&l);

	patch_header(&b, VMSTATE_VERSION_MAJOR, VMSTATE_VERSION_MINOR + 1);
	loader_open2(&l, &td_desc, &dst, b.p, b.len, NULL, 0);
	assert_int_equal(loader_begin(&l), -EPROTO);
	loader_close(&l);

	b.p[0] ^= 0xff;
	loader_open2(&l, &td_desc, &dst, b.p, b.len, NULL, 0);
	assert_int_equal(loader_begin(&l), -EPROTO);
	assert_non_null(strstr(l.err.msg, "bad magic"));
	loader_close(&l);
	free(b.p);
}

static void test_subsection_needed(void **state)
{
	struct td_state src, dst;
	struct blob on, off;
	struct loader l;

	td_fill(&src, 3);
	make_stream(&on, &td_desc, &src, NULL, 0, 0, false);
	src.sub_val = 0;
	memset(src.sub_arr, 0, sizeof(src.sub_arr));
	make_stream(&off, &td_desc, &src, NULL, 0, 0, false);
	assert_true(off.len < on.len);

	/* Absent subsection: its fields keep their value. */
	memset(&dst, 0, sizeof(dst));
	dst.sub_val = 99;
	loader_open2(&l, &td_desc, &dst, off.p, off.len, NULL, 0);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
	assert_int_equal(dst.sub_val, 99);
	assert_int_equal(dst.u32, src.u32);
	loader_close(&l);

	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc, &dst, on.p, on.len, NULL, 0);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
	assert_int_equal(dst.sub_val, 0x5555aaaa5555aaaaull);
	assert_int_equal(dst.sub_arr[1], 2);
	loader_close(&l);
	free(on.p);
	free(off.p);
}

static void test_subsection_unknown(void **state)
{
	static const struct vmstate_field more_fields[] = {
		VMSTATE_U32(struct td_state, v2field),
		VMSTATE_END,
	};
	static const struct vmstate_desc more = {
		.name = "td/more", .version_id = 1, .fields = more_fields,
	};
	static const struct vmstate_desc *const subs2[] = {&td_sub_desc, &more, NULL};
	static const struct vmstate_desc newer = {
		.name = "td", .version_id = 2, .minimum_version_id = 1,
		.fields = td_fields_v2, .subsections = subs2,
	};
	struct td_state src, dst;
	struct blob b;
	struct loader l;

	td_fill(&src, 3);
	make_stream(&b, &newer, &src, NULL, 0, 0, false);
	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc, &dst, b.p, b.len, NULL, 0);
	assert_int_equal(loader_begin(&l), -EINVAL);
	assert_non_null(strstr(l.err.msg, "section 'td' instance 0: unknown subsection 'td/more'"));
	loader_close(&l);
	free(b.p);
}

static void test_post_load_rejects(void **state)
{
	static const struct vmstate_desc td2 = {
		.name = "td2", .version_id = 2, .minimum_version_id = 1,
		.fields = td_fields_v2, .post_load = td_post_load,
	};
	struct td_state a, b, da, db, orig_a;
	struct vmstate_registry *reg;
	struct vmstate_sink *sink;
	struct vmstate_writer *w;
	struct vmstate_error err = {0};
	struct blob s;
	struct loader l;

	td_fill(&a, 1);
	td_fill(&b, 2);
	b.u32 = 0xdeadbeef; /* td_post_load refuses this */
	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_register(reg, &td_desc, 0, &a, &err), 0);
	assert_int_equal(vmstate_register(reg, &td2, 5, &b, &err), 0);
	assert_int_equal(vmstate_sink_new_mem(&sink), 0);
	assert_int_equal(vmstate_writer_new(&w, sink, NULL), 0);
	assert_int_equal(vmstate_write_header(w, &err), 0);
	assert_int_equal(vmstate_write_devices(w, reg, &err), 0);
	assert_int_equal(vmstate_write_eof(w, &err), 0);
	blob_from_sink(&s, sink);
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	vmstate_registry_free(reg);

	td_fill(&da, 9);
	td_fill(&db, 9);
	orig_a = da;
	loader_open2(&l, &td_desc, &da, s.p, s.len, NULL, 0);
	assert_int_equal(vmstate_register(l.reg, &td2, 5, &db, &l.err), 0);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_load_staged(l.r), 2);
	assert_int_equal(vmstate_load_commit(l.r, &l.err), -EINVAL);
	assert_non_null(strstr(l.err.msg, "section 'td2' instance 5: post_load refused"));
	/* Both devices are back to their previous state. */
	assert_state_equal(&da, &orig_a);
	assert_state_equal(&db, &orig_a);
	/* td: post_load on the new state, then again on the restored one. */
	assert_int_equal(da.post_load_calls, 2);
	assert_int_equal(vmstate_load_staged(l.r), 0);
	loader_close(&l);
	free(s.p);
}

static void ram_roundtrip(int level)
{
	static uint8_t ram[RAM_PAGES * VMSTATE_PAGE_SIZE], cache[RAM_PAGES * VMSTATE_PAGE_SIZE];
	struct vmstate_registry *reg;
	struct vmstate_sink *sink;
	struct vmstate_writer *w;
	struct vmstate_writer_opts o = {.zstd_level = level, .run_max_pages = 4};
	struct vmstate_ram_stats st;
	struct vmstate_error err = {0};
	struct blob b;
	struct loader l;

	td_fill_ram(ram, RAM_PAGES, 5);
	memset(cache, 0xee, sizeof(cache));
	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_sink_new_mem(&sink), 0);
	assert_int_equal(vmstate_writer_new(&w, sink, &o), 0);
	assert_int_equal(vmstate_write_header(w, &err), 0);
	assert_int_equal(vmstate_write_ram_start(w, sizeof(ram), &err), 0);
	/* Two passes of a checkpoint-like iteration: ranges, then the rest. */
	assert_int_equal(vmstate_write_ram_pages(w, ram, 0, 10, &err), 0);
	assert_int_equal(vmstate_write_ram_flush(w, &err), 0);
	assert_int_equal(vmstate_write_ram_pages(w, ram, 10, RAM_PAGES - 10, &err), 0);
	assert_int_equal(vmstate_write_ram_end(w, &err), 0);
	assert_int_equal(vmstate_write_eof(w, &err), 0);
	assert_int_equal(vmstate_write_ram_pages(w, ram, RAM_PAGES - 1, 2, &err), -ERANGE);
	vmstate_writer_ram_stats(w, &st);
	assert_int_equal(st.pages_zero, RAM_PAGES / 4);
	if (level) {
		assert_true(st.pages_zstd >= RAM_PAGES / 4);
		assert_true(st.bytes_zstd_out < st.bytes_zstd_in / 2);
	} else {
		assert_int_equal(st.pages_zstd, 0);
	}
	assert_int_equal(st.pages_raw + st.pages_zero + st.pages_zstd, RAM_PAGES);
	blob_from_sink(&b, sink);
	if (!level)
		assert_true(b.len > (RAM_PAGES * 3 / 4) * VMSTATE_PAGE_SIZE);
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	vmstate_registry_free(reg);

	loader_open2(&l, NULL, NULL, b.p, b.len, cache, RAM_PAGES);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_reader_ram_bytes(l.r), sizeof(ram));
	assert_memory_equal(ram, cache, sizeof(ram));
	loader_close(&l);
	free(b.p);
}

static void test_ram_roundtrip_raw(void **state)
{
	ram_roundtrip(0);
}

static void test_ram_roundtrip_zstd(void **state)
{
	ram_roundtrip(1);
}

static void test_commands_and_units(void **state)
{
	static uint8_t cache[8 * VMSTATE_PAGE_SIZE];
	struct td_state src, dst;
	struct blob b;
	struct loader l;

	small_stream(&b, &src);
	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc, &dst, b.p, b.len, cache, 8);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(l.cmds.n, 2);
	assert_int_equal(l.cmds.cmd[0], VMSTATE_CMD_PING);
	assert_int_equal(l.cmds.val[0], 42);
	assert_int_equal(l.cmds.cmd[1], VMSTATE_CMD_ENABLE_COLO);
	assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
	assert_state_equal(&src, &dst);
	/* The stream is exhausted: a further unit is truncated. */
	assert_int_equal(vmstate_load_begin(l.r, &l.err), -ENODATA);
	assert_non_null(strstr(l.err.msg, "truncated"));
	/* ... and the reader stays refused. */
	assert_int_equal(vmstate_load_begin(l.r, &l.err), -EPIPE);
	loader_close(&l);
	free(b.p);
}

static void test_checkpoint_units(void **state)
{
	static uint8_t ram[16 * VMSTATE_PAGE_SIZE], cache[16 * VMSTATE_PAGE_SIZE];
	struct td_state src, dst;
	struct vmstate_registry *reg;
	struct vmstate_sink *sink;
	struct vmstate_writer *w;
	struct vmstate_error err = {0};
	struct blob b;
	struct loader l;
	int i;

	td_fill(&src, 1);
	td_fill_ram(ram, 16, 1);
	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_register(reg, &td_desc, 0, &src, &err), 0);
	assert_int_equal(vmstate_sink_new_mem(&sink), 0);
	assert_int_equal(vmstate_writer_new(&w, sink, NULL), 0);
	assert_int_equal(vmstate_write_header(w, &err), 0);
	assert_int_equal(vmstate_write_ram_start(w, sizeof(ram), &err), 0);
	assert_int_equal(vmstate_write_ram_pages(w, ram, 0, 16, &err), 0);
	assert_int_equal(vmstate_write_ram_end(w, &err), 0);
	assert_int_equal(vmstate_write_devices(w, reg, &err), 0);
	assert_int_equal(vmstate_write_cmd(w, VMSTATE_CMD_ENABLE_COLO, 0, &err), 0);
	assert_int_equal(vmstate_write_eof(w, &err), 0);
	for (i = 1; i <= 3; i++) { /* checkpoints: dirty page i, device change */
		ram[i * VMSTATE_PAGE_SIZE] = (uint8_t)(0x40 + i);
		src.u32 = (uint32_t)i;
		assert_int_equal(vmstate_write_cmd(w, VMSTATE_CMD_PING, (uint32_t)i, &err), 0);
		assert_int_equal(vmstate_write_ram_pages(w, ram, (uint64_t)i, 1, &err), 0);
		assert_int_equal(vmstate_write_ram_end(w, &err), 0);
		assert_int_equal(vmstate_write_devices(w, reg, &err), 0);
		assert_int_equal(vmstate_write_eof(w, &err), 0);
	}
	blob_from_sink(&b, sink);
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	vmstate_registry_free(reg);

	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc, &dst, b.p, b.len, cache, 16);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(vmstate_load_begin(l.r, &l.err), 0);
		assert_int_equal(l.cmds.val[i], (uint32_t)i);
		assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
		assert_int_equal(dst.u32, (uint32_t)i);
	}
	assert_memory_equal(ram, cache, sizeof(ram));
	loader_close(&l);
	free(b.p);
}

/* Every prefix of a valid stream is refused cleanly and commits nothing. */
static void test_truncation_every_offset(void **state)
{
	static uint8_t cache[8 * VMSTATE_PAGE_SIZE];
	struct td_state src, dst, zero;
	struct blob b;
	struct loader l;
	size_t cut;

	small_stream(&b, &src);
	memset(&zero, 0, sizeof(zero));
	for (cut = 0; cut < b.len; cut++) {
		memset(&dst, 0, sizeof(dst));
		loader_open2(&l, &td_desc, &dst, b.p, cut, cache, 8);
		assert_int_not_equal(loader_begin(&l), 0);
		assert_true(l.err.msg[0] != '\0');
		assert_int_equal(vmstate_load_staged(l.r), 0);
		assert_int_equal(vmstate_load_commit(l.r, &l.err), 0); /* nothing to apply */
		assert_memory_equal(&dst, &zero, sizeof(dst));
		loader_close(&l);
	}
	memset(&dst, 0, sizeof(dst));
	loader_open2(&l, &td_desc, &dst, b.p, b.len, cache, 8);
	assert_int_equal(loader_begin(&l), 0);
	assert_int_equal(vmstate_load_commit(l.r, &l.err), 0);
	assert_state_equal(&src, &dst);
	loader_close(&l);
	free(b.p);
}

/* Every single-bit flip is refused (CRC or structure) and commits nothing. */
static void test_bit_flips(void **state)
{
	static uint8_t cache[8 * VMSTATE_PAGE_SIZE];
	struct td_state src, dst, zero;
	struct blob b;
	struct loader l;
	size_t bit;
	int crc_hits = 0;

	small_stream(&b, &src);
	memset(&zero, 0, sizeof(zero));
	for (bit = 0; bit < b.len * 8; bit++) {
		b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		memset(&dst, 0, sizeof(dst));
		loader_open2(&l, &td_desc, &dst, b.p, b.len, cache, 8);
		assert_int_not_equal(loader_begin(&l), 0);
		crc_hits += l.err.code == -EBADMSG;
		assert_int_equal(vmstate_load_staged(l.r), 0);
		assert_memory_equal(&dst, &zero, sizeof(dst));
		loader_close(&l);
		b.p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_true(crc_hits > 0);
	free(b.p);
}

/* ---- hand-built hostile records ----------------------------------------- */

struct rb {
	uint8_t p[1 << 16];
	size_t len, rec;
};

static void rb_bytes(struct rb *b, const void *d, size_t n)
{
	memcpy(b->p + b->len, d, n);
	b->len += n;
}
static void rb_u8(struct rb *b, uint8_t v)
{
	rb_bytes(b, &v, 1);
}
static void rb_u16(struct rb *b, uint16_t v)
{
	rb_bytes(b, &v, 2);
}
static void rb_u32(struct rb *b, uint32_t v)
{
	rb_bytes(b, &v, 4);
}
static void rb_u64(struct rb *b, uint64_t v)
{
	rb_bytes(b, &v, 8);
}
static void rb_header(struct rb *b)
{
	uint32_t crc;

	b->len = 0;
	rb_u32(b, VMSTATE_MAGIC);
	rb_u16(b, VMSTATE_VERSION_MAJOR);
	rb_u16(b, VMSTATE_VERSION_MINOR);
	rb_u32(b, VMSTATE_PAGE_SIZE);
	crc = (uint32_t)crc32(0, b->p, 12);
	rb_u32(b, crc);
}
static void rb_begin(struct rb *b)
{
	b->rec = b->len;
}
static void rb_crc(struct rb *b)
{
	rb_u32(b, (uint32_t)crc32(0, b->p + b->rec, (uInt)(b->len - b->rec)));
}
static void rb_ident(struct rb *b, uint8_t type, uint32_t id, const char *name, uint32_t inst,
		     uint32_t ver, uint32_t len)
{
	rb_begin(b);
	rb_u8(b, type);
	rb_u32(b, id);
	rb_u8(b, (uint8_t)strlen(name));
	rb_bytes(b, name, strlen(name));
	rb_u32(b, inst);
	rb_u32(b, ver);
	rb_u32(b, len);
}
static void rb_eof(struct rb *b, uint32_t n)
{
	rb_begin(b);
	rb_u8(b, 0);
	rb_u32(b, n);
	rb_crc(b);
}

static int load_rb(struct rb *b, struct td_state *dst, char *msg, size_t msglen)
{
	static uint8_t cache[16 * VMSTATE_PAGE_SIZE];
	struct loader l;
	int ret;

	loader_open2(&l, &td_desc, dst, b->p, b->len, cache, 16);
	ret = loader_begin(&l);
	snprintf(msg, msglen, "%s", l.err.msg);
	if (!ret)
		ret = vmstate_load_commit(l.r, &l.err);
	loader_close(&l);
	return ret;
}

/* header + the FULL record of td_fill(1) with payload byte `off` set to v + EOF. */
static void device_record(struct rb *b, size_t off, uint8_t v)
{
	struct td_state src;
	struct vmstate_registry *reg;
	struct vmstate_sink *sink;
	struct vmstate_writer *w;
	struct vmstate_error err = {0};
	const uint8_t *d;
	size_t len;

	td_fill(&src, 1);
	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_register(reg, &td_desc, 0, &src, &err), 0);
	assert_int_equal(vmstate_sink_new_mem(&sink), 0);
	assert_int_equal(vmstate_writer_new(&w, sink, NULL), 0);
	assert_int_equal(vmstate_write_devices(w, reg, &err), 0);
	d = vmstate_sink_mem_data(sink, &len);
	rb_header(b);
	rb_begin(b);
	rb_bytes(b, d, len - 4);
	/* payload starts after type, id, name_len, "td", instance, version, len */
	b->p[b->rec + 1 + 4 + 1 + 2 + 12 + off] = v;
	rb_crc(b);
	rb_eof(b, 1);
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	vmstate_registry_free(reg);
}

static struct rb rbuf;

static void test_hostile_lengths(void **state)
{
	struct td_state src, dst;
	struct vmstate_registry *reg;
	struct vmstate_sink *sink;
	struct vmstate_writer *w;
	struct vmstate_error err = {0};
	struct rb *b = &rbuf;
	char msg[256];

	memset(&dst, 0, sizeof(dst));
	/* Huge device payload length. */
	rb_header(b);
	rb_ident(b, 4, 1, "td", 0, 2, 0xffffffffu);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -E2BIG);
	assert_non_null(strstr(msg, "section 'td' instance 0: length 4294967295 over the limit"));

	/* Unknown device. */
	rb_header(b);
	rb_ident(b, 4, 1, "nope", 3, 1, 0);
	rb_crc(b);
	rb_eof(b, 1);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -ENOENT);
	assert_non_null(strstr(msg, "section 'nope' instance 3: unknown section"));

	/* Count field over its bound, with a valid CRC. */
	device_record(b, 27 + 1 + 3 + 10 + 16, 200);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "section 'td' instance 0: field 'q' count 200 exceeds bound 8"));
	/* Bool that is neither 0 nor 1. */
	device_record(b, 27, 2);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "field 'flag' bool value 2 is not 0/1"));
	/* Struct array count over its bound. */
	device_record(b, 27 + 1 + 3 + 10 + 16 + 2 + 5 * 8 + 9 * 4, 5);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "field 'vinn' count 5 exceeds bound 4"));

	/* The writer refuses to save a count over its bound. */
	td_fill(&src, 1);
	src.nq = 9;
	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_register(reg, &td_desc, 0, &src, &err), 0);
	assert_int_equal(vmstate_sink_new_mem(&sink), 0);
	assert_int_equal(vmstate_writer_new(&w, sink, NULL), 0);
	assert_int_equal(vmstate_write_devices(w, reg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "count 9 exceeds bound 8"));
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	vmstate_registry_free(reg);

	/* RAM: START with a sane size, then runs with hostile counts. */
	rb_header(b);
	rb_ident(b, 1, 1, "ram", 0, 1, 8);
	rb_u64(b, 16 * VMSTATE_PAGE_SIZE);
	rb_crc(b);
	rb_begin(b);
	rb_u8(b, 2);
	rb_u32(b, 1);
	rb_u32(b, 13);
	rb_u8(b, 1); /* ZERO */
	rb_u64(b, 0xfffffffffffffff0ull);
	rb_u32(b, 0x20);
	rb_crc(b);
	rb_eof(b, 2);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "section 'ram' (PART): run [18446744073709551600, +32) outside"));

	/* RAM run data longer than the record. */
	rb_header(b);
	rb_ident(b, 1, 1, "ram", 0, 1, 8);
	rb_u64(b, 16 * VMSTATE_PAGE_SIZE);
	rb_crc(b);
	rb_begin(b);
	rb_u8(b, 3);
	rb_u32(b, 1);
	rb_u32(b, 13 + 100);
	rb_u8(b, 0); /* RAW, 1 page but only 100 bytes in the record */
	rb_u64(b, 0);
	rb_u32(b, 1);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "run data crosses the record end"));

	/* ZSTD run whose compressed length is not smaller than raw. */
	rb_header(b);
	rb_ident(b, 1, 1, "ram", 0, 1, 8);
	rb_u64(b, 16 * VMSTATE_PAGE_SIZE);
	rb_crc(b);
	rb_begin(b);
	rb_u8(b, 2);
	rb_u32(b, 1);
	rb_u32(b, 0x7fffffff);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -E2BIG);

	rb_header(b);
	rb_ident(b, 1, 1, "ram", 0, 1, 8);
	rb_u64(b, 16 * VMSTATE_PAGE_SIZE);
	rb_crc(b);
	rb_begin(b);
	rb_u8(b, 2);
	rb_u32(b, 1);
	rb_u32(b, 17 + 4096);
	rb_u8(b, 2);
	rb_u64(b, 0);
	rb_u32(b, 1);
	rb_u32(b, 4096);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "compressed length 4096 invalid"));

	/* PART for a section id never started. */
	rb_header(b);
	rb_begin(b);
	rb_u8(b, 2);
	rb_u32(b, 9);
	rb_u32(b, 0);
	rb_crc(b);
	rb_eof(b, 1);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -ENOENT);

	/* Unknown record type, unknown command, wrong EOF count. */
	rb_header(b);
	rb_u8(b, 0x42);
	rb_u32(b, 0);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "unknown record type 0x42"));

	rb_header(b);
	rb_begin(b);
	rb_u8(b, 8);
	rb_u32(b, 0);
	rb_u16(b, 99);
	rb_u32(b, 0);
	rb_crc(b);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "unknown command 99"));

	rb_header(b);
	rb_begin(b);
	rb_u8(b, 8);
	rb_u32(b, 0);
	rb_u16(b, VMSTATE_CMD_ENABLE_COLO);
	rb_u32(b, 0);
	rb_crc(b);
	rb_eof(b, 7);
	assert_int_equal(load_rb(b, &dst, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "7 records announced, 1 read"));

}

static void test_register_errors(void **state)
{
	static const struct vmstate_field bad_order[] = {
		VMSTATE_VARRAY(struct td_state, q, nq, VMSTATE_KIND_U64),
		VMSTATE_U16(struct td_state, nq),
		VMSTATE_END,
	};
	static const struct vmstate_field bad_kind[] = {
		{.name = "x", .kind = VMSTATE_KIND_U32, .offset = 0, .size = 2, .count = 1},
		VMSTATE_END,
	};
	static const struct vmstate_desc d_order = {.name = "o", .version_id = 1,
						    .fields = bad_order};
	static const struct vmstate_desc d_kind = {.name = "k", .version_id = 1,
						   .fields = bad_kind};
	static const struct vmstate_desc d_ram = {.name = "ram", .version_id = 1,
						  .fields = td_fields_v1};
	static const struct vmstate_desc d_ver = {.name = "v", .version_id = 1,
						  .fields = td_fields_v2};
	struct vmstate_registry *reg;
	struct vmstate_error err = {0};
	struct td_state s;

	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_register(reg, &d_order, 0, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "count field 'nq'"));
	assert_int_equal(vmstate_register(reg, &d_kind, 0, &s, &err), -EINVAL);
	assert_int_equal(vmstate_register(reg, &d_ram, 0, &s, &err), -EINVAL);
	assert_int_equal(vmstate_register(reg, &d_ver, 0, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "field 'v2field' version 2 > description version 1"));
	assert_int_equal(vmstate_register(reg, &td_desc, 0, &s, &err), 0);
	assert_int_equal(vmstate_register(reg, &td_desc, 0, &s, &err), -EEXIST);
	assert_int_equal(vmstate_register(reg, &td_desc, 1, &s, &err), 0);
	assert_int_equal(vmstate_unregister(reg, "td", 1), 0);
	assert_int_equal(vmstate_unregister(reg, "td", 1), -ENOENT);
	vmstate_registry_free(reg);
}

static void test_fd_sink_source(void **state)
{
	static uint8_t ram[RAM_PAGES * VMSTATE_PAGE_SIZE], cache[RAM_PAGES * VMSTATE_PAGE_SIZE];
	struct td_state src, dst;
	struct vmstate_registry *reg, *reg2;
	struct vmstate_sink *sink;
	struct vmstate_source *source;
	struct vmstate_writer *w;
	struct vmstate_reader *r;
	struct ram_cache rc = {.mem = cache, .npages = RAM_PAGES};
	struct vmstate_load_ops ops = {.ram_map = cache_map, .opaque = &rc};
	struct vmstate_error err = {0};
	FILE *f = tmpfile();
	int fd;

	assert_non_null(f);
	fd = fileno(f);
	td_fill(&src, 4);
	td_fill_ram(ram, RAM_PAGES, 9);
	assert_int_equal(vmstate_registry_new(&reg), 0);
	assert_int_equal(vmstate_register(reg, &td_desc, 0, &src, &err), 0);
	assert_int_equal(vmstate_sink_new_fd(&sink, fd), 0);
	assert_int_equal(vmstate_writer_new(&w, sink, NULL), 0);
	assert_int_equal(vmstate_write_header(w, &err), 0);
	assert_int_equal(vmstate_write_ram_start(w, sizeof(ram), &err), 0);
	assert_int_equal(vmstate_write_ram_pages(w, ram, 0, RAM_PAGES, &err), 0);
	assert_int_equal(vmstate_write_ram_end(w, &err), 0);
	assert_int_equal(vmstate_write_devices(w, reg, &err), 0);
	assert_int_equal(vmstate_write_eof(w, &err), 0);
	assert_int_equal((uint64_t)lseek(fd, 0, SEEK_CUR), vmstate_sink_bytes(sink));
	vmstate_writer_free(w);
	vmstate_sink_free(sink);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	memset(&dst, 0, sizeof(dst));
	assert_int_equal(vmstate_registry_new(&reg2), 0);
	assert_int_equal(vmstate_register(reg2, &td_desc, 0, &dst, &err), 0);
	assert_int_equal(vmstate_source_new_fd(&source, fd), 0);
	assert_int_equal(vmstate_reader_new(&r, source, reg2, &ops, NULL), 0);
	assert_int_equal(vmstate_read_header(r, &err), 0);
	assert_int_equal(vmstate_load_begin(r, &err), 0);
	assert_int_equal(vmstate_load_commit(r, &err), 0);
	assert_state_equal(&src, &dst);
	assert_memory_equal(ram, cache, sizeof(ram));
	/* End of file: the next unit is truncated. */
	assert_int_equal(vmstate_load_begin(r, &err), -ENODATA);
	vmstate_reader_free(r);
	vmstate_source_free(source);
	vmstate_registry_free(reg);
	vmstate_registry_free(reg2);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all_kinds),
		cmocka_unit_test(test_version_field_absent_in_old_stream),
		cmocka_unit_test(test_version_newer_refused),
		cmocka_unit_test(test_version_below_minimum_refused),
		cmocka_unit_test(test_stream_version),
		cmocka_unit_test(test_subsection_needed),
		cmocka_unit_test(test_subsection_unknown),
		cmocka_unit_test(test_post_load_rejects),
		cmocka_unit_test(test_ram_roundtrip_raw),
		cmocka_unit_test(test_ram_roundtrip_zstd),
		cmocka_unit_test(test_commands_and_units),
		cmocka_unit_test(test_checkpoint_units),
		cmocka_unit_test(test_truncation_every_offset),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_hostile_lengths),
		cmocka_unit_test(test_register_errors),
		cmocka_unit_test(test_fd_sink_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
