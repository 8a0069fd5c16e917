/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hw.acpi: the ACPI tables for a 2-vCPU machine with two virtio-mmio
 * devices, built into a buffer (no KVM) and read back the way a guest
 * reads them: RSDP -> XSDT -> FADT -> DSDT, and the MADT; every checksum,
 * length and pointer; the power button (GED + PWRB) byte for byte; the AML
 * encoder's length, name, method and operator encodings against
 * hand-assembled bytes; too small buffers and bad machines refused.
 *
 * `test_acpi --dump DIR` writes each table to DIR/<signature>.dat for
 * acpi-iasl.sh, which checks them with acpica-tools' disassembler.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw/internal.h"

#define GPA 0xe0000ull

/* Device(GED){...} and Device(PWRB){...} as ACPI 6.5 chapter 20 encodes
 * them (the iasl listing of the same ASL agrees, with \_SB.PWRB written
 * out in full): see acpi_build_power_button() in hw/acpi.c. */
static const uint8_t ged_aml[] = {
    0x5b, 0x82, 0x49, 0x04, 'G',  'E',	'D',  '_', /* Device(GED), PkgLength 73 */
    0x08, '_',	'H',  'I',  'D',  0x0d, 'A',  'C',  'P',  'I', '0', '0',  '1',
    '3',  0x00, 0x08, '_',  'U',  'I',	'D',  0x00,	  /* Name(_UID, Zero) */
    0x08, '_',	'C',  'R',  'S',  0x11, 0x0e, 0x0a, 0x0b, /* Name(_CRS, Buffer(11) */
    0x89, 0x06, 0x00, 0x03, 0x01, 16,	0,    0,    0,	  /* Interrupt(consumer, edge, high){16} */
    0x79, 0x00,						  /* EndTag */
    0x14, 0x19, '_',  'E',  'V',  'T',	0x01,		  /* Method(_EVT, 1, NotSerialized) */
    0xa0, 0x12, 0x93, 0x68, 0x0a, 16,			  /* If(LEqual(Arg0, 16)) */
    0x86, 0x5c, 0x2e, '_',  'S',  'B',	'_',  'P',  'W',  'R', 'B', 0x0a, 0x80, /* Notify */
};
static const uint8_t pwrb_aml[] = {
    0x5b, 0x82, 0x15, 'P', 'W', 'R',  'B',		      /* Device(PWRB) */
    0x08, '_',	'H',  'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c, /* EISAID("PNP0C0C") */
    0x08, '_',	'U',  'I', 'D', 0x00,
};

static const struct acpi_machine machine = {
    .ncpus = 2,
    .nvirtio = 2,
    .virtio = {{0xd0000000, 0x200, 5}, {0xd0001000, 0x200, 6}},
};

static uint8_t buf[0x10000];

