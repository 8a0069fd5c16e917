/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * 8250/16550A UART at 0x3f8, IRQ 4: the guest console. Output goes to
 * stdout or a file as each byte is written; input comes from stdin (read on
 * the main loop), with the interrupt line driven through the in-kernel
 * irqchip. vCPU threads and the main loop share the state under a mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <termios.h>
#include <unistd.h>

#include "common/vmstate/vmstate.h"
#include "hw/internal.h"

#define UART_BASE 0x3f8
#define UART_IRQ  4
#define RX_FIFO	  1024

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_DCD	 0x80
#define MSR_DSR	 0x20
#define MSR_CTS	 0x10

struct uart {
	struct vm *vm;
	pthread_mutex_t lock;
	int out_fd;
	bool own_out;
	int in_fd;	/* -1: no input */
	bool in_watched;
	bool tty_saved;
	struct termios saved_tio;

	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thr_irq_pending;
	bool irq_level;
	uint8_t rx[RX_FIFO];
	unsigned int rx_head, rx_len;
	uint16_t s_rx_head, s_rx_len; /* rx_head/rx_len as saved */
};

static uint8_t uart_iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & 1) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDI) && u->rx_len)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thr_irq_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

static void uart_update_irq(struct uart *u)
{
	bool level = !(uart_iir(u) & IIR_NONE);

	if (level != u->irq_level) {
		u->irq_level = level;
		vm_irq_line(u->vm, UART_IRQ, level);
	}
}

static void uart_rx_push(struct uart *u, uint8_t c)
{
	if (u->rx_len < RX_FIFO) {
		u->rx[(u->rx_head + u->rx_len) % RX_FIFO] = c;
		u->rx_len++;
	}
}

static void uart_tx(struct uart *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP) {
		uart_rx_push(u, c);
	} else if (u->out_fd >= 0) {
		/* Console output must not stall the vCPU forever: errors drop. */
		if (write(u->out_fd, &c, 1) < 0 && errno != EAGAIN)
			u->out_fd = -1;
	}
	u->thr_irq_pending = true;
}

static void uart_in_cb(void *opaque, uint32_t events);

/* Re-arm stdin once the guest has drained the FIFO (never lose input). */
static void uart_watch_input(struct uart *u)
{
	bool want = u->in_fd >= 0 && u->rx_len < RX_FIFO;

	if (want != u->in_watched && u->in_fd >= 0) {
		loop_mod_fd(u->vm->loop, u->in_fd, want ? EPOLLIN : 0);
		u->in_watched = want;
	}
}

static void uart_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart *u = opaque;
	unsigned int reg = (unsigned int)(addr - UART_BASE);
	bool dlab;

	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&u->lock);
	dlab = u->lcr & LCR_DLAB;
	if (is_write) {
		uint8_t v = *data;

		switch (reg) {
		case RBR_THR:
			if (dlab)
				u->dll = v;
			else
				uart_tx(u, v);
			break;
		case IER:
			if (dlab) {
				u->dlm = v;
			} else {
				/* Enabling THRI with an empty THR raises it (16550). */
				if ((v & IER_THRI) && !(u->ier & IER_THRI))
					u->thr_irq_pending = true;
				u->ier = v & 0x0f;
			}
			break;
		case IIR_FCR:
			u->fcr = v;
			if (v & 0x02) /* clear RX FIFO */
				u->rx_len = 0;
			break;
		case LCR:
			u->lcr = v;
			break;
		case MCR:
			u->mcr = v & 0x1f;
			break;
		case SCR:
			u->scr = v;
			break;
		default:
			break;
		}
	} else {
		uint8_t v = 0;

		switch (reg) {
		case RBR_THR:
			if (dlab) {
				v = u->dll;
			} else if (u->rx_len) {
				v = u->rx[u->rx_head];
				u->rx_head = (u->rx_head + 1) % RX_FIFO;
				u->rx_len--;
			}
			break;
		case IER:
			v = dlab ? u->dlm : u->ier;
			break;
		case IIR_FCR:
			v = uart_iir(u);
			if ((v & 0x0f) == IIR_THRI)
				u->thr_irq_pending = false;
			break;
		case LCR:
			v = u->lcr;
			break;
		case MCR:
			v = u->mcr;
			break;
		case LSR:
			v = LSR_THRE | LSR_TEMT | (u->rx_len ? LSR_DR : 0);
			break;
		case MSR:
			if (u->mcr & MCR_LOOP) /* DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
				v = (uint8_t)((u->mcr & 0x01) << 5 | (u->mcr & 0x02) << 3 |
					      (u->mcr & 0x04) << 4 | (u->mcr & 0x08) << 4);
			else
				v = MSR_DCD | MSR_DSR | MSR_CTS;
			break;
		case SCR:
			v = u->scr;
			break;
		}
		*data = v;
	}
	uart_update_irq(u);
	uart_watch_input(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_in_cb(void *opaque, uint32_t events)
{
	struct uart *u = opaque;
	uint8_t buf[256];
	ssize_t n;

	pthread_mutex_lock(&u->lock);
	n = read(u->in_fd, buf, MIN(sizeof(buf), (size_t)(RX_FIFO - u->rx_len)));
	if (n > 0) {
		for (ssize_t i = 0; i < n; i++)
			uart_rx_push(u, buf[i]);
		uart_update_irq(u);
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		loop_del_fd(u->vm->loop, u->in_fd); /* EOF: console input closed */
		u->in_fd = -1;
	}
	uart_watch_input(u);
	pthread_mutex_unlock(&u->lock);
}

