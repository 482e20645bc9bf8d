/* Escaping what a server said, for details that people read; making text
 * valid UTF-8. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent/limits.h"
#include "probes/wire.h"

/* The escape of one byte into 'e' (at most 5 bytes with the NUL). */
static size_t escape_byte(unsigned char c, char e[5])
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '\\': memcpy(e, "\\\\", 3); return 2;
	case '\r': memcpy(e, "\\r", 3); return 2;
	case '\n': memcpy(e, "\\n", 3); return 2;
	case '\t': memcpy(e, "\\t", 3); return 2;
	default:
		break;
	}
	if (c >= 0x20 && c < 0x7f) {
		e[0] = (char)c;
		e[1] = '\0';
		return 1;
	}
	e[0] = '\\';
	e[1] = 'x';
	e[2] = hex[c >> 4];
	e[3] = hex[c & 0xf];
	e[4] = '\0';
	return 4;
}

size_t vp_escape(const void *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = in;
	size_t total = 0;
	size_t used = 0;
	size_t room;
	size_t i;
	bool cut;
	char e[5];

	if (outlen == 0)
		return 0;
	for (i = 0; i < len; i++)
		total += escape_byte(s[i], e);
	/* When it does not all fit, keep room for "..." after the last escape. */
	cut = total + 1 > outlen;
	room = !cut ? outlen - 1 : outlen > 4 ? outlen - 4 : 0;
	for (i = 0; i < len; i++) {
		size_t n = escape_byte(s[i], e);

		if (used + n > room)
			break;
		memcpy(out + used, e, n);
		used += n;
	}
	if (cut && outlen >= 4) {
		memcpy(out + used, "...", 3);
		used += 3;
	}
	out[used] = '\0';
	return i;
}

void vp_preview(const void *in, size_t len, char *out, size_t outlen)
{
	char esc[VP_PREVIEW_BYTES * 4 + 1];
	size_t n = len < VP_PREVIEW_BYTES ? len : VP_PREVIEW_BYTES;

	(void)vp_escape(in, n, esc, sizeof(esc)); /* sized for every byte escaped */
	snprintf(out, outlen, "\"%s\"%s", esc, len > n ? "..." : "");
}

void vp_textf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, outlen, fmt, ap); /* a cut sentence still reads */
	va_end(ap);
}

size_t vp_utf8_len(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	/* Each test of a continuation byte fails on the NUL, and && stops there. */
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))
			return 0;
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

void vp_utf8_clean(char *s, bool controls)
{
	size_t i = 0, o = 0;

	while (s[i] != '\0') {
		unsigned char c = (unsigned char)s[i];
		size_t n = vp_utf8_len(s + i);
		bool ctrl = c < 0x20 || c == 0x7f || (n == 2 && c == 0xc2 && (unsigned char)s[i + 1] < 0xa0);

		if (n == 0 || (controls && ctrl)) {
			s[o++] = '?';
			i += n > 0 ? n : 1;
			continue;
		}
		memmove(s + o, s + i, n);
		o += n;
		i += n;
	}
	s[o] = '\0';
}
