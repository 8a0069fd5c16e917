/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * common/vmstate: declarative device-state descriptions and the checkpoint
 * stream (writer and two-phase reader), RAM as runs of pages.
 *
 * 1. Descriptions
 * ---------------
 * A device describes its state once, in a const table:
 *
 *	static const struct vmstate_field uart_fields[] = {
 *		VMSTATE_U8(struct uart, lcr),
 *		VMSTATE_U32_V(struct uart, divisor, 2),      // added in version 2
 *		VMSTATE_BUFFER(struct uart, scratch),
 *		VMSTATE_U16(struct uart, nfifo),
 *		VMSTATE_VARRAY(struct uart, fifo, nfifo, VMSTATE_KIND_U8),
 *		VMSTATE_END
 *	};
 *	static const struct vmstate_desc uart_desc = {
 *		.name = "uart", .version_id = 2, .minimum_version_id = 1,
 *		.fields = uart_fields, .subsections = uart_subs,
 *		.post_load = uart_post_load,
 *	};
 *	vmstate_register(reg, &uart_desc, 0, &uart, &err);
 *
 * Field rules: scalars are stored little-endian at fixed width; bool is one
 * byte 0/1 (anything else is refused). A fixed array stores `count` elements
 * back to back. A variable array (VARRAY) stores N elements where N is the
 * value of an earlier integer field of the same description (the count
 * field); N > the array's capacity is refused on load and on save. A nested
 * struct is encoded as the nested description's fields (no header). Field
 * `version`: the field is on the wire only if the section version >= it.
 * Nested descriptions are gated by the same section version.
 *
 * Subsections are descriptions of their own with a needed(opaque)
 * predicate (NULL: always). They run on the same opaque. On load a
 * subsection missing from the stream is fine (its fields keep their value),
 * an unknown one is an error.
 *
 * 2. Byte layout (all integers little-endian)
 * -------------------------------------------
 *
 *   stream   := header unit*
 *   header   := magic "CVMS" (4) | major u16 | minor u16 | page_size u32 | crc32 u32
 *               (crc over the 12 bytes before it)
 *   unit     := record* eof          (one checkpoint / one migration)
 *   record   := type u8 | section_id u32 | [ident] | [cmd u16] | len u32 |
 *               payload[len] | crc32 u32
 *               crc32 covers every byte of the record from `type` to the end
 *               of the payload (CRC-32/ISO-HDLC, as zlib crc32()).
 *   ident    := name_len u8 | name[name_len] | instance u32 | version u32
 *               (present for START and FULL only)
 *   cmd      := present for CMD only
 *   eof      := type u8 = 0x00 | nrecords u32 | crc32 u32 (over type+nrecords)
 *               nrecords = number of records in this unit before eof
 *
 *   type     : 0x00 EOF, 0x01 START, 0x02 PART, 0x03 END, 0x04 FULL, 0x08 CMD
 *
 *   FULL payload (device state) := field-bytes subsection*
 *   subsection := 0x05 | name_len u8 | name | version u32 | len u32 |
 *                 field-bytes subsection*  (exactly len bytes)
 *
 *   RAM is the section named "ram" (instance 0, version 1). Its START payload
 *   is  ram_bytes u64  (guest RAM size, multiple of page_size).
 *   Its PART and END payloads are runs until the payload ends:
 *   run := flags u8 | gfn u64 | npages u32 | data
 *     flags 0x00 RAW:  data = npages * page_size bytes
 *     flags 0x01 ZERO: no data, every page of the run is zero
 *     flags 0x02 ZSTD: data = clen u32 | zstd frame[clen] that decompresses
 *                      to exactly npages * page_size bytes; clen < raw size
 *   END closes one RAM pass (a checkpoint's or the last migration pass);
 *   the section id stays valid, so later units send more PART/END for it.
 *
 *   CMD payload: ENABLE_COLO (1): len 0; PING (2), PONG (3): len 4, u32 value.
 *
 * 3. Where the stream is used
 * ---------------------------
 *
 *   snapshot file (hw_vm_save/hw_vm_load): header, START "ram", PART/END
 *     runs of every page, FULL per device, EOF.
 *   checkpoint protocol (transport/transport.h, the one vocabulary between
 *     primary and secondary): device state only: header, FULL per device,
 *     EOF, cut into DeviceState messages. RAM travels on the transport's
 *     bulk path, not in PART records, and the protocol's own messages
 *     (StreamStart, CheckpointRequest/Reply/Ack) replace CMD records:
 *     colovm writes no CMD record. The record type, vmstate_write_cmd()
 *     and their tests remain for now; dropping them is a format change
 *     (a new major version), left for later.
 *
 * 4. Two-phase load contract
 * --------------------------
 * vmstate_load_begin() reads one unit up to and including its EOF. Device
 * sections are decoded into a private copy of each device's state and fully
 * validated (versions, bounds, CRC, subsections); no device opaque is written
 * and no post_load runs. RAM runs are written straight through the caller's
 * ram ops: point them at a RAM cache, never at live guest RAM, because the
 * CRC of a RAM record is checked after its pages have been stored. If
 * load_begin fails, nothing is staged, the pages it reported through
 * ram_ops.map() may hold garbage and the stream is unusable (drop the
 * channel); the caller must not flush the cache into the guest.
 * vmstate_load_commit() applies the staged sections in stream order and runs
 * each device's post_load. If a post_load refuses, every device applied by
 * this commit is restored byte for byte to its previous state and the
 * post_load of each device already applied is run again on that restored
 * state; the error is returned. vmstate_load_abort() drops what is staged.
 *
 * 5. Errors
 * ---------
 * Every call returns 0 or -errno and never exits or aborts. Calls that can
 * fail take a struct vmstate_error *err (may be NULL) that receives a
 * message naming the section, e.g.
 * "section 'uart' instance 0: CRC mismatch (stream 0x1234abcd, computed ...)".
 * -EINVAL: bad stream content or bad description, -EPROTO: wrong magic or
 * version, -EBADMSG: CRC mismatch, -ENODATA: truncated stream, -E2BIG: a
 * length over a limit, -ENOENT: unknown section, other: I/O errors or the
 * value returned by a hook.
 */
#ifndef COLOVM_VMSTATE_H
#define COLOVM_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VMSTATE_MAGIC	      0x534d5643u /* "CVMS" read as little-endian u32 */
#define VMSTATE_VERSION_MAJOR 1
#define VMSTATE_VERSION_MINOR 0
#define VMSTATE_PAGE_SIZE     4096u
#define VMSTATE_NAME_MAX      255
#define VMSTATE_RAM_NAME      "ram"

/* ---- errors ------------------------------------------------------------- */

struct vmstate_error {
	int code;	/* -errno, 0 if no error */
	char msg[256];	/* human-readable, NUL-terminated */
};

/* Fill err (if not NULL) with code and a formatted message; returns code.
 * For callers that report their own errors in the same form. */
int vmstate_seterr(struct vmstate_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- descriptions -------------------------------------------------------- */

enum vmstate_kind {
	VMSTATE_KIND_U8 = 1,
	VMSTATE_KIND_U16,
	VMSTATE_KIND_U32,
	VMSTATE_KIND_U64,
	VMSTATE_KIND_I32,
	VMSTATE_KIND_I64,
	VMSTATE_KIND_BOOL,
	VMSTATE_KIND_BUFFER, /* `size` raw bytes */
	VMSTATE_KIND_STRUCT, /* nested description `sub`, element size `size` */
};

struct vmstate_desc;

struct vmstate_field {
	const char *name;
	enum vmstate_kind kind;
	size_t offset;	 /* of the field (or of element 0) in the opaque */
	size_t size;	 /* element size in the opaque */
	uint32_t count;	 /* fixed element count (1 for a scalar); capacity for VARRAY */
	uint32_t version; /* first section version carrying the field; 0 = always */
	/* VARRAY: name of the earlier U8/U16/U32 field holding the element count */
	const char *count_field;
	const struct vmstate_desc *sub; /* STRUCT */
};

struct vmstate_desc {
	const char *name;	    /* <= 255 bytes */
	uint32_t version_id;	    /* written into the stream */
	uint32_t minimum_version_id; /* oldest stream version that loads */
	const struct vmstate_field *fields; /* terminated by VMSTATE_END (name NULL) */
	const struct vmstate_desc *const *subsections; /* NULL-terminated, may be NULL */
	bool (*needed)(void *opaque);			/* subsections only */
	int (*pre_save)(void *opaque);			/* -errno aborts the save */
	int (*post_load)(void *opaque, uint32_t version_id); /* -errno refuses the state */
};

#define VMSTATE_FIELD_SIZEOF(T, f) sizeof(((T *)0)->f)
#define VMSTATE_ELEM_SIZEOF(T, f)  sizeof(((T *)0)->f[0])
#define VMSTATE_ARRAY_LEN(T, f)	   (VMSTATE_FIELD_SIZEOF(T, f) / VMSTATE_ELEM_SIZEOF(T, f))

#define VMSTATE_SCALAR_V(T, f, k, v)                                                               \
	{                                                                                          \
		.name = #f, .kind = (k), .offset = offsetof(T, f),                                 \
		.size = VMSTATE_FIELD_SIZEOF(T, f), .count = 1, .version = (v)                     \
	}
#define VMSTATE_U8_V(T, f, v)	VMSTATE_SCALAR_V(T, f, VMSTATE_KIND_U8, v)
#define VMSTATE_U16_V(T, f, v)	VMSTATE_SCALAR_V(T, f, VMSTATE_KIND_U16, v)
#define VMSTATE_U32_V(T, f, v)	VMSTATE_SCALAR_V(T, f, VMSTATE_KIND_U32, v)
#define VMSTATE_U64_V(T, f, v)	VMSTATE_SCALAR_V(T, f, VMSTATE_KIND_U64, v)
#define VMSTATE_I32_V(T, f, v)	VMSTATE_SCALAR_V(T, f, VMSTATE_KIND_I32, v)
#define VMSTATE_I64_V(T, f, v)	VMSTATE_SCALAR_V(T, f, VMSTATE_KIND_I64, v)
#define VMSTATE_BOOL_V(T, f, v) VMSTATE_SCALAR_V(T, f, VMSTATE_KIND_BOOL, v)
#define VMSTATE_U8(T, f)	VMSTATE_U8_V(T, f, 0)
#define VMSTATE_U16(T, f)	VMSTATE_U16_V(T, f, 0)
#define VMSTATE_U32(T, f)	VMSTATE_U32_V(T, f, 0)
#define VMSTATE_U64(T, f)	VMSTATE_U64_V(T, f, 0)
#define VMSTATE_I32(T, f)	VMSTATE_I32_V(T, f, 0)
#define VMSTATE_I64(T, f)	VMSTATE_I64_V(T, f, 0)
#define VMSTATE_BOOL(T, f)	VMSTATE_BOOL_V(T, f, 0)

/* A fixed byte buffer (uint8_t f[N] or any object: its sizeof is used). */
#define VMSTATE_BUFFER_V(T, f, v)                                                                  \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_KIND_BUFFER, .offset = offsetof(T, f),                 \
		.size = VMSTATE_FIELD_SIZEOF(T, f), .count = 1, .version = (v)                     \
	}
#define VMSTATE_BUFFER(T, f) VMSTATE_BUFFER_V(T, f, 0)

/* A fixed array of scalars: T.f is `type f[N]`, all N elements are saved. */
#define VMSTATE_ARRAY_V(T, f, k, v)                                                                \
	{                                                                                          \
		.name = #f, .kind = (k), .offset = offsetof(T, f),                                 \
		.size = VMSTATE_ELEM_SIZEOF(T, f), .count = VMSTATE_ARRAY_LEN(T, f),               \
		.version = (v)                                                                     \
	}
#define VMSTATE_ARRAY(T, f, k) VMSTATE_ARRAY_V(T, f, k, 0)

/* A variable array: the first T.n elements of `type f[N]`; T.n <= N is checked. */
#define VMSTATE_VARRAY_V(T, f, n, k, v)                                                            \
	{                                                                                          \
		.name = #f, .kind = (k), .offset = offsetof(T, f),                                 \
		.size = VMSTATE_ELEM_SIZEOF(T, f), .count = VMSTATE_ARRAY_LEN(T, f),               \
		.version = (v), .count_field = #n                                                  \
	}
#define VMSTATE_VARRAY(T, f, n, k) VMSTATE_VARRAY_V(T, f, n, k, 0)

/* A nested struct described by `d`. */
#define VMSTATE_STRUCT_V(T, f, d, v)                                                               \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_KIND_STRUCT, .offset = offsetof(T, f),                 \
		.size = VMSTATE_FIELD_SIZEOF(T, f), .count = 1, .version = (v), .sub = (d)         \
	}
