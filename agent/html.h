/* Text for the status endpoints: a bounded output buffer, HTML and URL
 * escaping, the "failing for 12 min" phrase and the last hour's sparkline.
 * Pure: no socket, no loop, no clock (the caller passes "now"), so every
 * case is a row of tests/test_status.c. */
#ifndef VP_HTML_H
#define VP_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/history.h"
#include "agent/limits.h"

/* A growable buffer with a hard maximum, like curl's dynbuf: once an append
 * would pass 'max' or memory runs out, the buffer keeps what it has, 'err'
 * is set (-ENOBUFS or -ENOMEM) and every later append is a no-op, so that a
 * builder checks once at the end instead of after every call. */
struct vp_buf {
	char *data;            /* owned, NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	size_t max;            /* bytes of text at most, without the NUL */
	int err;               /* 0, -ENOBUFS or -ENOMEM; sticky */
};

void vp_buf_init(struct vp_buf *b, size_t max);
void vp_buf_done(struct vp_buf *b);
/* Hands the text over (the caller frees it) and empties the buffer. NULL
 * when nothing was written or on error. */
char *vp_buf_steal(struct vp_buf *b, size_t *ret_len);

int vp_buf_add(struct vp_buf *b, const char *s, size_t n);
int vp_buf_puts(struct vp_buf *b, const char *s);
int vp_buf_printf(struct vp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends 's' with & < > " ' as entities: safe in element text and in a
 * quoted attribute. Invalid UTF-8 and control characters other than tab and
 * newline become U+FFFD, so that bytes from a hostile server cannot confuse
 * the parser either. */
int vp_buf_html(struct vp_buf *b, const char *s);
/* Appends 's' percent-encoded except for RFC 3986 unreserved characters:
 * a path segment such as /target/NAME. */
int vp_buf_urlenc(struct vp_buf *b, const char *s);

/* "failing for 12 min", "ok for 3 h 5 min", "failing for 40 s": the time
 * from 'changed_ms' to 'now_ms' (both ms since the epoch) after 'prefix'.
 * A change in the future (the clock stepped back) reads as 0 s. */
void vp_fmt_since(const char *prefix, int64_t changed_ms, int64_t now_ms, char *buf, size_t len);

/* "3 d 4 h", "2 h 5 min", "12 min", "40 s": a duration in seconds. */
void vp_fmt_duration(uint64_t s, char *buf, size_t len);

/* "0.42 ms", "12.3 ms", "2001 ms"; "-" for a negative value. */
void vp_fmt_ms(double ms, char *buf, size_t len);

/* The last hour of a history in VP_SPARK_BUCKETS buckets of equal width,
 * oldest first. A bucket with no run has n == 0. */
struct vp_spark_bucket {
	uint16_t n;            /* runs in the bucket */
	uint16_t n_fail;       /* runs whose verdict was not ok */
	float max_ms;          /* the slowest ok run, 0 when none */
};

#define VP_SPARK_WINDOW_MS ((int64_t)VP_HISTORY_SECONDS * 1000)

void vp_spark_buckets(const struct vp_history *h, int64_t now_ms,
                      struct vp_spark_bucket out[VP_SPARK_BUCKETS]);

/* Appends an inline <svg> of the buckets: the latency of ok runs as a line
 * (log scale), failing minutes as full-height bars. Only numbers go in, so
 * nothing in it needs escaping. */
int vp_spark_svg(struct vp_buf *b, const struct vp_spark_bucket in[VP_SPARK_BUCKETS]);

#endif
