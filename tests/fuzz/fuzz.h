/* Shared by the libFuzzer harnesses of tests/fuzz (issue 9). Each harness
 * feeds one parser bytes it did not choose and checks, besides what ASan
 * and UBSan catch, the promises its header makes: escaped text stays
 * escaped, '*ret' is left alone on failure, counts stay within bounds.
 *
 * A harness never touches the network; the few that need a file (the
 * gcloud readers take paths) use a memfd. */
#ifndef VP_FUZZ_H
#define VP_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"

/* libFuzzer's entry points; declared here for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken promise is a crash, so that libFuzzer keeps the input. */
#define VP_FUZZ_CHECK(cond)                                                            \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                       \
		}                                                                      \
	} while (0)

/* Library code logs at debug and the agent at info or worse: keep the
 * fuzzer's output to its own lines. */
static inline void vp_fuzz_quiet(void)
{
	vp_log_set_level((enum vp_log_level)0);
}

/* A NUL-terminated copy of data[0..size) in a block of exactly size + 1
 * bytes, so that ASan sees a read past the end. NULL when out of memory. */
static inline char *vp_fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s != NULL) {
		if (size > 0)
			memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

/* The next field of an input made of NUL-separated fields, as a copy
 * (vp_fuzz_str); the last field runs to the end. Advances past the NUL. */
static inline char *vp_fuzz_field(const uint8_t **data, size_t *size)
{
	const uint8_t *nul = memchr(*data, '\0', *size);
	size_t n = nul != NULL ? (size_t)(nul - *data) : *size;
	char *s = vp_fuzz_str(*data, n);

	*data += n + (nul != NULL ? 1 : 0);
	*size -= n + (nul != NULL ? 1 : 0);
	return s;
}

/* Whether 's' is NUL-terminated within 'len' bytes. */
static inline bool vp_fuzz_terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

/* Whether the NUL-terminated 's' is printable ASCII only (vp_escape's
 * output, reasons made from a server's words). */
static inline bool vp_fuzz_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

#endif
