/* SCRAM-SHA-256 server messages (probes/scram.h): the input is the
 * server-first message, a NUL, and the server-final message, answering a
 * client-first made with a fixed nonce. */
#include <errno.h>

#include "probes/scram.h"
#include "tests/fuzz/fuzz.h"

#define NONCE "rOprNGfwEbeRWgbNEkqO"
#define FUZZ_ITER_MAX 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

/* The iteration count the server asks for, as vp_scram_client_final() will
 * read it (the third field, "i="), or 0 when there is none. PBKDF2 with up
 * to VP_SCRAM_ITER_MAX rounds is a bound of the probe, not a bug: inputs
 * that ask for more than a few rounds are left out so that the fuzzer
 * spends its time on parsing. */
static unsigned long iterations(const char *sf, size_t len)
{
	const char *p = sf, *end = sf + len;

	for (int field = 0; field < 2; field++) {
		p = memchr(p, ',', (size_t)(end - p));
		if (p == NULL)
			return 0;
		p++;
	}
	if (end - p < 2 || p[0] != 'i' || p[1] != '=')
		return 0;
	return strtoul(p + 2, NULL, 10);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t sflen = nul != NULL ? (size_t)(nul - data) : size;
	char *first = vp_fuzz_str(data, sflen);
	char *final = nul != NULL ? vp_fuzz_str(nul + 1, size - sflen - 1) : NULL;
	size_t finlen = nul != NULL ? size - sflen - 1 : 0;
	struct vp_scram s;
	char msg[VP_SCRAM_MSG_MAX];
	int n;

	if (first == NULL || (nul != NULL && final == NULL))
		goto out;
	n = vp_scram_client_first(&s, "vpcprobe", NONCE, msg, sizeof(msg));
	VP_FUZZ_CHECK(n > 0);
	if (iterations(first, sflen) > FUZZ_ITER_MAX)
		goto out;
	n = vp_scram_client_final(&s, "secret", 6, first, sflen, msg, sizeof(msg));
	VP_FUZZ_CHECK(n > 0 || n == -EBADMSG || n == -ERANGE || n == -ENOTSUP || n == -ENOSPC);
	if (n > 0) {
		VP_FUZZ_CHECK((size_t)n < sizeof(msg) && strlen(msg) == (size_t)n);
		VP_FUZZ_CHECK(strncmp(msg, "c=biws,r=" NONCE, strlen("c=biws,r=" NONCE)) == 0);
	}
	if (final != NULL) {
		n = vp_scram_verify_final(&s, final, finlen);
		/* A fuzzer cannot forge the signature without the password. */
		VP_FUZZ_CHECK(n == -EACCES || n == -EPERM || n == -EBADMSG);
	}
	vp_scram_done(&s);
out:
	free(first);
	free(final);
	return 0;
}
