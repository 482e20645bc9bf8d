/* The escapers between what a hostile server says and where people read
 * it: vp_escape() and vp_preview() (probes/wire.h) for details, vp_buf_html()
 * and vp_buf_urlenc() (agent/html.h) for the page, vp_prom_label() for
 * /metrics, vp_term_safe() and the check table (agent/term.h) for the
 * terminal. The input is the text; its checks are what each promises. */
#include <errno.h>

#include "agent/html.h"
#include "agent/metrics.h"
#include "agent/term.h"
#include "probes/verdict.h"
#include "probes/wire.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	/* vp_term_print() colours a terminal only; its output here is a
	 * memory stream, but say it twice. */
	setenv("NO_COLOR", "1", 1);
	return 0;
}

static void check_escape(const uint8_t *data, size_t size)
{
	char out[VP_DETAIL_MAX], small[8];
	size_t shown;

	shown = vp_escape(data, size, out, sizeof(out));
	VP_FUZZ_CHECK(shown <= size);
	VP_FUZZ_CHECK(vp_fuzz_terminated(out, sizeof(out)) && vp_fuzz_printable(out));
	shown = vp_escape(data, size, small, sizeof(small));
	VP_FUZZ_CHECK(shown <= size && vp_fuzz_terminated(small, sizeof(small)) &&
	              vp_fuzz_printable(small));
	vp_preview(data, size, out, sizeof(out));
	VP_FUZZ_CHECK(vp_fuzz_terminated(out, sizeof(out)) && vp_fuzz_printable(out));
}

/* Valid UTF-8 without C0 (but tab and newline), DEL or C1, and none of
 * the characters HTML gives a meaning: what vp_buf_html() promises. */
static bool html_safe(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
		           (c & 0xf8) == 0xf0 ? 4 : 0;

		if (n == 0 || i + n > len || strchr("<>\"'", c) != NULL || c == 0x7f ||
		    (c < 0x20 && c != '\t' && c != '\n'))
			return false;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		if (n == 2 && c == 0xc2 && s[i + 1] < 0xa0)
			return false;
		if (c == '&' && strncmp((const char *)s + i, "&amp;", 5) != 0 &&
		    strncmp((const char *)s + i, "&lt;", 4) != 0 && strncmp((const char *)s + i, "&gt;", 4) != 0 &&
		    strncmp((const char *)s + i, "&quot;", 6) != 0 && strncmp((const char *)s + i, "&#39;", 5) != 0 &&
		    strncmp((const char *)s + i, "&#x27;", 6) != 0)
			return false;
		i += n;
	}
	return true;
}

static void check_html(const char *text)
{
	struct vp_buf b;

	vp_buf_init(&b, 1 << 20);
	VP_FUZZ_CHECK(vp_buf_html(&b, text) == 0);
	VP_FUZZ_CHECK(b.len == 0 || html_safe((const unsigned char *)b.data, b.len));
	vp_buf_done(&b);

	vp_buf_init(&b, 1 << 20);
	VP_FUZZ_CHECK(vp_buf_urlenc(&b, text) == 0);
	for (size_t i = 0; i < b.len; i++)
		VP_FUZZ_CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%",
		                     b.data[i]) != NULL);
	vp_buf_done(&b);

	/* A label value: no raw newline, every quote escaped. */
	vp_buf_init(&b, 1 << 20);
	VP_FUZZ_CHECK(vp_prom_label(&b, text) == 0);
	for (size_t i = 0; i < b.len; i++) {
		VP_FUZZ_CHECK(b.data[i] != '\n');
		if (b.data[i] == '\\') {
			VP_FUZZ_CHECK(i + 1 < b.len && strchr("\\\"n", b.data[i + 1]) != NULL);
			i++;
		} else {
			VP_FUZZ_CHECK(b.data[i] != '"');
		}
	}
	vp_buf_done(&b);

	/* A cap that cuts: the buffer keeps a prefix, says so, stays a string. */
	vp_buf_init(&b, 16);
	(void)vp_buf_html(&b, text);
	VP_FUZZ_CHECK(b.len <= 16 && (b.err == 0 || b.err == -ENOBUFS));
	VP_FUZZ_CHECK(b.data == NULL || strlen(b.data) == b.len);
	vp_buf_done(&b);
}

/* No C0, DEL or C1 (as a UTF-8 sequence) in what a terminal gets. */
static bool term_safe(const unsigned char *s, size_t len, bool newlines)
{
	for (size_t i = 0; i < len; i++) {
		if ((s[i] < 0x20 && !(newlines && s[i] == '\n')) || s[i] == 0x7f)
			return false;
		if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

static void check_term(const char *text)
{
	char safe[VP_DETAIL_MAX];
	struct vp_probe_result res = { 0 };
	struct vp_term_row row = { .target = text, .res = &res };
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	vp_term_safe(safe, sizeof(safe), text);
	VP_FUZZ_CHECK(vp_fuzz_terminated(safe, sizeof(safe)));
	VP_FUZZ_CHECK(term_safe((const unsigned char *)safe, strlen(safe), false));

	/* The whole table, with the hostile text as the target's name, the
	 * detail and the hint of a failed probe. */
	res.v.verdict = VP_VERDICT_PROTOCOL_ERROR;
	res.v.reason = VP_REASON_PROTOCOL;
	snprintf(res.v.reason_text, sizeof(res.v.reason_text), "fuzz");
	snprintf(res.v.detail, sizeof(res.v.detail), "%s", text);
	snprintf(res.v.hint, sizeof(res.v.hint), "%s", text);
	snprintf(res.address, sizeof(res.address), "127.0.0.1");
	res.port = 5432;
	res.connect_ms = 1.5;
	res.total_ms = 2.5;
	f = open_memstream(&out, &len);
	VP_FUZZ_CHECK(f != NULL);
	vp_term_print(f, &row, 1);
	VP_FUZZ_CHECK(fclose(f) == 0);
	VP_FUZZ_CHECK(memchr(out, 0x1b, len) == NULL);
	VP_FUZZ_CHECK(term_safe((const unsigned char *)out, len, true));
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = vp_fuzz_str(data, size);

	if (text == NULL)
		return 0;
	check_escape(data, size);
	check_html(text);
	check_term(text);
	free(text);
	return 0;
}