#define VMSTATE_STRUCT(T, f, d) VMSTATE_STRUCT_V(T, f, d, 0)
/* Fixed array of nested structs. */
#define VMSTATE_STRUCT_ARRAY_V(T, f, d, v)                                                         \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_KIND_STRUCT, .offset = offsetof(T, f),                 \
		.size = VMSTATE_ELEM_SIZEOF(T, f), .count = VMSTATE_ARRAY_LEN(T, f),               \
		.version = (v), .sub = (d)                                                         \
	}
#define VMSTATE_STRUCT_ARRAY(T, f, d) VMSTATE_STRUCT_ARRAY_V(T, f, d, 0)
/* Variable array of nested structs, count from field n. */
#define VMSTATE_STRUCT_VARRAY_V(T, f, n, d, v)                                                     \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_KIND_STRUCT, .offset = offsetof(T, f),                 \
		.size = VMSTATE_ELEM_SIZEOF(T, f), .count = VMSTATE_ARRAY_LEN(T, f),               \
		.version = (v), .count_field = #n, .sub = (d)                                      \
	}
#define VMSTATE_STRUCT_VARRAY(T, f, n, d) VMSTATE_STRUCT_VARRAY_V(T, f, n, d, 0)

#define VMSTATE_END                                                                                \
	{                                                                                          \
		.name = NULL                                                                       \
	}

