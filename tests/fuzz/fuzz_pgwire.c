/* The PostgreSQL reply readers (probes/pgwire.h): the input is what a
 * server sent, framed message by message as probes/postgres.c reads its
 * buffer, and each message given to the reader of its type. */
#include <errno.h>

#include "probes/pgwire.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

static void check_auth(const struct vp_pg_msg *m)
{
	struct vp_pg_auth a;

	if (vp_pg_parse_auth(m, &a) < 0)
		return;
	VP_FUZZ_CHECK(a.data_len <= m->len);
	VP_FUZZ_CHECK(a.data_len == 0 || (a.data >= m->body && a.data + a.data_len <= m->body + m->len));
	VP_FUZZ_CHECK(vp_fuzz_terminated(a.mechanisms, sizeof(a.mechanisms)));
	VP_FUZZ_CHECK(vp_fuzz_printable(a.mechanisms));
	VP_FUZZ_CHECK(vp_pg_auth_method(a.code) != NULL);
}

static void check_error(const struct vp_pg_msg *m)
{
	struct vp_pg_error e;
	struct vp_verdict_out out = { 0 };

	if (vp_pg_parse_error(m, &e) < 0)
		return;
	/* Every field is escaped: nothing a server says reaches a terminal,
	 * the page or a record as it was sent. */
	VP_FUZZ_CHECK(vp_fuzz_terminated(e.severity, sizeof(e.severity)) && vp_fuzz_printable(e.severity));
	VP_FUZZ_CHECK(vp_fuzz_terminated(e.message, sizeof(e.message)) && vp_fuzz_printable(e.message));
	VP_FUZZ_CHECK(vp_fuzz_terminated(e.sqlstate, sizeof(e.sqlstate)));
	VP_FUZZ_CHECK(e.sqlstate[0] == '\0' || strlen(e.sqlstate) == 5);
	vp_pg_error_reason(&e, &out);
	VP_FUZZ_CHECK(out.reason == VP_REASON_PROTOCOL);
	VP_FUZZ_CHECK(vp_fuzz_terminated(out.reason_text, sizeof(out.reason_text)));
	VP_FUZZ_CHECK(vp_fuzz_printable(out.reason_text) && vp_fuzz_printable(out.hint));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly 'size' bytes, so that a read past the end is seen. */
	uint8_t *buf = malloc(size ? size : 1);
	size_t off = 0;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	while (off < size) {
		struct vp_pg_msg m;
		int n = vp_pg_frame(buf + off, size - off, &m);

		if (n <= 0) {
			VP_FUZZ_CHECK(n == 0 || n == -EBADMSG);
			break;
		}
		VP_FUZZ_CHECK((size_t)n >= 5 && (size_t)n <= size - off);
		VP_FUZZ_CHECK(m.body == buf + off + 5 && m.len == (size_t)n - 5);
		if (m.type == 'R')
			check_auth(&m);
		else if (m.type == 'E' || m.type == 'N')
			check_error(&m);
		/* Every reader refuses what is not its type, without reading it. */
		check_auth(&m);
		check_error(&m);
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
