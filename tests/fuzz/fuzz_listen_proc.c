/* The /proc/net/tcp{,6} reader (probes/listeners.h): the first byte picks
 * the family, the rest is the file's text. The table is then sorted and
 * looked at as vp_listen_read() and the listener checks would. */
#include <errno.h>
#include <sys/socket.h>

#include "probes/listeners.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/listen_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vp_listen_table t;
	char *text;
	int family, r;

	if (size == 0)
		return 0;
	family = data[0] & 1 ? AF_INET6 : AF_INET;
	/* Not a C string: the parser takes a length, and a NUL is just a byte. */
	text = malloc(size - 1 ? size - 1 : 1);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	vp_listen_table_init(&t);
	r = vp_listen_parse_proc(&t, family, text, size - 1);
	VP_FUZZ_CHECK(r == -ENOMEM || (r >= 0 && (size_t)r == t.n));
	for (size_t i = 0; i < t.n; i++)
		VP_FUZZ_CHECK(t.socks[i].family == family && t.socks[i].v6only == VP_V6ONLY_UNKNOWN);
	vp_fuzz_check_table(&t);
	vp_listen_table_done(&t);
	free(text);
	return 0;
}
