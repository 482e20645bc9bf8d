/* Byte helpers shared by the protocol parsers (pgwire, resp): pure, bounded,
 * no I/O. Whatever a server sends ends up in a detail that terminals, the
 * status page and the collector show, so it is only ever shown escaped. */
#ifndef VP_WIRE_H
#define VP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes 'in' to 'out' as printable ASCII: bytes 0x20..0x7e as they are
 * (a backslash doubled), \r \n \t as such, every other byte (NUL, controls,
 * anything non-ASCII, so invalid UTF-8 too) as \xNN. Stops at a whole escape
 * when 'out' is full and then ends the text with "..."; 'out' is always
 * NUL-terminated when outlen > 0. Returns the bytes of 'in' shown. */
size_t vp_escape(const void *in, size_t len, char *out, size_t outlen);

/* The first VP_PREVIEW_BYTES of 'in', escaped and in double quotes, with
 * "..." after the quotes when there was more. */
void vp_preview(const void *in, size_t len, char *out, size_t outlen);

/* snprintf() for details and hints: bounded sentences that may be cut
 * (the cut is silent, and gcc is told so). */
void vp_textf(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The length of the valid UTF-8 character at 's' (RFC 3629: no overlong
 * form, no surrogate, nothing past U+10FFFF), or 0 when the bytes there are
 * none. 's' is NUL-terminated: a character that the NUL cuts short is not
 * valid, and nothing past the NUL is read. */
size_t vp_utf8_len(const char *s);

/* Makes 's' valid UTF-8 in place for jansson (which refuses anything else),
 * the page and terminals: every byte that is not part of a valid character
 * becomes '?', one '?' a byte. With 'controls', so does every control
 * character: C0, DEL, and C1 (U+0080..U+009F, whose two bytes become one
 * '?'). The text never grows, so it stays in its buffer. */
void vp_utf8_clean(char *s, bool controls);

static inline uint32_t vp_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void vp_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
