/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Time is the TSC, read at CPL 3. Its frequency comes, in order of trust,
 * from the hypervisor's timing leaf (CPUID 0x40000010, kHz), from CPUID 0x15
 * (crystal ratio, exact when the crystal is given), or from counting TSC
 * ticks against the PIT.
 *
 * PIT: channel 0, not the usual channel 2: channel 2's gate is port 0x61,
 * which QEMU microvm does not implement (reads 0xff). Channel 0's gate is
 * always open. It runs as a rate generator over the full 16-bit range while
 * we latch and read its counter until CALIBRATE_MS worth of PIT ticks have
 * passed; each latch is bracketed by two TSC reads. Afterwards channel 0 is
 * left in one-shot mode so it stops ticking (IF is 0: nobody takes IRQ 0).
 */
#include "guest.h"

#define PIT_HZ	      1193182ULL
#define PIT_CH0	      0x40
#define PIT_CMD	      0x43
#define PIT_CH0_MODE2 0x34 /* channel 0, lobyte/hibyte, rate generator, binary */
#define PIT_CH0_MODE0 0x30 /* channel 0, lobyte/hibyte, one-shot, binary */
#define PIT_CH0_LATCH 0x00
#define CALIBRATE_MS  50

uint64_t tsc_khz;
static const char *source = "none";
static uint64_t ppm; /* calibration uncertainty, parts per million */

static uint64_t from_hypervisor_leaf(void)
{
	uint32_t r[4];

	cpuid(1, 0, r);
	if (!(r[2] & (1u << 31))) /* no hypervisor */
		return 0;
	cpuid(0x40000000, 0, r);
	if (r[0] < 0x40000010)
		return 0;
	cpuid(0x40000010, 0, r);
	return r[0];
}

static uint64_t from_cpuid_15(void)
{
	uint32_t r[4];

	cpuid(0, 0, r);
	if (r[0] < 0x15)
		return 0;
	cpuid(0x15, 0, r);
	if (!r[0] || !r[1] || !r[2]) /* ratio or crystal unknown */
		return 0;
	return (uint64_t)r[2] * r[1] / r[0] / 1000;
}

/*
 * Latch and read channel 0's counter. The latch happens somewhere inside the
 * outb's VM exit: *tsc is the midpoint of the TSC reads around it and the
 * return value of *window their distance (large if the vCPU was preempted).
 */
static uint16_t pit_read(uint64_t *tsc, uint64_t *window)
{
	uint64_t t0 = rdtsc(), t1;
	uint8_t lo, hi;

	outb(PIT_CMD, PIT_CH0_LATCH);
	t1 = rdtsc();
	lo = inb(PIT_CH0);
	hi = inb(PIT_CH0);
	*tsc = t0 + (t1 - t0) / 2;
	*window = t1 - t0;
	return (uint16_t)(hi << 8 | lo);
}

/* A sample is good if its window is within twice the best seen plus 2 µs
 * (at 3 GHz); only good samples start or end the measurement. */
static bool good(uint64_t window, uint64_t best)
{
	return window <= 2 * best + 6000;
}

static uint64_t from_pit(void)
{
	uint64_t want = PIT_HZ * CALIBRATE_MS / 1000, ticks = 0, t0, t1, w0, w1, best = ~0ULL;
	uint16_t prev, cur;
	unsigned int spins = 0;

	outb(PIT_CMD, PIT_CH0_MODE2);
	outb(PIT_CH0, 0);
	outb(PIT_CH0, 0); /* count 65536: wraps every 55 ms */
	for (unsigned int i = 0; i < 8 || !good(w0, best); i++) {
		prev = pit_read(&t0, &w0);
		if (w0 < best)
			best = w0;
	}
	for (;;) {
		cur = pit_read(&t1, &w1);
		ticks += (uint16_t)(prev - cur);
		prev = cur;
		if (w1 < best)
			best = w1;
		if (ticks >= want && good(w1, best))
			break;
		/* A counter that does not move is not a PIT (an unclaimed port
		 * reads 0xff): give up after far more reads than CALIBRATE_MS takes. */
		if (++spins > 100000 && ticks == 0)
			break;
	}
	outb(PIT_CMD, PIT_CH0_MODE0);
	outb(PIT_CH0, 0xff);
	outb(PIT_CH0, 0xff);
	if (ticks < want)
		return 0;
	ppm = (w0 + w1) / 2 * 1000000 / (t1 - t0);
	return (t1 - t0) * PIT_HZ / ticks / 1000;
}

int timer_init(void)
{
	if ((tsc_khz = from_hypervisor_leaf()))
		source = "cpuid 0x40000010";
	else if ((tsc_khz = from_cpuid_15()))
		source = "cpuid 0x15";
	else if ((tsc_khz = from_pit()))
		source = "pit";
	return tsc_khz ? 0 : -1;
}

const char *timer_source(void)
{
	static char buf[64];

	if (strcmp(source, "pit"))
		return source;
	snprintf(buf, sizeof(buf), "pit (+-%lu ppm)", ppm);
	return buf;
}

uint64_t tsc_to_ns(uint64_t cycles)
{
	/* Split to keep cycles * 10^6 from overflowing. */
	return cycles / tsc_khz * 1000000 + cycles % tsc_khz * 1000000 / tsc_khz;
}

void delay_ns(uint64_t ns)
{
	uint64_t khz = tsc_khz ? tsc_khz : 3000000; /* uncalibrated: assume 3 GHz */
	uint64_t end = rdtsc() + ns / 1000000 * khz + ns % 1000000 * khz / 1000000;

	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}

uint64_t now_us(void)
{
	uint64_t t = rdtsc();

	return t / tsc_khz * 1000 + t % tsc_khz * 1000 / tsc_khz;
}