void uart_reset(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	u->ier = u->lcr = u->mcr = u->scr = u->fcr = u->dll = u->dlm = 0;
	u->thr_irq_pending = false;
	u->rx_head = u->rx_len = 0;
	uart_update_irq(u);
	uart_watch_input(u);
	pthread_mutex_unlock(&u->lock);
}

bool uart_spec_valid(const char *spec)
{
	return !strcmp(spec, "stdio") || !strcmp(spec, "none") || (!strncmp(spec, "file:", 5) && spec[5]);
}

int uart_create(struct vm *vm, const char *spec, struct uart **out)
{
	struct uart *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return -ENOMEM;
	u->vm = vm;
	u->in_fd = -1;
	u->out_fd = -1;
	pthread_mutex_init(&u->lock, NULL);
	if (!strcmp(spec, "stdio")) {
		u->out_fd = STDOUT_FILENO;
		u->in_fd = STDIN_FILENO;
	} else if (!strncmp(spec, "file:", 5) && spec[5]) {
		u->out_fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (u->out_fd < 0) {
			ret = -errno;
			log_err("--serial %s: %s", spec, strerror(errno));
			goto err;
		}
		u->own_out = true;
	} else if (!uart_spec_valid(spec)) {
		log_err("--serial %s: expected stdio, file:PATH or none", spec);
		ret = -EINVAL;
		goto err;
	}
	if (u->in_fd >= 0) {
		/* stdin may be /dev/null or a regular file: epoll refuses those,
		 * and then the console simply has no input. */
		if (loop_add_fd(vm->loop, u->in_fd, EPOLLIN, uart_in_cb, u) == 0) {
			u->in_watched = true;
			if (isatty(u->in_fd) && tcgetattr(u->in_fd, &u->saved_tio) == 0) {
				struct termios raw = u->saved_tio;

				raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
				raw.c_iflag &= ~(tcflag_t)ICRNL;
				u->tty_saved = tcsetattr(u->in_fd, TCSANOW, &raw) == 0;
			}
		} else {
			u->in_fd = -1;
		}
	}
	ret = io_bus_register(&vm->pio, UART_BASE, 8, uart_io, u);
	if (ret)
		goto err;
	*out = u;
	return 0;
err:
	uart_free(u);
	return ret;
}

void uart_free(struct uart *u)
{
	if (!u)
		return;
	if (u->in_fd >= 0 && u->in_watched)
		loop_del_fd(u->vm->loop, u->in_fd);
	if (u->tty_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &u->saved_tio);
	if (u->own_out && u->out_fd >= 0)
		close(u->out_fd);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* ---- state (persist beside the device) ------------------------------------ */

static int uart_pre_save(void *opaque)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	u->s_rx_head = (uint16_t)u->rx_head;
	u->s_rx_len = (uint16_t)u->rx_len;
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int uart_post_load(void *opaque, uint32_t version_id)
{
	struct uart *u = opaque;

	if (u->s_rx_head >= RX_FIFO || u->s_rx_len > RX_FIFO) {
		log_err("uart: receive FIFO head %u length %u out of range", u->s_rx_head,
			u->s_rx_len);
		return -EINVAL;
	}
	pthread_mutex_lock(&u->lock);
	u->rx_head = u->s_rx_head;
	u->rx_len = u->s_rx_len;
	/* The irqchip holds the line level already; keep ours in step with it. */
	vm_irq_line(u->vm, UART_IRQ, u->irq_level);
	uart_watch_input(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static const struct vmstate_field uart_fields[] = {
	VMSTATE_U8(struct uart, ier),
	VMSTATE_U8(struct uart, lcr),
	VMSTATE_U8(struct uart, mcr),
	VMSTATE_U8(struct uart, scr),
	VMSTATE_U8(struct uart, fcr),
	VMSTATE_U8(struct uart, dll),
	VMSTATE_U8(struct uart, dlm),
	VMSTATE_BOOL(struct uart, thr_irq_pending),
	VMSTATE_BOOL(struct uart, irq_level),
	VMSTATE_U16(struct uart, s_rx_head),
	VMSTATE_U16(struct uart, s_rx_len),
	VMSTATE_BUFFER(struct uart, rx),
	VMSTATE_END,
};

static const struct vmstate_desc uart_desc = {
	.name = "uart",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = uart_fields,
	.pre_save = uart_pre_save,
	.post_load = uart_post_load,
};

int uart_persist_register(struct uart *u, struct vmstate_registry *reg,
			  struct vmstate_error *err)
{
	return vmstate_register(reg, &uart_desc, 0, u, err);
}
