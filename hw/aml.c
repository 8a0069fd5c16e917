/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small AML encoder: just what a DSDT describing a few fixed devices
 * and one event method needs (ACPI 6.5, chapter 20 "ACPI Machine Language
 * Specification" and 6.4 "Resource Data Types").
 *
 * Bytes go into a caller-owned buffer; running out of room sets `overflow`
 * and every later write is dropped, so a caller checks once at the end.
 * Scope(), Device(), Package(), Method() and If() are opened with
 * aml_begin_*() and closed with aml_end(): the opener reserves four bytes
 * for the PkgLength, the closer knows the length and moves the body down to
 * the shortest encoding. Operators are prefix, as AML is: aml_lequal() or
 * aml_notify() writes the opcode and the caller writes the operands next.
 */
#include <string.h>

#include "hw/internal.h"

#define AML_ZERO_OP	  0x00
#define AML_ONE_OP	  0x01
#define AML_NAME_OP	  0x08
#define AML_BYTE_PREFIX	  0x0a
#define AML_WORD_PREFIX	  0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP	  0x10
#define AML_BUFFER_OP	  0x11
#define AML_PACKAGE_OP	  0x12
#define AML_METHOD_OP	  0x14
#define AML_DUAL_NAME	  0x2e
#define AML_MULTI_NAME	  0x2f
#define AML_ROOT_CHAR	  0x5c
#define AML_EXT_OP_PREFIX 0x5b
#define AML_ARG0_OP	  0x68 /* Arg0 .. Arg6: 0x68 .. 0x6e */
#define AML_DEVICE_OP	  0x82 /* after AML_EXT_OP_PREFIX */
#define AML_NOTIFY_OP	  0x86
#define AML_LEQUAL_OP	  0x93
#define AML_IF_OP	  0xa0
#define AML_ONES_OP	  0xff

#define AML_MAX_ARGS	      7
#define AML_METHOD_SERIALIZED (1u << 3)

#define AML_PKGLEN_RESERVE 4

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	*a = (struct aml){.buf = buf, .cap = cap};
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

/* One NameSeg: up to four characters, padded with '_'. */
static void aml_name_seg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = {'_', '_', '_', '_'};

	if (n == 0 || n > 4) {
		a->overflow = true; /* not a name this encoder makes */
		return;
	}
	memcpy(seg, s, n);
	aml_bytes(a, seg, 4);
}

/* "\_SB_", "VR00" or "\_SB_.COM1": an optional root prefix, then NameSegs
 * separated by dots. */
void aml_name(struct aml *a, const char *path)
{
	unsigned int nseg = 1;

	if (*path == '\\') {
		aml_byte(a, AML_ROOT_CHAR);
		path++;
	}
	for (const char *p = path; *p; p++)
		nseg += *p == '.';
	if (nseg == 2)
		aml_byte(a, AML_DUAL_NAME);
	else if (nseg > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)nseg);
	}
	while (nseg--) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);

		aml_name_seg(a, path, n);
		path += n + (dot != NULL);
	}
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v == UINT64_MAX) {
		aml_byte(a, AML_ONES_OP);
	} else if (v <= UINT8_MAX) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

/* EISAID("PNP0501"): three letters packed 5 bits each, four hex digits,
 * stored big-endian as a DWord. */
void aml_eisaid(struct aml *a, const char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	uint32_t v = 0;

	if (strlen(id) != 7) {
		a->overflow = true;
		return;
	}
	for (int i = 0; i < 3; i++)
		v = v << 5 | (uint32_t)((id[i] - 'A' + 1) & 0x1f);
	for (int i = 3; i < 7; i++) {
		const char *d = strchr(hex, id[i]);

		v = v << 4 | (uint32_t)(d && *d ? d - hex : 0);
	}
	aml_byte(a, AML_DWORD_PREFIX);
	aml_le(a, __builtin_bswap32(v), 4);
}

/* Name(path, <data object>): the caller writes the object next. */
void aml_name_decl(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_name(a, path);
}

static void aml_begin(struct aml *a)
{
	if (a->depth == AML_MAX_DEPTH) {
		a->overflow = true;
		return;
	}
	a->open[a->depth++] = a->len;
	aml_le(a, 0, AML_PKGLEN_RESERVE);
}

void aml_begin_scope(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE_OP);
	aml_begin(a);
	aml_name(a, path);
}

void aml_begin_device(struct aml *a, const char *path)
{
	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	aml_begin(a);
	aml_name(a, path);
}

/* Package(){...}: the caller writes n data objects, then aml_end(). */
void aml_begin_package(struct aml *a, uint8_t n)
{
	aml_byte(a, AML_PACKAGE_OP);
	aml_begin(a);
	aml_byte(a, n);
}

/*
 * Method(path, nargs, NotSerialized or Serialized){...}: MethodOp PkgLength
 * NameString MethodFlags (bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7
 * SyncLevel 0). The caller writes the body, then aml_end().
 */