/* ---- registry ------------------------------------------------------------ */

struct vmstate_registry;

int vmstate_registry_new(struct vmstate_registry **out);
void vmstate_registry_free(struct vmstate_registry *reg);
/*
 * Register device state. The description is checked (field kinds, sizes,
 * count fields, nesting depth): -EINVAL with a message if it is malformed,
 * -EEXIST if (name, instance_id) is taken. `desc` and `opaque` must outlive
 * the registry entry. Sections are saved in registration order.
 */
int vmstate_register(struct vmstate_registry *reg, const struct vmstate_desc *desc,
		     uint32_t instance_id, void *opaque, struct vmstate_error *err);
int vmstate_unregister(struct vmstate_registry *reg, const char *name, uint32_t instance_id);

/* True if the VMSTATE_PAGE_SIZE bytes at p are all zero (8-byte aligned). */
bool vmstate_page_is_zero(const void *p);

/* ---- byte sinks and sources --------------------------------------------- */

struct vmstate_sink_ops {
	/* Write every byte of iov[0..iovcnt) or fail with -errno. */
	int (*writev)(void *opaque, const struct iovec *iov, int iovcnt);
};
struct vmstate_source_ops {
	/* Read exactly len bytes: 0, -ENODATA at end of data, or -errno. */
	int (*read)(void *opaque, void *buf, size_t len);
};

