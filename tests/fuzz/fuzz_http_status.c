/* The HTTP status decision (probes/http.h): what the http(s) probe makes
 * of what libcurl reported. The input is a status code (two bytes), a flag
 * byte, then NUL-separated fields: the path (made printable, as the URL
 * parser leaves it), the Server header, and the body's first bytes; the
 * same fields feed a failed transfer (the header as curl's error text).
 * Whatever the server sent appears in the detail only escaped. */
#include "probes/http.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

static void check_out(const struct vp_verdict_out *out)
{
	VP_FUZZ_CHECK(out->verdict >= 0 && out->verdict < VP_VERDICT_MAX);
	VP_FUZZ_CHECK(vp_fuzz_terminated(out->reason_text, sizeof(out->reason_text)));
	VP_FUZZ_CHECK(vp_fuzz_terminated(out->detail, sizeof(out->detail)));
	VP_FUZZ_CHECK(vp_fuzz_terminated(out->hint, sizeof(out->hint)));
	VP_FUZZ_CHECK(vp_fuzz_printable(out->reason_text) && vp_fuzz_printable(out->hint));
	VP_FUZZ_CHECK(vp_verdict_reason(out) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vp_status_ranges expect = { 0 };
	struct vp_verdict_out out;
	char *path, *server, *body;
	size_t body_len;
	uint8_t flags;
	long status;
	char text[VP_HTTP_EXPECT_TEXT_MAX];

	if (size < 3)
		return 0;
	status = (long)(data[0] << 8 | data[1]) % 1100 - 50;
	flags = data[2];
	data += 3;
	size -= 3;
	path = vp_fuzz_field(&data, &size);
	server = vp_fuzz_field(&data, &size);
	body_len = size;
	body = vp_fuzz_str(data, size);
	if (path == NULL || server == NULL || body == NULL)
		goto out;
	for (char *p = path; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			*p = 'x';
	/* expect_status from the flags: the default, one code, or a range. */
	if (flags & 0x10) {
		expect.n = 2;
		expect.r[0] = (struct vp_status_range){ 204, 204 };
		expect.r[1] = (struct vp_status_range){ 400, (uint16_t)(400 + (flags & 0x0f)) };
	}
	vp_http_expect_text(&expect, text, sizeof(text));
	VP_FUZZ_CHECK(vp_fuzz_terminated(text, sizeof(text)) && vp_fuzz_printable(text));

	{
		struct vp_http_answer a = {
			.kind = flags & 1 ? VP_KIND_HTTPS : VP_KIND_HTTP,
			.status = status,
			.expect = flags & 0x10 ? &expect : NULL,
			.path = path,
			.server = server,
			.body = (const uint8_t *)body,
			.body_len = body_len,
			.body_total = body_len,
			.body_cut = flags & 2,
			.tls_ms = flags & 4 ? 3.5 : -1,
			.cert_days_known = flags & 8,
			.cert_days = (long)status - 100,
		};

		vp_http_decide_status(&a, &out);
		check_out(&out);
		/* The server's words reach the detail escaped. */
		VP_FUZZ_CHECK(vp_fuzz_printable(out.detail));
		VP_FUZZ_CHECK((out.verdict == VP_VERDICT_OK) ==
		              (status > 0 && status <= 999 && vp_http_status_expected(a.expect, status)));
	}
	{
		struct vp_http_failure f = {
			.kind = flags & 1 ? VP_KIND_HTTPS : VP_KIND_HTTP,
			.rc = (int)(status & 0x7f),
			.os_errno = flags & 0x20 ? 104 : 0,
			.verify_result = status % 80,
			.errtext = server,
			.host = path,
			.port = 443,
			.bytes_read = flags & 0x40 ? body_len : 0,
			.cert_days_known = flags & 8,
			.cert_days = (long)status - 100,
		};

		vp_http_decide_failure(&f, &out);
		check_out(&out);
		VP_FUZZ_CHECK(out.verdict != VP_VERDICT_OK);
	}
	VP_FUZZ_CHECK(vp_tls_verify_reason(status) != NULL);
out:
	free(path);
	free(server);
	free(body);
	return 0;
}