void aml_begin_method(struct aml *a, const char *path, unsigned int nargs, bool serialized)
{
	if (nargs > AML_MAX_ARGS) {
		a->overflow = true;
		return;
	}
	aml_byte(a, AML_METHOD_OP);
	aml_begin(a);
	aml_name(a, path);
	aml_byte(a, (uint8_t)(nargs | (serialized ? AML_METHOD_SERIALIZED : 0)));
}

/* If(predicate){...}: IfOp PkgLength Predicate TermList. The caller writes
 * the predicate (e.g. aml_lequal() and its operands), the body, then
 * aml_end(). No Else. */
void aml_begin_if(struct aml *a)
{
	aml_byte(a, AML_IF_OP);
	aml_begin(a);
}

/* LEqual(x, y): LEqualOp Operand Operand; the caller writes x and y next. */
void aml_lequal(struct aml *a)
{
	aml_byte(a, AML_LEQUAL_OP);
}

/* Notify(object, value): NotifyOp SuperName TermArg; the caller writes the
 * object (aml_name()) and the value (aml_integer()) next. */
void aml_notify(struct aml *a)
{
	aml_byte(a, AML_NOTIFY_OP);
}

/* ArgN, a method's Nth argument (0..6). */
void aml_arg(struct aml *a, unsigned int n)
{
	if (n >= AML_MAX_ARGS) {
		a->overflow = true;
		return;
	}
	aml_byte(a, (uint8_t)(AML_ARG0_OP + n));
}

/*
 * PkgLength counts itself: one byte holds up to 63 (bits 0-5); with n
 * following bytes (n in bits 6-7) the low nibble of the lead byte and then
 * 8 bits per byte, up to 2^28 - 1.
 */
void aml_end(struct aml *a)
{
	size_t start, body;
	unsigned int n;
	uint32_t len;

	if (a->depth == 0) {
		a->overflow = true;
		return;
	}
	start = a->open[--a->depth];
	if (a->overflow)
		return;
	body = a->len - start - AML_PKGLEN_RESERVE;
	if (body + 1 <= 0x3f)
		n = 1;
	else if (body + 2 <= 0xfff)
		n = 2;
	else if (body + 3 <= 0xfffff)
		n = 3;
	else if (body + 4 <= 0xfffffff)
		n = 4;
	else {
		a->overflow = true;
		return;
	}
	len = (uint32_t)(body + n);
	memmove(a->buf + start + n, a->buf + start + AML_PKGLEN_RESERVE, body);
	a->len -= AML_PKGLEN_RESERVE - n;
	if (n == 1) {
		a->buf[start] = (uint8_t)len;
		return;
	}
	a->buf[start] = (uint8_t)((n - 1) << 6 | (len & 0xf));
	for (unsigned int i = 1; i < n; i++)
		a->buf[start + i] = (uint8_t)(len >> (4 + 8 * (i - 1)));
}

/* Buffer(){bytes}: BufferOp PkgLength BufferSize ByteList. */
void aml_buffer(struct aml *a, const uint8_t *p, size_t n)
{
	aml_byte(a, AML_BUFFER_OP);
	aml_begin(a);
	aml_integer(a, n);
	aml_bytes(a, p, n);
	aml_end(a);
}

/* ---- resource descriptors (ACPI 6.5, 6.4) ------------------------------- */

#define RES_IRQ_NO_FLAGS 0x22 /* small item 0x04, length 2 */
#define RES_IO		 0x47 /* small item 0x08, length 7 */
#define RES_END		 0x79 /* small item 0x0f, length 1 */
#define RES_MEM32_FIXED	 0x86 /* large item 0x06 */
#define RES_EXT_IRQ	 0x89 /* large item 0x09 */

void aml_res_io(struct aml *a, uint16_t base, uint8_t len)
{
	aml_byte(a, RES_IO);
	aml_byte(a, 1); /* decodes 16 address bits */
	aml_le(a, base, 2);
	aml_le(a, base, 2);
	aml_byte(a, 1); /* alignment */
	aml_byte(a, len);
}

void aml_res_irq_no_flags(struct aml *a, unsigned int irq)
{
	aml_byte(a, RES_IRQ_NO_FLAGS);
	aml_le(a, irq < 16 ? 1u << irq : 0, 2);
}

void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	aml_byte(a, RES_MEM32_FIXED);
	aml_le(a, 9, 2);
	aml_byte(a, 1); /* read/write */
	aml_le(a, base, 4);
	aml_le(a, len, 4);
}

void aml_res_interrupt(struct aml *a, uint32_t gsi, uint8_t flags)
{
	aml_byte(a, RES_EXT_IRQ);
	aml_le(a, 6, 2);
	aml_byte(a, flags);
	aml_byte(a, 1); /* one interrupt */
	aml_le(a, gsi, 4);
}

void aml_res_end(struct aml *a)
{
	aml_byte(a, RES_END);
	aml_byte(a, 0); /* checksum 0: "the template is treated as correct" */
}