struct vmstate_sink;
struct vmstate_source;

int vmstate_sink_new(struct vmstate_sink **out, const struct vmstate_sink_ops *ops,
		     void *opaque);
int vmstate_sink_new_fd(struct vmstate_sink **out, int fd); /* fd is not closed */
int vmstate_sink_new_mem(struct vmstate_sink **out);	    /* growable buffer */
/* Memory sink contents (valid until the next write or free). */
const uint8_t *vmstate_sink_mem_data(const struct vmstate_sink *sink, size_t *len);
void vmstate_sink_mem_reset(struct vmstate_sink *sink);
void vmstate_sink_free(struct vmstate_sink *sink);
/* Bytes written through the sink so far. */
uint64_t vmstate_sink_bytes(const struct vmstate_sink *sink);

int vmstate_source_new(struct vmstate_source **out, const struct vmstate_source_ops *ops,
		       void *opaque);
/* fd is not closed; small reads are served from a 16 KiB read-ahead, so the
 * fd may have been read past the last byte the reader asked for. */
int vmstate_source_new_fd(struct vmstate_source **out, int fd);
/* Reads from buf[0..len); the buffer is not copied and must outlive the source. */
int vmstate_source_new_mem(struct vmstate_source **out, const void *buf, size_t len);
void vmstate_source_free(struct vmstate_source *src);

/* ---- writer -------------------------------------------------------------- */

struct vmstate_writer;

struct vmstate_writer_opts {
	int zstd_level;		/* 0: no compression; else a zstd level (negative = fast) */
	uint32_t zstd_margin_pct; /* keep compressed only if <= (100 - margin)% of raw; default 10 */
	uint32_t run_max_pages;	/* split RAM runs at this many pages; default 256 */
	uint32_t batch_max_bytes; /* flush a RAM PART record at this payload size; default 8 MiB */
};

struct vmstate_ram_stats {
	uint64_t pages_raw, pages_zero, pages_zstd;
	uint64_t bytes_zstd_in, bytes_zstd_out;
};

int vmstate_writer_new(struct vmstate_writer **out, struct vmstate_sink *sink,
		       const struct vmstate_writer_opts *opts /* NULL: defaults */);
