/* The Redis RESP reader (probes/resp.h): the input is what a server sent,
 * read reply by reply as probes/redis.c reads its buffer; error lines go
 * to vp_resp_error_reason(). */
#include <errno.h>

#include "probes/resp.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

/* A reason made from a server's word: [a-z_], bounded. */
static bool reason_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > VP_PROTO_REASON_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	size_t off = 0;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	while (off < size) {
		struct vp_resp_reply rep;
		struct vp_verdict_out out = { 0 };
		int n = vp_resp_parse(buf + off, size - off, &rep);

		if (n <= 0) {
			VP_FUZZ_CHECK(n == 0 || n == -EBADMSG);
			break;
		}
		VP_FUZZ_CHECK((size_t)n <= size - off);
		VP_FUZZ_CHECK(rep.type == '+' || rep.type == '-' || rep.type == ':' || rep.type == '$' ||
		              rep.type == '*');
		if (rep.text != NULL)
			VP_FUZZ_CHECK(rep.text > buf + off && rep.text + rep.len <= buf + off + (size_t)n);
		if (rep.type == '$')
			VP_FUZZ_CHECK(rep.count >= -1 && rep.count <= VP_RESP_BULK_MAX);
		if (rep.type == '-') {
			vp_resp_error_reason(rep.text, rep.len, &out);
			VP_FUZZ_CHECK(out.reason == VP_REASON_PROTOCOL);
			VP_FUZZ_CHECK(reason_ok(out.reason_text));
			VP_FUZZ_CHECK(vp_fuzz_printable(out.hint));
		}
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