static uint64_t rd(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* The table at guest address gpa, checked: inside the buffer, signature,
 * length, checksum. */
static const uint8_t *table(uint64_t gpa, size_t used, const char *sig)
{
	const uint8_t *t;
	uint32_t len;

	assert_true(gpa >= GPA && gpa + 36 <= GPA + used);
	t = buf + (gpa - GPA);
	assert_memory_equal(t, sig, 4);
	len = (uint32_t)rd(t + 4, 4);
	assert_true(len >= 36 && gpa + len <= GPA + used);
	assert_int_equal(sum(t, len), 0);
	return t;
}

static unsigned int count(const uint8_t *p, size_t len, const void *what, size_t n)
{
	unsigned int found = 0;

	for (size_t i = 0; i + n <= len; i++)
		found += !memcmp(p + i, what, n);
	return found;
}

static int build(void)
{
	memset(buf, 0xa5, sizeof(buf));
	return acpi_build(&machine, GPA, buf, sizeof(buf));
}

static const uint8_t *find_fadt(int used, const uint8_t **madt)
{
	const uint8_t *rsdp = buf, *xsdt, *fadt = NULL;

	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(rsdp[15], 2);
	assert_int_equal(rd(rsdp + 20, 4), 36);
	assert_int_equal(sum(rsdp, 36), 0);
	xsdt = table(rd(rsdp + 24, 8), (size_t)used, "XSDT");
	assert_int_equal(rd(xsdt + 4, 4), 36 + 2 * 8);
	*madt = NULL;
	for (unsigned int i = 0; i < 2; i++) {
		uint64_t p = rd(xsdt + 36 + 8 * i, 8);
		const uint8_t *t = buf + (p - GPA);

		assert_true(p >= GPA && p < GPA + (uint64_t)used);
		if (!memcmp(t, "FACP", 4))
			fadt = table(p, (size_t)used, "FACP");
		else
			*madt = table(p, (size_t)used, "APIC");
	}
	assert_non_null(fadt);
	assert_non_null(*madt);
	return fadt;
}

static void test_tables(void **state)
{
	const uint8_t *fadt, *madt, *dsdt;
	int used = build();

	(void)state;
	assert_true(used > 0 && (size_t)used <= sizeof(buf));
	fadt = find_fadt(used, &madt);

	/* FADT: revision 6, hardware-reduced, reset through port 0x64. */
	assert_int_equal(fadt[8], 6);
	assert_int_equal(rd(fadt + 4, 4), 276);
	assert_true(rd(fadt + 112, 4) & (1u << 20));
	assert_true(rd(fadt + 112, 4) & (1u << 10));
	assert_int_equal(fadt[116], 1);		 /* SystemIO */
	assert_int_equal(rd(fadt + 120, 8), 0x64);
	assert_int_equal(fadt[128], 0xfe);
	assert_int_equal(fadt[244], 1);		 /* sleep control: SystemIO */
	assert_int_equal(rd(fadt + 248, 8), ACPI_SLEEP_PORT);
	assert_int_equal(fadt[256], 1);		 /* sleep status: SystemIO */
	assert_int_equal(rd(fadt + 260, 8), ACPI_SLEEP_PORT);
	assert_int_equal(rd(fadt + 40, 4), rd(fadt + 140, 8));
	dsdt = table(rd(fadt + 140, 8), (size_t)used, "DSDT");
	assert_true(rd(fadt + 140, 8) < GPA + (uint64_t)used);

	/* MADT: LAPIC address, one enabled LAPIC per vCPU with ids 0, 1, the
	 * IOAPIC, and nothing the guest would misread. */
	{
		uint32_t len = (uint32_t)rd(madt + 4, 4);
		unsigned int lapics = 0, ioapics = 0, isos = 0;
		bool seen[2] = {false, false};

		assert_int_equal(rd(madt + 36, 4), 0xfee00000);
		for (uint32_t off = 44; off < len;) {
			const uint8_t *e = madt + off;

			assert_true(e[1] >= 2 && off + e[1] <= len);
			if (e[0] == 0) {
				assert_int_equal(e[1], 8);
				assert_true(e[3] < 2);
				assert_false(seen[e[3]]);
				seen[e[3]] = true;
				assert_int_equal(rd(e + 4, 4) & 1, 1);
				lapics++;
			} else if (e[0] == 1) {
				assert_int_equal(e[1], 12);
				assert_int_equal(rd(e + 4, 4), 0xfec00000);
				assert_int_equal(rd(e + 8, 4), 0);
				ioapics++;
			} else if (e[0] == 2) {
				isos++;
			}
			off += e[1];
		}
		assert_int_equal(lapics, 2);
		assert_int_equal(ioapics, 1);
		assert_int_equal(isos, 0); /* KVM's routing is the identity */
	}

	/* DSDT: \_S5_ = Package(2){ACPI_S5_TYPE, 0}, at the root. */
	{
		static const uint8_t s5[] = {0x08, 0x5c, '_', 'S', '5', '_', 0x12, 0x05, 0x02,
					     0x0a, ACPI_S5_TYPE, 0x00};

		assert_memory_equal(dsdt + 36, s5, sizeof(s5));
	}

	/* DSDT: each LNRO0005 followed by its window and its interrupt. */
	{
		uint32_t len = (uint32_t)rd(dsdt + 4, 4);
		unsigned int found = 0;

		for (uint32_t i = 36; i + 8 <= len; i++) {
			const struct acpi_virtio *v = &machine.virtio[found];
			const uint8_t *m = NULL, *irq = NULL;

			if (memcmp(dsdt + i, "LNRO0005", 8))
				continue;
			assert_true(found < machine.nvirtio);
			for (uint32_t j = i + 8; j + 9 <= len && !irq; j++) {
				if (!m && dsdt[j] == 0x86 && rd(dsdt + j + 1, 2) == 9)
					m = dsdt + j;
				else if (m && dsdt[j] == 0x89 && rd(dsdt + j + 1, 2) == 6)
					irq = dsdt + j;
			}
			assert_non_null(irq);
			assert_int_equal(rd(m + 4, 4), v->base);
			assert_int_equal(rd(m + 8, 4), v->size);
			assert_int_equal(irq[3], 0x03); /* consumer, edge, active high */
			assert_int_equal(irq[4], 1);
			assert_int_equal(rd(irq + 5, 4), v->gsi);
			found++;
		}
		assert_int_equal(found, machine.nvirtio);
	}

	/* DSDT: the power button, once each, inside Scope(\_SB_), which
	 * follows \_S5_ and runs to the end of the table. */
	{
		uint32_t len = (uint32_t)rd(dsdt + 4, 4), scope = 36 + 12, end;
		const uint8_t *ged = memmem(dsdt, len, ged_aml, sizeof(ged_aml));
		const uint8_t *pwrb = memmem(dsdt, len, pwrb_aml, sizeof(pwrb_aml));
		const uint8_t *p = dsdt + scope + 1;
		unsigned int n = p[0] >> 6;

		assert_int_equal(dsdt[scope], 0x10);
		end = p[0] & (n ? 0x0f : 0x3f);
		for (unsigned int i = 1; i <= n; i++)
			end |= (uint32_t)p[i] << (4 + 8 * (i - 1));
		end += scope + 1;
		assert_int_equal(end, len);
		assert_memory_equal(p + 1 + n, "\\_SB_", 5);
		assert_non_null(ged);
		assert_non_null(pwrb);
		assert_true(ged > p && ged + sizeof(ged_aml) <= pwrb &&
			    pwrb + sizeof(pwrb_aml) <= dsdt + len);
		assert_int_equal(count(dsdt, len, "ACPI0013", 8), 1);
		assert_int_equal(count(dsdt, len, pwrb_aml + 12, 5), 1); /* EISAID PNP0C0C */
		assert_int_equal(count(dsdt, len, "PWRB", 4), 2);	 /* the device, Notify */
	}
}

/* Every table lies inside what acpi_build() said it used, and does not
 * overlap another. */
static void test_layout(void **state)
{
	const uint8_t *fadt, *madt, *t[5];
	int used = build();

	(void)state;
	fadt = find_fadt(used, &madt);
	t[0] = buf;
	t[1] = buf + (rd(buf + 24, 8) - GPA);
	t[2] = fadt;
	t[3] = madt;
	t[4] = buf + (rd(fadt + 140, 8) - GPA);
	for (int i = 0; i < 5; i++) {
		size_t li = i ? rd(t[i] + 4, 4) : 36;

		assert_true(t[i] + li <= buf + used);
		for (int j = 0; j < 5; j++) {
			size_t lj = j ? rd(t[j] + 4, 4) : 36;

			if (i != j)
				assert_true(t[i] + li <= t[j] || t[j] + lj <= t[i]);
		}
	}
}

static void test_no_room(void **state)
{
	int need = build();

	(void)state;
	assert_true(need > 0);
	/* Exactly sized heap buffers, so ASan sees any write past the end. */
	for (int n = 0; n < need; n++) {
		uint8_t *b = malloc((size_t)n + 1);

		assert_non_null(b);
		assert_int_equal(acpi_build(&machine, GPA, b, (size_t)n), -ENOSPC);
		free(b);
	}
	{
		uint8_t *b = malloc((size_t)need);

		assert_int_equal(acpi_build(&machine, GPA, b, (size_t)need), need);
		free(b);
	}
}

static void test_bad_machine(void **state)
{
	struct acpi_machine m = machine;

	(void)state;
	m.ncpus = 0;
	assert_int_equal(acpi_build(&m, GPA, buf, sizeof(buf)), -EINVAL);
	m.ncpus = 255;
	assert_int_equal(acpi_build(&m, GPA, buf, sizeof(buf)), -EINVAL);
	m.ncpus = 254; /* the most an 8-bit APIC id allows */
	assert_true(acpi_build(&m, GPA, buf, sizeof(buf)) > 0);
	m = machine;
	m.nvirtio = ACPI_MAX_VIRTIO + 1;
	assert_int_equal(acpi_build(&m, GPA, buf, sizeof(buf)), -EINVAL);
	m = machine;
	m.virtio[1].base = 0xfffffff0;
	assert_int_equal(acpi_build(&m, GPA, buf, sizeof(buf)), -EINVAL);
	m = machine;
	m.virtio[0].gsi = ACPI_GED_GSI; /* the power button's line */
	assert_int_equal(acpi_build(&m, GPA, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(acpi_build(&machine, GPA + 8, buf, sizeof(buf)), -EINVAL);
}

/* ---- the AML encoder against hand-assembled bytes ------------------------ */

static void test_aml_names_and_integers(void **state)
{
	static const uint8_t want[] = {
	    0x5c, '_', 'S', 'B', '_',				 /* \_SB_ */
	    'V', 'R', '0', '0',					 /* VR00 */
	    0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1',	 /* _SB.COM1 */
	    0x2f, 3, 'A', '_', '_', '_', 'B', 'C', '_', '_', 'D', 'E', 'F', 'G',
	    0x00, 0x01, 0xff, 0x0a, 0x05, 0x0b, 0x34, 0x12,	 /* 0 1 Ones 5 0x1234 */
	    0x0c, 0x00, 0x00, 0x00, 0xd0,			 /* 0xd0000000 */
	    0x0e, 1, 0, 0, 0, 1, 0, 0, 0,			 /* 0x100000001 */
	    0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00, /* "LNRO0005" */
	    0x0c, 0x41, 0xd0, 0x05, 0x01,			 /* EISAID("PNP0501") */
	};
	uint8_t out[128];
	struct aml a;

	(void)state;
	aml_init(&a, out, sizeof(out));
	aml_name(&a, "\\_SB_");
	aml_name(&a, "VR00");
	aml_name(&a, "_SB.COM1");
	aml_name(&a, "A.BC.DEFG");
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, UINT64_MAX);
	aml_integer(&a, 5);
	aml_integer(&a, 0x1234);
	aml_integer(&a, 0xd0000000);
	aml_integer(&a, 0x100000001ull);
	aml_string(&a, "LNRO0005");
	aml_eisaid(&a, "PNP0501");
	assert_false(a.overflow);
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));

	aml_init(&a, out, sizeof(out));
	aml_name(&a, "TOOLONG");
	assert_true(a.overflow);
}