void vmstate_writer_free(struct vmstate_writer *w);
int vmstate_write_header(struct vmstate_writer *w, struct vmstate_error *err);
/* One FULL record per registered device, in registration order (pre_save first). */
int vmstate_write_devices(struct vmstate_writer *w, struct vmstate_registry *reg,
			  struct vmstate_error *err);
/* One FULL record for a single device. */
int vmstate_write_device(struct vmstate_writer *w, struct vmstate_registry *reg,
			 const char *name, uint32_t instance_id, struct vmstate_error *err);
/* START "ram": once per stream, before any pages. */
int vmstate_write_ram_start(struct vmstate_writer *w, uint64_t ram_bytes,
			    struct vmstate_error *err);
/*
 * Queue pages [gfn, gfn + npages) of the guest RAM mapped at `ram` (host
 * address of gfn 0). Zero pages are detected and sent without data; other
 * pages are referenced, not copied, until the PART record is flushed, so
 * the pages must not change before vmstate_write_ram_end()/flush returns.
 */
int vmstate_write_ram_pages(struct vmstate_writer *w, const void *ram, uint64_t gfn,
			    uint64_t npages, struct vmstate_error *err);
/* Flush queued runs as a PART record. */
int vmstate_write_ram_flush(struct vmstate_writer *w, struct vmstate_error *err);
/* Flush queued runs as the END record of this pass. */
int vmstate_write_ram_end(struct vmstate_writer *w, struct vmstate_error *err);

enum vmstate_cmd {
	VMSTATE_CMD_ENABLE_COLO = 1,
	VMSTATE_CMD_PING = 2,
	VMSTATE_CMD_PONG = 3,
};
const char *vmstate_cmd_name(enum vmstate_cmd cmd);
/* `value` is sent for PING/PONG, ignored for ENABLE_COLO. */
int vmstate_write_cmd(struct vmstate_writer *w, enum vmstate_cmd cmd, uint32_t value,
		      struct vmstate_error *err);
/* EOF record closing the unit. */
int vmstate_write_eof(struct vmstate_writer *w, struct vmstate_error *err);
void vmstate_writer_ram_stats(const struct vmstate_writer *w, struct vmstate_ram_stats *st);

/* ---- reader (two-phase load) -------------------------------------------- */

struct vmstate_reader;

struct vmstate_load_ops {
	/*
	 * Host address where pages [gfn, gfn + npages) are to be stored (the
	 * RAM cache), or NULL to refuse. Called once per run; the reader then
	 * stores the run's data (zeroes for a zero run) there.
	 */
	void *(*ram_map)(void *opaque, uint64_t gfn, uint32_t npages);
	/* A command record; -errno stops the load. May be NULL (commands ignored). */
	int (*cmd)(void *opaque, enum vmstate_cmd cmd, uint32_t value);
	void *opaque;
	/*
	 * Optional: make pages [gfn, gfn + npages) of a ZERO run read as zero
	 * (e.g. punch a hole in a memfd, so that zero pages are not allocated);
	 * 0 or -errno. NULL: the reader maps the run and clears it.
	 */
	int (*ram_zero)(void *opaque, uint64_t gfn, uint32_t npages);
	/* Optional: the RAM section's END record has been read and checked
	 * (all of this unit's pages are stored); device sections follow. */
	void (*ram_end)(void *opaque);
};

struct vmstate_limits {
	uint32_t max_device_bytes; /* FULL payload; default 16 MiB */
	uint32_t max_ram_bytes;	   /* PART/END payload; default 256 MiB */
	uint32_t max_records;	   /* per unit; default 1 << 24 */
};

int vmstate_reader_new(struct vmstate_reader **out, struct vmstate_source *src,
		       struct vmstate_registry *reg, const struct vmstate_load_ops *ops,
		       const struct vmstate_limits *limits /* NULL: defaults */);
void vmstate_reader_free(struct vmstate_reader *r);
int vmstate_read_header(struct vmstate_reader *r, struct vmstate_error *err);
/* Phase 1: read and validate one unit up to its EOF (see contract above). */
int vmstate_load_begin(struct vmstate_reader *r, struct vmstate_error *err);
/* Number of device sections staged by the last successful load_begin. */
size_t vmstate_load_staged(const struct vmstate_reader *r);
/* Phase 2: apply the staged device sections and run post_load hooks. */
int vmstate_load_commit(struct vmstate_reader *r, struct vmstate_error *err);
/* Drop what load_begin staged. */
void vmstate_load_abort(struct vmstate_reader *r);
/* RAM size announced by START "ram", 0 if none yet. */
uint64_t vmstate_reader_ram_bytes(const struct vmstate_reader *r);

#endif
