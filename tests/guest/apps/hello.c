/* SPDX-License-Identifier: GPL-2.0-only */
/* app=hello: the smallest proof that the guest boots and can print. */
#include "../guest.h"

int app_hello(void)
{
	printf("testguest: hello, world\n");
	return EXIT_OK;
}
