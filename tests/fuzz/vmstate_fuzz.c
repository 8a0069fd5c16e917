/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * libFuzzer target for the checkpoint stream loader: header, then up to 4
 * units, each load_begin + commit, into the test device of the unit tests
 * and a 16-page RAM cache.
 *
 * Seeds in tests/fuzz/corpus/vmstate/ come from the generator in this file:
 *   cc -DVMSTATE_FUZZ_GEN -I. tests/fuzz/vmstate_fuzz.c build/common/vmstate/libcolovm_vmstate.a \
 *      build/common/libcolovm_common.a -lzstd -lz -lisal -o gen && ./gen tests/fuzz/corpus/vmstate
 */
#include <stdio.h>

#include "tests/unit/vmstate/testdev.h"

#define FUZZ_PAGES 16

static uint8_t cache[FUZZ_PAGES * VMSTATE_PAGE_SIZE];

static void *fuzz_map(void *opaque, uint64_t gfn, uint32_t npages)
{
	if (gfn >= FUZZ_PAGES || npages > FUZZ_PAGES - gfn)
		return NULL;
	return cache + gfn * VMSTATE_PAGE_SIZE;
}

static int fuzz_cmd(void *opaque, enum vmstate_cmd cmd, uint32_t value)
{
	return 0;
}

#ifndef VMSTATE_FUZZ_GEN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vmstate_load_ops ops = {.ram_map = fuzz_map, .cmd = fuzz_cmd};
	static const struct vmstate_limits lim = {
		.max_device_bytes = 1 << 16, .max_ram_bytes = 1 << 20, .max_records = 4096};
	struct td_state a, b;
	struct vmstate_registry *reg = NULL;
	struct vmstate_source *src = NULL;
	struct vmstate_reader *r = NULL;
	struct vmstate_error err;
	int i;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (vmstate_registry_new(&reg) || vmstate_register(reg, &td_desc, 0, &a, &err) ||
	    vmstate_register(reg, &td_desc_v1, 1, &b, &err) ||
	    vmstate_source_new_mem(&src, data, size) ||
	    vmstate_reader_new(&r, src, reg, &ops, &lim))
		goto out;
	if (vmstate_read_header(r, &err))
		goto out;
	for (i = 0; i < 4; i++) {
		if (vmstate_load_begin(r, &err))
			break;
		vmstate_load_commit(r, &err);
	}
out:
	vmstate_reader_free(r);
	vmstate_source_free(src);
	vmstate_registry_free(reg);
	return 0;
}
#else
static int emit(const char *dir, const char *name, struct vmstate_sink *sink)
{
	char path[512];
	size_t len;
	const uint8_t *d = vmstate_sink_mem_data(sink, &len);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(d, 1, len, f) != len) {
		perror(path);
		return 1;
	}
	fclose(f);
	vmstate_sink_mem_reset(sink);
	return 0;
}

int main(int argc, char **argv)
{
	static uint8_t ram[FUZZ_PAGES * VMSTATE_PAGE_SIZE];
	struct td_state a, b;
	struct vmstate_registry *reg;
	struct vmstate_sink *sink;
	struct vmstate_writer *w;
	struct vmstate_writer_opts o = {.zstd_level = 3, .run_max_pages = 2};
	struct vmstate_error err;
	int rc = 0;

	if (argc != 2)
		return 2;
	td_fill(&a, 1);
	td_fill(&b, 2);
	td_fill_ram(ram, FUZZ_PAGES, 7);
	vmstate_registry_new(&reg);
	vmstate_register(reg, &td_desc, 0, &a, &err);
	vmstate_register(reg, &td_desc_v1, 1, &b, &err);
	vmstate_sink_new_mem(&sink);

	/* 1: devices only */
	vmstate_writer_new(&w, sink, NULL);
	vmstate_write_header(w, &err);
	vmstate_write_devices(w, reg, &err);
	vmstate_write_eof(w, &err);
	vmstate_writer_free(w);
	rc |= emit(argv[1], "devices", sink);

	/* 2: full migration unit with RAM (zstd, zero, raw), commands */
	vmstate_writer_new(&w, sink, &o);
	vmstate_write_header(w, &err);
	vmstate_write_ram_start(w, sizeof(ram), &err);
	vmstate_write_ram_pages(w, ram, 0, FUZZ_PAGES, &err);
	vmstate_write_ram_end(w, &err);
	vmstate_write_devices(w, reg, &err);
	vmstate_write_cmd(w, VMSTATE_CMD_ENABLE_COLO, 0, &err);
	vmstate_write_eof(w, &err);
	/* 3: two checkpoints on the same stream */
	vmstate_write_cmd(w, VMSTATE_CMD_PING, 1, &err);
	vmstate_write_ram_pages(w, ram, 1, 3, &err);
	vmstate_write_ram_end(w, &err);
	vmstate_write_devices(w, reg, &err);
	vmstate_write_eof(w, &err);
	vmstate_writer_free(w);
	rc |= emit(argv[1], "migration-and-checkpoint", sink);

	/* 4: subsection absent, small RAM raw only */
	a.sub_val = 0;
	memset(a.sub_arr, 0, sizeof(a.sub_arr));
	vmstate_writer_new(&w, sink, NULL);
	vmstate_write_header(w, &err);
	vmstate_write_ram_start(w, sizeof(ram), &err);
	vmstate_write_ram_pages(w, ram, 4, 4, &err);
	vmstate_write_ram_end(w, &err);
	vmstate_write_device(w, reg, "td", 0, &err);
	vmstate_write_cmd(w, VMSTATE_CMD_PONG, 7, &err);
	vmstate_write_eof(w, &err);
	vmstate_writer_free(w);
	rc |= emit(argv[1], "no-subsection", sink);

	vmstate_sink_free(sink);
	vmstate_registry_free(reg);
	(void)fuzz_map;
	(void)fuzz_cmd;
	return rc;
}
#endif