/* Scope(X){n bytes}: PkgLength in 1, 2 and 3 bytes, at the boundaries. */
static void test_aml_pkglength(void **state)
{
	static const struct {
		size_t body; /* bytes inside, after the NameString */
		uint8_t lead[3];
		unsigned int nlead;
	} cases[] = {
	    {58, {63}, 1},		    /* 1 + 4 + 58 = 63: the most in one byte */
	    {59, {0x40 | 1, 4}, 2},	    /* 2 + 4 + 59 = 65 = 0x41 */
	    {4089, {0x40 | 0xf, 0xff}, 2}, /* 2 + 4 + 4089 = 0xfff */
	    {4090, {0x80 | 1, 0, 1}, 3},   /* 3 + 4 + 4090 = 0x1001 */
	};
	static uint8_t out[8192], body[8192];

	(void)state;
	memset(body, 0x33, sizeof(body));
	for (unsigned int c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct aml a;

		aml_init(&a, out, sizeof(out));
		aml_begin_scope(&a, "XY");
		aml_bytes(&a, body, cases[c].body);
		aml_end(&a);
		assert_false(a.overflow);
		assert_int_equal(a.depth, 0);
		assert_int_equal(a.len, 1 + cases[c].nlead + 4 + cases[c].body);
		assert_int_equal(out[0], 0x10);
		assert_memory_equal(out + 1, cases[c].lead, cases[c].nlead);
		assert_memory_equal(out + 1 + cases[c].nlead, "XY__", 4);
		assert_memory_equal(out + 1 + cases[c].nlead + 4, body, cases[c].body);
	}
}

