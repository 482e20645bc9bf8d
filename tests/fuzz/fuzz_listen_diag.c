/* The NETLINK_SOCK_DIAG reader (probes/listeners.h): the input is one
 * receive buffer of inet_diag replies, as the kernel (or something posing
 * as it) would fill it. The input is copied to a buffer aligned as a
 * receive buffer would be, and again to an odd address: the reader must
 * not rely on alignment (it memcpy's every header). */
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

static void one(const uint8_t *buf, size_t size)
{
	struct vp_listen_table t;
	int r;

	vp_listen_table_init(&t);
	r = vp_listen_parse_diag(&t, buf, size);
	/* 0, 1, the error of an NLMSG_ERROR (any negative), -EBADMSG, -ENOMEM. */
	VP_FUZZ_CHECK(r <= 1);
	vp_fuzz_check_table(&t);
	vp_listen_table_done(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size + 1);

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	one(buf, size);
	memmove(buf + 1, buf, size);
	one(buf + 1, size);
	free(buf);
	return 0;
}
