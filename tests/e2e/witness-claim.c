// SPDX-License-Identifier: GPL-2.0-only
/*
 * A claimant for tests: one real claim (transport_witness_claim, what a
 * primary or secondary sends when its pair breaks) at a `colovm witness`.
 *
 *   witness-claim tcp:HOST:PORT primary|secondary PAIR [KEYFILE]
 *
 * PAIR: a word of up to 16 bytes, the pairing id (zero-padded). Prints the verdict;
 * exit 0 granted, 1 refused, 2 no verdict or bad arguments.
 */
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "transport/transport.h"

int main(int argc, char **argv)
{
	uint8_t pair[TRANSPORT_PAIR_LEN];
	struct transport_key key;
	char msg[256];
	int r;

	if (argc < 4 || argc > 5 || (strcmp(argv[2], "primary") && strcmp(argv[2], "secondary"))) {
		fprintf(stderr, "usage: %s tcp:HOST:PORT primary|secondary PAIR [KEYFILE]\n",
			argv[0]);
		return 2;
	}
	if (argc == 5 ? transport_key_load(argv[4], &key) : (transport_key_public(&key), 0)) {
		fprintf(stderr, "%s: not a key\n", argv[4]);
		return 2;
	}
	memset(pair, 0, sizeof(pair));
	memcpy(pair, argv[3], MIN(strlen(argv[3]), sizeof(pair)));
	r = transport_witness_claim(argv[1], &key, pair,
				    strcmp(argv[2], "primary") ? TRANSPORT_SIDE_SECONDARY
							       : TRANSPORT_SIDE_PRIMARY,
				    1, "witness-claim", msg, sizeof(msg));
	printf("%s: %s\n", r == 1 ? "granted" : r == 0 ? "refused" : "no verdict", msg);
	return r == 1 ? 0 : r == 0 ? 1 : 2;
}