/* Device(VR00){Name(_CRS, ResourceTemplate(){...})} byte for byte, as iasl
 * compiles the same ASL. */
static void test_aml_device(void **state)
{
	static const uint8_t want[] = {
	    0x5b, 0x82, 0x25, 'V', 'R', '0', '0',			/* Device(VR00) */
	    0x08, '_', 'C', 'R', 'S', 0x11, 0x1a, 0x0a, 0x17,		/* Name(_CRS, Buffer(23) */
	    0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x02, 0x00, 0x00,
	    0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00,
	    0x79, 0x00,
	};
	uint8_t out[64], res[32];
	struct aml a, r;

	(void)state;
	aml_init(&r, res, sizeof(res));
	aml_res_memory32_fixed(&r, 0xd0000000, 0x200);
	aml_res_interrupt(&r, 5, AML_IRQ_CONSUMER | AML_IRQ_EDGE);
	aml_res_end(&r);
	aml_init(&a, out, sizeof(out));
	aml_begin_device(&a, "VR00");
	aml_name_decl(&a, "_CRS");
	aml_buffer(&a, res, r.len);
	aml_end(&a);
	assert_false(a.overflow);
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));

	/* An end without a begin, and a begin never ended, are errors. */
	aml_init(&a, out, sizeof(out));
	aml_end(&a);
	assert_true(a.overflow);
}

