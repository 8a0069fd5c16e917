/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=console: console input. Reads lines from the UART (polled) and answers
 * each with `console: got '<line>'`; the line `quit` ends it with exit 0.
 * Proves that what is typed into the VMM's stdin reaches the guest.
 */
#include "../guest.h"

int app_console(void)
{
	char line[128];
	size_t n = 0;

	printf("console: ready\n");
	for (;;) {
		int c = serial_getc();

		if (c < 0) {
			cpu_relax();
			continue;
		}
		if (c == '\r' || c == '\n') {
			if (!n)
				continue;
			line[n] = '\0';
			printf("console: got '%s'\n", line);
			if (!strcmp(line, "quit"))
				return EXIT_OK;
			n = 0;
		} else if (n < sizeof(line) - 1) {
			line[n++] = (char)c;
		}
	}
}
