/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * 8250/16550 UART at 0x3f8, polled (no interrupts). Each port access is a VM
 * exit, so with a FIFO we wait for THRE once and then write up to 16 bytes.
 */
#include "guest.h"

#define COM1	 0x3f8
#define UART_THR 0 /* transmit holding (write) */
#define UART_IER 1
#define UART_DLL 0 /* divisor latch, with LCR.DLAB */
#define UART_DLM 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5

#define LCR_DLAB    0x80
#define LCR_8N1	    0x03
#define FCR_FIFO    0xc7 /* enable, clear both, 14-byte trigger */
#define IIR_FIFO    0xc0 /* both bits set: FIFOs enabled (16550A) */
#define MCR_DTR_RTS 0x03
#define LSR_THRE    0x20
#define LSR_DR	    0x01 /* data ready */
#define UART_RBR    0 /* receive buffer (read) */

static unsigned int tx_burst = 1;

void serial_init(void)
{
	outb(COM1 + UART_IER, 0);
	outb(COM1 + UART_LCR, LCR_DLAB);
	outb(COM1 + UART_DLL, 1); /* 115200 baud */
	outb(COM1 + UART_DLM, 0);
	outb(COM1 + UART_LCR, LCR_8N1);
	outb(COM1 + UART_FCR, FCR_FIFO);
	outb(COM1 + UART_MCR, MCR_DTR_RTS);
	tx_burst = (inb(COM1 + UART_IIR) & IIR_FIFO) == IIR_FIFO ? 16 : 1;
}

/* Write one byte, waiting for THRE only when the FIFO room we knew of is used up
 * (the FIFO only drains meanwhile, so the count stays safe). */
static unsigned int room;
static void put_byte(uint8_t c)
{
	if (!room) {
		while (!(inb(COM1 + UART_LSR) & LSR_THRE))
			cpu_relax();
		room = tx_burst;
	}
	outb(COM1 + UART_THR, c);
	room--;
}

/* One received byte, or -1 if the receive buffer is empty (polled). */
int serial_getc(void)
{
	if (!(inb(COM1 + UART_LSR) & LSR_DR))
		return -1;
	return inb(COM1 + UART_RBR);
}

void serial_write(const char *s, size_t n)
{
	for (; n; n--, s++) {
		if (*s == '\n')
			put_byte('\r');
		put_byte((uint8_t)*s);
	}
}
