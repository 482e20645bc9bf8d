/* The spool's frame format (spool.h) and the small I/O helpers around it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/crc32c.h"
#include "agent/log.h"
#include "agent/spool_impl.h"

static const uint8_t magic[4] = { 'V', 'P', 'R', '1' };

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

size_t vp_spool_frame_encode(uint8_t *out, uint64_t seq, const void *data, size_t len)
{
	memcpy(out, magic, sizeof(magic));
	put_le(out + 4, len, 4);
	put_le(out + 8, seq, 8);
	memmove(out + HDR, data, len);
	put_le(out + 16, vp_crc32c(vp_crc32c(0, out + 4, 12), out + HDR, len), 4);
	return HDR + len;
}

int vp_spool_frame_parse(const uint8_t *buf, size_t avail, struct vp_spool_frame *f)
{
	if (avail < HDR)
		return VP_SPOOL_FRAME_SHORT;
	if (memcmp(buf, magic, sizeof(magic)) != 0)
		return VP_SPOOL_FRAME_BAD;
	f->len = (uint32_t)get_le(buf + 4, 4);
	f->seq = get_le(buf + 8, 8);
	f->payload = buf + HDR;
	if (f->len == 0 || f->len > VP_SPOOL_RECORD_MAX)
		return VP_SPOOL_FRAME_BAD;
	if (avail - HDR < f->len)
		return VP_SPOOL_FRAME_SHORT;
	if (vp_crc32c(vp_crc32c(0, buf + 4, 12), buf + HDR, f->len) != (uint32_t)get_le(buf + 16, 4))
		return VP_SPOOL_FRAME_BAD;
	return VP_SPOOL_FRAME_OK;
}

ssize_t vp__pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

ssize_t vp__write_full(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Two reads: the header says how long the payload is. */
int vp__frame_at(struct vp_spool *sp, int fd, uint64_t off, uint64_t end,
                 struct vp_spool_frame *f)
{
	size_t want = end - off < HDR ? (size_t)(end - off) : HDR;
	ssize_t n = vp__pread_full(fd, sp->scratch, want, off);
	int st;

	if (n < 0)
		return (int)n;
	st = vp_spool_frame_parse(sp->scratch, (size_t)n, f);
	if (st != VP_SPOOL_FRAME_SHORT || n < HDR)
		return st;
	if (end - off - HDR < f->len)
		return VP_SPOOL_FRAME_SHORT;
	n = vp__pread_full(fd, sp->scratch + HDR, f->len, off + HDR);
	if (n < 0)
		return (int)n;
	return vp_spool_frame_parse(sp->scratch, HDR + (size_t)n, f);
}

/* A bad frame's length cannot be trusted, so the next frame is found by
 * its magic; a candidate must also pass its CRC. */
int64_t vp__resync(struct vp_spool *sp, int fd, uint64_t from, uint64_t end)
{
	uint8_t chunk[4096];
	struct vp_spool_frame f;

	while (from + sizeof(magic) <= end) {
		size_t want = end - from < sizeof(chunk) ? (size_t)(end - from) : sizeof(chunk);
		ssize_t n = vp__pread_full(fd, chunk, want, from);

		if (n < 0)
			return n;
		if ((size_t)n < sizeof(magic))
			break;
		for (size_t i = 0; i + sizeof(magic) <= (size_t)n; i++) {
			int st;

			if (memcmp(chunk + i, magic, sizeof(magic)) != 0)
				continue;
			st = vp__frame_at(sp, fd, from + i, end, &f);
			if (st < 0)
				return st;
			if (st == VP_SPOOL_FRAME_OK)
				return (int64_t)(from + i);
		}
		from += (size_t)n - (sizeof(magic) - 1);
	}
	return (int64_t)end;
}

void vp__seg_name(char *buf, size_t len, uint64_t first)
{
	snprintf(buf, len, SEG_NAME_FMT, first);
}

void vp__count_corrupt(struct vp_spool *sp, struct seg *s, uint64_t from, uint64_t to)
{
	char name[SEG_NAME_LEN + 1];

	if (from < s->checked)
		return;
	sp->stats->corrupt++;
	vp__seg_name(name, sizeof(name), s->first);
	vp_log_warning("spool '%s': segment '%s': corrupt frame at offset %" PRIu64 ", %" PRIu64
	               " bytes skipped", sp->dir, name, from, to - from);
}
