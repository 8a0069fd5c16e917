/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A test device using every field kind and a subsection, shared by the unit
 * tests, the fuzz target and its seed generator.
 */
#ifndef COLOVM_TEST_VMSTATE_TESTDEV_H
#define COLOVM_TEST_VMSTATE_TESTDEV_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/vmstate/vmstate.h"

struct td_inner {
	uint16_t a;
	int32_t b;
	uint8_t tag[3];
};

struct td_state {
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	int32_t i32;
	int64_t i64;
	bool flag;
	bool flags[3];
	uint8_t buf[10];
	uint32_t arr[4];
	uint16_t nq;
	uint64_t q[8];
	struct td_inner inner;
	struct td_inner inners[3];
	uint8_t ninn;
	struct td_inner vinn[4];
	uint32_t v2field;
	uint64_t sub_val;
	uint32_t sub_arr[2];
	/* not described: test bookkeeping */
	int post_load_calls;
	uint32_t post_load_version;
	int pre_save_calls;
};

static const struct vmstate_field td_inner_fields[] = {
	VMSTATE_U16(struct td_inner, a),
	VMSTATE_I32(struct td_inner, b),
	VMSTATE_BUFFER(struct td_inner, tag),
	VMSTATE_END,
};
static const struct vmstate_desc td_inner_desc = {
	.name = "td_inner", .version_id = 1, .fields = td_inner_fields,
};

static inline bool td_sub_needed(void *opaque)
{
	const struct td_state *s = opaque;

	return s->sub_val || s->sub_arr[0] || s->sub_arr[1];
}

static const struct vmstate_field td_sub_fields[] = {
	VMSTATE_U64(struct td_state, sub_val),
	VMSTATE_ARRAY(struct td_state, sub_arr, VMSTATE_KIND_U32),
	VMSTATE_END,
};
static const struct vmstate_desc td_sub_desc = {
	.name = "td/extra", .version_id = 1, .minimum_version_id = 1,
	.fields = td_sub_fields, .needed = td_sub_needed,
};
static const struct vmstate_desc *const td_subs[] = {&td_sub_desc, NULL};

static inline int td_pre_save(void *opaque)
{
	((struct td_state *)opaque)->pre_save_calls++;
	return 0;
}

/* Refuses the state when u32 is 0xdeadbeef. */
static inline int td_post_load(void *opaque, uint32_t version)
{
	struct td_state *s = opaque;

	s->post_load_calls++;
	s->post_load_version = version;
	return s->u32 == 0xdeadbeef ? -EINVAL : 0;
}

#define TD_COMMON_FIELDS                                                                           \
	VMSTATE_U8(struct td_state, u8), VMSTATE_U16(struct td_state, u16),                        \
		VMSTATE_U32(struct td_state, u32), VMSTATE_U64(struct td_state, u64),              \
		VMSTATE_I32(struct td_state, i32), VMSTATE_I64(struct td_state, i64),              \
		VMSTATE_BOOL(struct td_state, flag),                                               \
		VMSTATE_ARRAY(struct td_state, flags, VMSTATE_KIND_BOOL),                          \
		VMSTATE_BUFFER(struct td_state, buf),                                              \
		VMSTATE_ARRAY(struct td_state, arr, VMSTATE_KIND_U32),                             \
		VMSTATE_U16(struct td_state, nq),                                                  \
		VMSTATE_VARRAY(struct td_state, q, nq, VMSTATE_KIND_U64),                          \
		VMSTATE_STRUCT(struct td_state, inner, &td_inner_desc),                            \
		VMSTATE_STRUCT_ARRAY(struct td_state, inners, &td_inner_desc),                     \
		VMSTATE_U8(struct td_state, ninn),                                                 \
		VMSTATE_STRUCT_VARRAY(struct td_state, vinn, ninn, &td_inner_desc)

/* Current software: version 2 added v2field. */
static const struct vmstate_field td_fields_v2[] = {
	TD_COMMON_FIELDS,
	VMSTATE_U32_V(struct td_state, v2field, 2),
	VMSTATE_END,
};
static const struct vmstate_desc td_desc = {
	.name = "td", .version_id = 2, .minimum_version_id = 1,
	.fields = td_fields_v2, .subsections = td_subs,
	.pre_save = td_pre_save, .post_load = td_post_load,
};
/* Older software: version 1, no v2field. */
static const struct vmstate_field td_fields_v1[] = {
	TD_COMMON_FIELDS,
	VMSTATE_END,
};
static const struct vmstate_desc td_desc_v1 = {
	.name = "td", .version_id = 1, .minimum_version_id = 1,
	.fields = td_fields_v1, .subsections = td_subs,
	.pre_save = td_pre_save, .post_load = td_post_load,
};

static inline void td_fill(struct td_state *s, uint32_t seed)
{
	unsigned int i;

	memset(s, 0, sizeof(*s));
	s->u8 = (uint8_t)(0x11 + seed);
	s->u16 = (uint16_t)(0x2233 + seed);
	s->u32 = 0x44556677u + seed;
	s->u64 = 0x8899aabbccddeeffull + seed;
	s->i32 = -12345 - (int32_t)seed;
	s->i64 = -1234567890123ll - seed;
	s->flag = true;
	s->flags[1] = true;
	for (i = 0; i < sizeof(s->buf); i++)
		s->buf[i] = (uint8_t)(i * 7 + seed);
	for (i = 0; i < 4; i++)
		s->arr[i] = 1000 * i + seed;
	s->nq = 5;
	for (i = 0; i < s->nq; i++)
		s->q[i] = 0x0102030405060708ull * (i + 1) + seed;
	s->inner = (struct td_inner){.a = 9, .b = -9, .tag = {'a', 'b', 'c'}};
	for (i = 0; i < 3; i++)
		s->inners[i] = (struct td_inner){.a = (uint16_t)i, .b = (int32_t)(i * 100)};
	s->ninn = 2;
	s->vinn[0] = (struct td_inner){.a = 77, .b = 78, .tag = {1, 2, 3}};
	s->vinn[1] = (struct td_inner){.a = 79, .b = 80, .tag = {4, 5, 6}};
	s->v2field = 0xcafe0000u + seed;
	s->sub_val = 0x5555aaaa5555aaaaull;
	s->sub_arr[0] = 1;
	s->sub_arr[1] = 2;
}

/* Pages for RAM tests: zero, random, compressible text-like, repeated. */
static inline void td_fill_ram(uint8_t *ram, size_t npages, uint32_t seed)
{
	size_t i, j;
	uint32_t x = seed * 2654435761u + 1;

	for (i = 0; i < npages; i++) {
		uint8_t *p = ram + i * VMSTATE_PAGE_SIZE;

		switch (i % 4) {
		case 0:
			memset(p, 0, VMSTATE_PAGE_SIZE);
			break;
		case 1:
			for (j = 0; j < VMSTATE_PAGE_SIZE; j++) {
				x ^= x << 13;
				x ^= x >> 17;
				x ^= x << 5;
				p[j] = (uint8_t)x;
			}
			break;
		case 2:
			for (j = 0; j < VMSTATE_PAGE_SIZE; j++)
				p[j] = (uint8_t)("colovm checkpoint "[j % 18] + (j / 512));
			break;
		default:
			memset(p, (int)(i & 0xff) | 1, VMSTATE_PAGE_SIZE);
		}
	}
}

#endif