/* Method(_EVT, 1){If(LEqual(Arg0, 16)){Notify(\_SB_.PWRB, 0x80)}}, then
 * the flags byte and the bounds of Method and ArgN. */
static void test_aml_method(void **state)
{
	static const uint8_t want[] = {
	    0x14, 0x19, '_',  'E',  'V', 'T', 0x01, /* MethodOp PkgLength(25) name flags */
	    0xa0, 0x12,				    /* IfOp PkgLength(18) */
	    0x93, 0x68, 0x0a, 0x10,		    /* LEqual(Arg0, 16) */
	    0x86, 0x5c, 0x2e, '_',  'S', 'B', '_',  'P', 'W', 'R', 'B', 0x0a, 0x80,
	};
	uint8_t out[64];
	struct aml a;

	(void)state;
	aml_init(&a, out, sizeof(out));
	aml_begin_method(&a, "_EVT", 1, false);
	aml_begin_if(&a);
	aml_lequal(&a);
	aml_arg(&a, 0);
	aml_integer(&a, 16);
	aml_notify(&a);
	aml_name(&a, "\\_SB_.PWRB");
	aml_integer(&a, 0x80);
	aml_end(&a);
	aml_end(&a);
	assert_false(a.overflow);
	assert_int_equal(a.depth, 0);
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));

	/* Serialized, 7 arguments, Arg6: flags 0x0f, ArgOp 0x6e. */
	aml_init(&a, out, sizeof(out));
	aml_begin_method(&a, "M", 7, true);
	aml_arg(&a, 6);
	aml_end(&a);
	assert_false(a.overflow);
	assert_int_equal(a.len, 8);
	assert_memory_equal(out, ((const uint8_t[]){0x14, 0x07, 'M', '_', '_', '_', 0x0f, 0x6e}),
			    8);

	/* There is no Arg7, and a method takes at most 7 arguments. */
	aml_init(&a, out, sizeof(out));
	aml_arg(&a, 7);
	assert_true(a.overflow);
	aml_init(&a, out, sizeof(out));
	aml_begin_method(&a, "M", 8, false);
	assert_true(a.overflow);
}

static int dump(const char *dir)
{
	const uint8_t *fadt, *madt;
	const uint8_t *t[4];
	int used = build();

	if (used < 0)
		return 1;
	fadt = find_fadt(used, &madt);
	t[0] = buf + (rd(buf + 24, 8) - GPA);
	t[1] = fadt;
	t[2] = madt;
	t[3] = buf + (rd(fadt + 140, 8) - GPA);
	for (int i = 0; i < 4; i++) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path), "%s/%.4s.dat", dir, (const char *)t[i]);
		f = fopen(path, "wb");
		if (!f || fwrite(t[i], rd(t[i] + 4, 4), 1, f) != 1 || fclose(f)) {
			perror(path);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables),
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_no_room),
	    cmocka_unit_test(test_bad_machine),
	    cmocka_unit_test(test_aml_names_and_integers),
	    cmocka_unit_test(test_aml_pkglength),
	    cmocka_unit_test(test_aml_device),
	    cmocka_unit_test(test_aml_method),
	};

	if (argc == 3 && !strcmp(argv[1], "--dump"))
		return dump(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
