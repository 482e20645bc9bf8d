/* Unit tests for the spool (agent/spool*.c) and its CRC32C: the RFC 3720
 * vectors, the frame format, recovery from a torn tail and from corrupt
 * frames, a full spool dropping its oldest segments, the ack cursor, the
 * rule that only synced records are sent and the early end of a segment
 * whose records were acknowledged. Then the reporter's pure parts:
 * record times, severities, partialSuccess answers, the Compute Engine
 * check. Files live in a temporary directory; every test ends with
 * uv_loop_close() == 0. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/crc32c.h"
#include "agent/limits.h"
#include "agent/metadata.h"
#include "agent/reporter.h"
#include "agent/spool.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define HDR VP_SPOOL_FRAME_HEADER
#define SMALL (512 * 1024)     /* a spool bound with 64 KiB segments */

/* ---- CRC32C: RFC 3720, appendix B.4, and the usual check value ---- */

struct crc_case {
	uint8_t data[48];
	size_t len;
	int fill;          /* -1: use data; else every byte is this; 256: ascending; 257: descending */
	uint32_t crc;
};

static const struct crc_case crc_cases[] = {
	{ { 0 }, 32, 0x00, 0x8a9136aa },
	{ { 0 }, 32, 0xff, 0x62a8ab43 },
	{ { 0 }, 32, 256, 0x46dd794e },
	{ { 0 }, 32, 257, 0x113fdb5c },
	{ { 0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
	    0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00 }, 48, -1, 0xd9963a56 },
	{ "123456789", 9, -1, 0xe3069283 },
	{ { 0 }, 0, -1, 0x00000000 },
};

START_TEST(test_crc32c)
{
	const struct crc_case *c = &crc_cases[_i];
	uint8_t buf[48];

	for (size_t i = 0; i < c->len; i++)
		buf[i] = c->fill < 0 ? c->data[i] : c->fill == 256 ? (uint8_t)i :
		         c->fill == 257 ? (uint8_t)(c->len - 1 - i) : (uint8_t)c->fill;
	ck_assert_uint_eq(vp_crc32c(0, buf, c->len), c->crc);
	/* In two pieces, anywhere: the same. */
	for (size_t cut = 0; cut <= c->len; cut++)
		ck_assert_uint_eq(vp_crc32c(vp_crc32c(0, buf, cut), buf + cut, c->len - cut), c->crc);
}
END_TEST

/* ---- frames ---- */

enum frame_change { F_NONE, F_CUT, F_MAGIC, F_LEN_ZERO, F_LEN_HUGE, F_SEQ, F_CRC, F_PAYLOAD };

struct frame_case {
	size_t len;
	enum frame_change change;
	size_t arg;        /* F_CUT: bytes cut; F_PAYLOAD: which byte */
	int status;
};

static const struct frame_case frame_cases[] = {
	{ 1, F_NONE, 0, VP_SPOOL_FRAME_OK },
	{ 700, F_NONE, 0, VP_SPOOL_FRAME_OK },
	{ VP_SPOOL_RECORD_MAX, F_NONE, 0, VP_SPOOL_FRAME_OK },
	{ 700, F_CUT, 1, VP_SPOOL_FRAME_SHORT },
	{ 700, F_CUT, 700, VP_SPOOL_FRAME_SHORT },       /* the header alone */
	{ 700, F_CUT, 701, VP_SPOOL_FRAME_SHORT },       /* part of the header */
	{ 700, F_CUT, 700 + HDR, VP_SPOOL_FRAME_SHORT }, /* nothing */
	{ 700, F_MAGIC, 0, VP_SPOOL_FRAME_BAD },
	{ 700, F_LEN_ZERO, 0, VP_SPOOL_FRAME_BAD },
	{ 700, F_LEN_HUGE, 0, VP_SPOOL_FRAME_BAD },
	{ 700, F_SEQ, 0, VP_SPOOL_FRAME_BAD },
	{ 700, F_CRC, 0, VP_SPOOL_FRAME_BAD },
	{ 700, F_PAYLOAD, 0, VP_SPOOL_FRAME_BAD },
	{ 700, F_PAYLOAD, 699, VP_SPOOL_FRAME_BAD },
};

START_TEST(test_frame)
{
	const struct frame_case *c = &frame_cases[_i];
	static uint8_t buf[HDR + VP_SPOOL_RECORD_MAX];
	static char payload[VP_SPOOL_RECORD_MAX];
	struct vp_spool_frame f;
	size_t n;

	for (size_t i = 0; i < c->len; i++)
		payload[i] = (char)('a' + i % 26);
	n = vp_spool_frame_encode(buf, 0x0102030405060708ull, payload, c->len);
	ck_assert_uint_eq(n, HDR + c->len);
	ck_assert_mem_eq(buf, "VPR1", 4);
	switch (c->change) {
	case F_NONE: break;
	case F_CUT: n -= c->arg; break;
	case F_MAGIC: buf[3] = '2'; break;
	case F_LEN_ZERO: memset(buf + 4, 0, 4); break;
	case F_LEN_HUGE: buf[7] = 0x7f; break;
	case F_SEQ: buf[8] ^= 1; break;
	case F_CRC: buf[19] ^= 0x80; break;
	case F_PAYLOAD: buf[HDR + c->arg] ^= 0x20; break;
	}
	ck_assert_int_eq(vp_spool_frame_parse(buf, n, &f), c->status);
	if (c->status == VP_SPOOL_FRAME_OK) {
		ck_assert_uint_eq(f.seq, 0x0102030405060708ull);
		ck_assert_uint_eq(f.len, c->len);
		ck_assert_mem_eq(f.payload, payload, c->len);
	}
}
END_TEST

/* ---- helpers for spools on disk ---- */

struct fixture {
	char dir[64];
	char state[96];
	uv_loop_t loop;
	struct vp_delivery_stats stats;
	struct vp_spool *sp;
	int synced_calls;
};

static void on_synced(void *arg)
{
	struct fixture *fx = arg;

	fx->synced_calls++;
}

static void fx_open(struct fixture *fx, uint64_t max)
{
	char err[1024] = "";
	int r;

	memset(&fx->stats, 0, sizeof(fx->stats));
	r = vp_spool_open(&fx->loop, fx->state, max, &fx->stats, on_synced, fx, &fx->sp, err,
	                  sizeof(err));
	ck_assert_msg(r == 0, "open: %s", err);
}

static void fx_close(struct fixture *fx)
{
	vp_spool_close(fx->sp, NULL, NULL);
	ck_assert_int_eq(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
	fx->sp = vp_spool_free(fx->sp);
}

static void fx_init(struct fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/vp-test-spool-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx->dir));
	snprintf(fx->state, sizeof(fx->state), "%s/state", fx->dir);
	ck_assert_int_eq(uv_loop_init(&fx->loop), 0);
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[512];

	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		rm_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static void fx_done(struct fixture *fx)
{
	ck_assert_int_eq(uv_loop_close(&fx->loop), 0);
	rm_tree(fx->dir);
}

/* A record of exactly 'size' bytes that names its number. */
static size_t make_record(char *buf, int i, size_t size)
{
	int n = snprintf(buf, size + 1, "{\"i\":%06d,\"pad\":\"", i);

	memset(buf + n, 'x', size - (size_t)n - 2);
	memcpy(buf + size - 2, "\"}", 2);
	return size;
}

static void append_n(struct fixture *fx, int from, int n, size_t size)
{
	char buf[VP_SPOOL_RECORD_MAX + 1];

	for (int i = from; i < from + n; i++)
		ck_assert_int_gt(vp_spool_append(fx->sp, buf, make_record(buf, i, size)), 0);
}

/* Reads everything sendable; returns how many, their numbers in 'ids'. */
static int read_all(struct fixture *fx, int *ids, int max_ids, uint64_t *last_seq)
{
	struct vp_spool_batch b;
	uint64_t prev = 0;
	int n = 0;

	for (;;) {
		ck_assert_int_eq(vp_spool_read(fx->sp, 7, 64 * 1024, &b), 0);
		if (b.n == 0)
			break;
		ck_assert_uint_eq(b.id, b.recs[b.n - 1].seq);
		for (size_t i = 0; i < b.n; i++) {
			ck_assert_uint_gt(b.recs[i].seq, prev);    /* in order */
			prev = b.recs[i].seq;
			ck_assert_int_lt(n, max_ids);
			ck_assert_int_eq(sscanf(b.recs[i].data, "{\"i\":%d", &ids[n]), 1);
			n++;
		}
		vp_spool_batch_clear(&b);
	}
	if (last_seq)
		*last_seq = prev;
	return n;
}

/* The segment files, oldest first. */
static int segments(struct fixture *fx, char names[][256], int max)
{
	char path[160];
	struct dirent **list;
	int n, k = 0;

	snprintf(path, sizeof(path), "%s/spool", fx->state);
	n = scandir(path, &list, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++) {
		size_t len = strlen(list[i]->d_name);

		if (len > 4 && !strcmp(list[i]->d_name + len - 4, ".seg") && k < max) {
			int w = snprintf(names[k++], 256, "%s/%s", path, list[i]->d_name);

			ck_assert_int_lt(w, 256); /* a segment path never nears this */
		}
		free(list[i]);
	}
	free(list);
	return k;
}

static off_t file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

static void poke(const char *path, off_t off, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, data, len, off), (ssize_t)len);
	close(fd);
}

static void xor_byte(const char *path, off_t off, uint8_t mask)
{
	uint8_t b;
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= mask;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

/* ---- recovery ---- */

enum damage {
	D_NONE,
	D_CUT_TAIL,        /* the last frame loses 'arg' bytes: a torn write */
	D_HALF_HEADER,     /* a partial header appended */
	D_ZEROS,           /* 'arg' zero bytes appended (a file extended, never written) */
	D_PAYLOAD,         /* a byte of frame 'arg''s payload flipped */
	D_MAGIC,           /* frame 'arg''s magic broken */
	D_LENGTH,          /* frame 'arg''s length made huge: resync by magic */
	D_TWO,             /* frames 'arg' and 'arg' + 1 flipped: one corrupt region */
	D_OLD_SEGMENT,     /* frame 'arg' of the oldest segment flipped (found when read) */
	D_NEWEST_GARBAGE,  /* the newest segment is all garbage: it goes */
};

struct recover_case {
	int n;             /* records written */
	size_t size;       /* bytes each */
	enum damage damage;
	size_t arg;
	int back;          /* records read back */
	int missing;       /* the number of a record that must not come back, -1: none */
	uint64_t torn, corrupt;
};

static const struct recover_case recover_cases[] = {
	{ 10, 500, D_NONE, 0, 10, -1, 0, 0 },
	{ 10, 500, D_CUT_TAIL, 1, 9, 9, 1, 0 },
	{ 10, 500, D_CUT_TAIL, 499, 9, 9, 1, 0 },
	{ 10, 500, D_CUT_TAIL, 510, 9, 9, 1, 0 },      /* into the header */
	{ 10, 500, D_HALF_HEADER, 0, 10, -1, 1, 0 },
	{ 10, 500, D_ZEROS, 4096, 10, -1, 1, 0 },
	{ 10, 500, D_PAYLOAD, 4, 9, 4, 0, 1 },
	{ 10, 500, D_PAYLOAD, 0, 9, 0, 0, 1 },
	{ 10, 500, D_MAGIC, 5, 9, 5, 0, 1 },
	{ 10, 500, D_LENGTH, 3, 9, 3, 0, 1 },
	{ 10, 500, D_TWO, 6, 8, 6, 0, 1 },
	{ 10, 500, D_PAYLOAD, 9, 9, 9, 1, 0 },         /* the last frame: a torn tail */
	{ 300, 1000, D_OLD_SEGMENT, 7, 299, 7, 0, 1 },
	{ 300, 1000, D_NEWEST_GARBAGE, 0, -1, -1, 1, 0 },
};

static void damage(struct fixture *fx, const struct recover_case *c)
{
	char names[16][256];
	int n = segments(fx, names, 16);
	const char *newest = names[n - 1];
	off_t frame = (off_t)(HDR + c->size);
	off_t size = file_size(newest);
	uint8_t big[4] = { 0xff, 0xff, 0xff, 0x7f };

	ck_assert_int_ge(n, 1);
	switch (c->damage) {
	case D_NONE: break;
	case D_CUT_TAIL: ck_assert_int_eq(truncate(newest, size - (off_t)c->arg), 0); break;
	case D_HALF_HEADER: poke(newest, size, "VPR1\x10\x00", 6); break;
	case D_ZEROS: ck_assert_int_eq(truncate(newest, size + (off_t)c->arg), 0); break;
	case D_PAYLOAD: xor_byte(newest, (off_t)c->arg * frame + HDR + 10, 0x01); break;
	case D_MAGIC: xor_byte(newest, (off_t)c->arg * frame, 0x01); break;
	case D_LENGTH: poke(newest, (off_t)c->arg * frame + 4, big, 4); break;
	case D_TWO:
		xor_byte(newest, (off_t)c->arg * frame + HDR, 0x01);
		xor_byte(newest, (off_t)(c->arg + 1) * frame + HDR, 0x01);
		break;
	case D_OLD_SEGMENT: xor_byte(names[0], (off_t)c->arg * frame + HDR + 1, 0x01); break;
	case D_NEWEST_GARBAGE:
		for (off_t off = 0; off < size; off += 4)
			poke(newest, off, "junk", 4);
		break;
	}
}

START_TEST(test_recover)
{
	const struct recover_case *c = &recover_cases[_i];
	struct fixture fx;
	static int ids[1000];
	char names[16][256];
	int back, segs_before, expect;

	fx_init(&fx);
	fx_open(&fx, SMALL);
	append_n(&fx, 0, c->n, c->size);
	fx_close(&fx);
	segs_before = segments(&fx, names, 16);
	damage(&fx, c);

	fx_open(&fx, SMALL);
	ck_assert_uint_eq(fx.stats.torn, c->torn);
	back = read_all(&fx, ids, N_ELEMS(ids), NULL);
	expect = c->back;
	if (c->damage == D_NEWEST_GARBAGE) {
		/* What the older segments held: all of it but the newest one's. */
		ck_assert_int_eq(segments(&fx, names, 16), segs_before - 1);
		expect = ids[back - 1] + 1;
		ck_assert_int_lt(expect, c->n);
	}
	ck_assert_int_eq(back, expect);
	ck_assert_uint_eq(fx.stats.corrupt, c->corrupt);
	for (int i = 0, want = 0; i < back; i++, want++) {
		if (want == c->missing)
			want++;
		if (c->damage == D_TWO && want == c->missing + 1)
			want++;
		ck_assert_int_eq(ids[i], want);
	}
	/* New records go on after the survivors, and the cut tail is gone for good. */
	append_n(&fx, 5000, 2, c->size);
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	ck_assert_int_eq(read_all(&fx, ids, N_ELEMS(ids), NULL), 2);
	ck_assert_int_eq(ids[0], 5000);
	fx_close(&fx);
	fx_open(&fx, SMALL);
	ck_assert_uint_eq(fx.stats.torn, 0);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* ---- a full spool ---- */

struct full_case {
	uint64_t max;
	int n;
	size_t size;
};

static const struct full_case full_cases[] = {
	{ SMALL, 2000, 1000 },
	{ SMALL, 600, VP_SPOOL_RECORD_MAX },
	{ 1024 * 1024, 5000, 700 },
	{ SMALL, 400, 1000 },                 /* fits: nothing dropped */
};

START_TEST(test_full)
{
	const struct full_case *c = &full_cases[_i];
	struct fixture fx;
	static int ids[6000];
	char names[64][256];
	uint64_t written = 0;
	int back;

	fx_init(&fx);
	fx_open(&fx, c->max);
	for (int i = 0; i < c->n; i++) {
		append_n(&fx, i, 1, c->size);
		ck_assert_uint_le(fx.stats.spooled_bytes, c->max);
	}
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	back = read_all(&fx, ids, N_ELEMS(ids), NULL);
	/* Every record is either read back or counted as dropped; the
	 * survivors are the newest ones, in order. */
	ck_assert_int_eq((uint64_t)back + fx.stats.dropped, c->n);
	if ((uint64_t)c->n * (HDR + c->size) <= c->max)
		ck_assert_uint_eq(fx.stats.dropped, 0);
	else
		ck_assert_uint_gt(fx.stats.dropped, 0);
	for (int i = 0; i < back; i++)
		ck_assert_int_eq(ids[i], c->n - back + i);
	for (int i = 0; i < segments(&fx, names, 64); i++)
		written += (uint64_t)file_size(names[i]);
	ck_assert_uint_eq(written, fx.stats.spooled_bytes);
	ck_assert_uint_le(written, c->max);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* A smaller bound at the next start drops the oldest at once. */
START_TEST(test_shrink)
{
	struct fixture fx;
	static int ids[3000];
	int back;

	fx_init(&fx);
	fx_open(&fx, 2 * 1024 * 1024);
	append_n(&fx, 0, 1500, 1000);
	fx_close(&fx);
	fx_open(&fx, SMALL);
	ck_assert_uint_le(fx.stats.spooled_bytes, SMALL);
	ck_assert_uint_gt(fx.stats.dropped, 0);
	back = read_all(&fx, ids, N_ELEMS(ids), NULL);
	ck_assert_int_eq((uint64_t)back + fx.stats.dropped, 1500);
	ck_assert_int_eq(ids[back - 1], 1499);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* ---- the ack cursor ---- */

/* Reads batches of 'per' records and acks 'acks' of them, then reopens:
 * what comes back is what was not acknowledged, under the same ids. */
struct ack_case {
	int n;
	size_t per;
	int acks;          /* batches acknowledged before the restart */
	int back;          /* records sent again after it */
};

static const struct ack_case ack_cases[] = {
	{ 10, 4, 0, 10 },
	{ 10, 4, 1, 6 },
	{ 10, 4, 2, 2 },
	{ 10, 4, 3, 0 },
	{ 10, 10, 1, 0 },
	{ 400, 50, 5, 150 },   /* several segments; acknowledged ones are deleted */
	{ 400, 50, 8, 0 },
};

START_TEST(test_ack)
{
	const struct ack_case *c = &ack_cases[_i];
	struct fixture fx;
	struct vp_spool_batch b;
	static int ids[1000];
	uint64_t first_unacked_id = 0, acked = 0, last_seq;
	char names[64][256];
	int back, segs_before;

	fx_init(&fx);
	fx_open(&fx, SMALL);
	append_n(&fx, 0, c->n, 1000);
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	segs_before = segments(&fx, names, 64);
	for (int k = 0; k <= c->acks; k++) {
		ck_assert_int_eq(vp_spool_read(fx.sp, c->per, 1 << 20, &b), 0);
		if (k == c->acks) {
			first_unacked_id = b.id;
		} else {
			ck_assert_uint_eq(b.n, c->n - k * (int)c->per < (int)c->per ?
			                  (size_t)(c->n - k * (int)c->per) : c->per);
			ck_assert_int_eq(vp_spool_ack(fx.sp, b.id), 0);
			acked = b.id;
		}
		vp_spool_batch_clear(&b);
	}
	if (c->back == 0)
		ck_assert_uint_eq(first_unacked_id, 0);
	else if (c->acks > 0 && segs_before > 2)
		ck_assert_int_lt(segments(&fx, names, 64), segs_before); /* acknowledged ones went */
	fx_close(&fx);

	fx_open(&fx, SMALL);
	if (c->back > 0) {
		/* The batch in flight at the restart goes again under the same id. */
		ck_assert_int_eq(vp_spool_read(fx.sp, c->per, 1 << 20, &b), 0);
		ck_assert_uint_eq(b.id, first_unacked_id);
		ck_assert_uint_gt(b.recs[0].seq, acked);
		vp_spool_batch_clear(&b);
		fx_close(&fx);
		fx_open(&fx, SMALL);
	}
	back = read_all(&fx, ids, N_ELEMS(ids), &last_seq);
	ck_assert_int_eq(back, c->back);
	for (int i = 0; i < back; i++)
		ck_assert_int_eq(ids[i], c->n - c->back + i);
	/* Sequence numbers go on, also when everything was acknowledged. */
	append_n(&fx, 9000, 1, 1000);
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	ck_assert_int_eq(vp_spool_read(fx.sp, 10, 1 << 20, &b), 0);
	ck_assert_uint_eq(b.n, 1);
	ck_assert_uint_gt(b.id, back ? last_seq : acked);
	vp_spool_batch_clear(&b);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* The reader's window (VP_SPOOL_WINDOW): records of every size up to the
 * largest, so that frames straddle the window's end and some are larger
 * than what is left of it, read in small batches while more are appended to
 * the same segment. Every record comes back once, in order, whole. */
START_TEST(test_window)
{
	static const size_t sizes[] = { 100, VP_SPOOL_RECORD_MAX, 3000, 40, 9999, VP_SPOOL_RECORD_MAX - 1 };
	struct fixture fx;
	struct vp_spool_batch b;
	int next = 0, got = 0;

	fx_init(&fx);
	fx_open(&fx, 64u << 20);  /* segments far larger than the window */
	for (int round = 0; round < 12; round++) {
		for (int k = 0; k < 9; k++, next++) {
			char buf[VP_SPOOL_RECORD_MAX + 1];
			size_t len = make_record(buf, next, sizes[next % N_ELEMS(sizes)]);

			ck_assert_int_gt(vp_spool_append(fx.sp, buf, len), 0);
		}
		ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
		/* Read part of it now, the rest after the next round's appends. */
		for (int reads = 0; reads < (round % 3 == 2 ? 100 : 1); reads++) {
			ck_assert_int_eq(vp_spool_read(fx.sp, 5, 20000, &b), 0);
			if (b.n == 0)
				break;
			for (size_t i = 0; i < b.n; i++, got++) {
				int id = -1;

				ck_assert_int_eq(sscanf(b.recs[i].data, "{\"i\":%d", &id), 1);
				ck_assert_int_eq(id, got);
				ck_assert_uint_eq(b.recs[i].len, sizes[got % N_ELEMS(sizes)]);
				ck_assert_int_eq(memcmp(b.recs[i].data + b.recs[i].len - 2, "\"}", 2), 0);
			}
			ck_assert_int_eq(vp_spool_ack(fx.sp, b.id), 0);
			vp_spool_batch_clear(&b);
		}
	}
	while (got < next) {
		ck_assert_int_eq(vp_spool_read(fx.sp, 5, 20000, &b), 0);
		ck_assert_uint_gt(b.n, 0);
		for (size_t i = 0; i < b.n; i++, got++) {
			int id = -1;

			ck_assert_int_eq(sscanf(b.recs[i].data, "{\"i\":%d", &id), 1);
			ck_assert_int_eq(id, got);
			ck_assert_uint_eq(b.recs[i].len, sizes[got % N_ELEMS(sizes)]);
		}
		vp_spool_batch_clear(&b);
	}
	ck_assert_int_eq(vp_spool_read(fx.sp, 5, 20000, &b), 0);
	ck_assert_uint_eq(b.n, 0);
	ck_assert_uint_eq(fx.stats.corrupt, 0);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* A cursor that is not one: everything is sent again, nothing is lost. */
START_TEST(test_bad_cursor)
{
	struct fixture fx;
	struct vp_spool_batch b;
	static int ids[100];
	char path[160];

	fx_init(&fx);
	fx_open(&fx, SMALL);
	append_n(&fx, 0, 20, 300);
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	ck_assert_int_eq(vp_spool_read(fx.sp, 5, 1 << 20, &b), 0);
	ck_assert_int_eq(vp_spool_ack(fx.sp, b.id), 0);
	vp_spool_batch_clear(&b);
	fx_close(&fx);
	snprintf(path, sizeof(path), "%s/spool/ack", fx.state);
	poke(path, 0, "garbage!", 8);
	fx_open(&fx, SMALL);
	ck_assert_int_eq(read_all(&fx, ids, N_ELEMS(ids), NULL), 20);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* ---- only what is synced is sent ---- */

START_TEST(test_synced_only)
{
	struct fixture fx;
	struct vp_spool_batch b;
	static int ids[100];

	fx_init(&fx);
	fx_open(&fx, SMALL);
	append_n(&fx, 0, 3, 300);
	ck_assert_uint_eq(vp_spool_unread(fx.sp), 0);
	ck_assert_int_eq(vp_spool_read(fx.sp, 10, 1 << 20, &b), 0);
	ck_assert_uint_eq(b.n, 0);
	/* The thread pool's round: the loop runs until it says so. */
	while (fx.synced_calls == 0)
		uv_run(&fx.loop, UV_RUN_ONCE);
	ck_assert_uint_eq(vp_spool_unread(fx.sp), 3);
	append_n(&fx, 3, 2, 300);
	ck_assert_int_eq(read_all(&fx, ids, N_ELEMS(ids), NULL), 3);
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	ck_assert_int_eq(read_all(&fx, ids, N_ELEMS(ids), NULL), 2);
	ck_assert_int_eq(ids[0], 3);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* ---- the early end of a segment (d9cb27b) ---- */

/* A segment ends before its size once an ack covers its first record and
 * it holds VP_SPOOL_SEGMENT_MIN bytes: the next record starts a new one, so
 * that the next ack deletes what the collector has. An early rotation that
 * cannot open a file leaves the record in the current segment and is tried
 * again with the next. The bound gives 1 MiB segments, far above what is
 * written here, so that every new segment is an early one. Each row: 'n'
 * records of 1,000 bytes, then two more, then an ack of everything. */
struct early_case {
	int n;             /* records before the first extra one */
	bool ack;          /* the n records acknowledged before it */
	bool no_fds;       /* the first extra record finds no descriptor free */
	int segs[3];       /* segment files after each extra record and after the ack */
	int newest_from;   /* the newest segment after the second extra record starts at
	                      extra record 0 or 1, -1: at the first record */
};

static const struct early_case early_cases[] = {
	{ 70, true, false, { 2, 2, 1 }, 0 },    /* 71,400 bytes acknowledged: a new segment */
	{ 64, true, false, { 1, 1, 1 }, -1 },   /* 65,280 bytes: below 64 KiB, it goes on */
	{ 70, false, false, { 1, 1, 1 }, -1 },  /* its start not acknowledged */
	{ 70, true, true, { 1, 2, 1 }, 1 },     /* no descriptor: kept, rotated with the next */
};

/* Uses up every descriptor below a lowered RLIMIT_NOFILE; returns how many
 * it took ('fds' holds them). The test runs in a child of check's. */
static int take_all_fds(int *fds, int max, struct rlimit *old)
{
	struct rlimit low;
	int n = 0, fd;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, old), 0);
	low = *old;
	low.rlim_cur = (rlim_t)max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < max && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fds[n++] = fd;
	ck_assert_int_eq(errno, EMFILE);
	ck_assert_int_lt(open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
	return n;
}

static void give_back_fds(const int *fds, int n, const struct rlimit *old)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, old), 0);
}

START_TEST(test_early_segment)
{
	const struct early_case *c = &early_cases[_i];
	struct fixture fx;
	struct vp_spool_batch b;
	static int ids[200];
	char names[8][256], want[64];
	int64_t seq[2];
	uint64_t last;
	int fds[256], n_fds = 0, back, w;
	struct rlimit old;

	fx_init(&fx);
	fx_open(&fx, 8 * 1024 * 1024);
	ck_assert_uint_eq(vp_spool_segment_bytes(8 * 1024 * 1024), 1024 * 1024);
	append_n(&fx, 0, c->n, 1000);
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	if (c->ack) {
		ck_assert_int_eq(read_all(&fx, ids, N_ELEMS(ids), &last), c->n);
		ck_assert_int_eq(vp_spool_ack(fx.sp, last), 0);
	}
	for (int k = 0; k < 2; k++) {
		char buf[1001];

		if (k == 0 && c->no_fds)
			n_fds = take_all_fds(fds, N_ELEMS(fds), &old);
		seq[k] = vp_spool_append(fx.sp, buf, make_record(buf, c->n + k, 1000));
		if (k == 0 && c->no_fds)
			give_back_fds(fds, n_fds, &old);
		ck_assert_int_gt(seq[k], 0);
		ck_assert_int_eq(segments(&fx, names, 8), c->segs[k]);
	}
	ck_assert_uint_eq(fx.stats.dropped, 0);
	ck_assert_str_eq(fx.stats.last_error, "");
	if (c->newest_from >= 0) {
		w = snprintf(want, sizeof(want), "%s/spool/%016llx.seg", fx.state,
		             (unsigned long long)seq[c->newest_from]);
		ck_assert_int_lt(w, (int)sizeof(want));
		ck_assert_str_eq(names[c->segs[1] - 1], want);
	}
	/* The oldest segment holds every record up to where the newest starts. */
	ck_assert_int_eq(file_size(names[0]), (off_t)(HDR + 1000) *
	                 (c->n + (c->newest_from < 0 ? 2 : c->newest_from)));
	/* Nothing lost or reordered by a rotation or by its failure. */
	ck_assert_int_eq(vp_spool_flush(fx.sp), 0);
	back = read_all(&fx, ids, N_ELEMS(ids), &last);
	ck_assert_int_eq(back, c->ack ? 2 : c->n + 2);
	for (int i = 0; i < back; i++)
		ck_assert_int_eq(ids[i], c->n + 2 - back + i);
	ck_assert_uint_eq(last, (uint64_t)seq[1]);
	ck_assert_int_eq(vp_spool_ack(fx.sp, last), 0);
	ck_assert_int_eq(segments(&fx, names, 8), c->segs[2]);
	ck_assert_int_eq(vp_spool_read(fx.sp, 10, 1 << 20, &b), 0);
	ck_assert_uint_eq(b.n, 0);
	fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* ---- opening ---- */

enum open_problem { P_NOT_DIR, P_LOCKED, P_TOO_SMALL, P_BIG_RECORD };

struct open_case {
	enum open_problem problem;
	int r;
	const char *message;   /* a part of the error */
};

static const struct open_case open_cases[] = {
	{ P_NOT_DIR, -ENOTDIR, "cannot create it: Not a directory (errno 20)" },
	{ P_LOCKED, -EBUSY, "in use by another vpcprobe" },
	{ P_TOO_SMALL, -EINVAL, "is below the minimum of 131072" },
	{ P_BIG_RECORD, 0, NULL },
};

START_TEST(test_open)
{
	const struct open_case *c = &open_cases[_i];
	struct fixture fx;
	struct vp_spool *other = NULL;
	char err[1024] = "";
	char path[160];
	static char big[VP_SPOOL_RECORD_MAX + 2];
	int r;

	fx_init(&fx);
	snprintf(path, sizeof(path), "%s", fx.state);
	if (c->problem == P_NOT_DIR) {
		int fd = open(fx.state, O_WRONLY | O_CREAT, 0600);

		ck_assert_int_ge(fd, 0);
		close(fd);
		snprintf(path, sizeof(path), "%s/sub", fx.state);
	}
	if (c->problem == P_LOCKED || c->problem == P_BIG_RECORD)
		fx_open(&fx, SMALL);
	if (c->problem == P_BIG_RECORD) {
		memset(big, 'x', sizeof(big));
		ck_assert_int_eq(vp_spool_append(fx.sp, big, VP_SPOOL_RECORD_MAX + 1), -EMSGSIZE);
		ck_assert_int_eq(vp_spool_append(fx.sp, big, 0), -EMSGSIZE);
		ck_assert_int_gt(vp_spool_append(fx.sp, big, VP_SPOOL_RECORD_MAX), 0);
	} else {
		r = vp_spool_open(&fx.loop, path, c->problem == P_TOO_SMALL ? 100000 : SMALL,
		                  &fx.stats, NULL, NULL, &other, err, sizeof(err));
		ck_assert_int_eq(r, c->r);
		ck_assert_ptr_null(other);
		ck_assert_msg(strstr(err, c->message) != NULL, "'%s' lacks '%s'", err, c->message);
		ck_assert_msg(strstr(err, fx.dir) != NULL, "'%s' does not name the directory", err);
	}
	if (fx.sp)
		fx_close(&fx);
	fx_done(&fx);
}
END_TEST

/* ---- what the reporter derives from records and answers ---- */

struct time_case {
	const char *iso;
	uint64_t ns;
};

static const struct time_case time_cases[] = {
	{ "2026-11-24T10:00:00.123Z", 1795514400123000000ull },
	{ "1970-01-01T00:00:00.000Z", 0 },
	{ "1970-01-01T00:00:01.001Z", 1001000000ull },
	{ "2026-11-24T10:00:00Z", 0 },                 /* no milliseconds: not ours */
	{ "2026-11-24T10:00:00.123Zjunk", 0 },
	{ "", 0 },
	{ NULL, 0 },
};

START_TEST(test_time_ns)
{
	ck_assert_uint_eq(vp_report_time_ns(time_cases[_i].iso), time_cases[_i].ns);
}
END_TEST

struct severity_case {
	const char *verdict;
	int sev;
};

static const struct severity_case severity_cases[] = {
	{ "ok", 9 }, { "refused", 17 }, { "localhost_only", 17 }, { "timeout", 17 },
	{ "unreachable", 17 }, { "dns_error", 17 }, { "tls_error", 17 }, { "reset", 13 },
	{ "protocol_error", 13 }, { "local_error", 13 }, { NULL, 9 },
};

START_TEST(test_severity)
{
	ck_assert_int_eq(vp_report_severity(severity_cases[_i].verdict), severity_cases[_i].sev);
}
END_TEST

struct partial_case {
	const char *answer;
	uint64_t rejected;
	const char *message;
};

static const struct partial_case partial_cases[] = {
	{ "{}", 0, "" },
	{ "", 0, "" },
	{ "{\"partialSuccess\": {}}", 0, "" },
	{ "{\"partialSuccess\": {\"rejectedLogRecords\": \"3\", \"errorMessage\": \"bad\"}}", 3,
	  "bad" },
	{ "{\"partialSuccess\": {\"rejectedLogRecords\": 4}}", 4, "" },
	{ "{\"partialSuccess\": {\"rejectedLogRecords\": -4}}", 0, "" },
	/* cut by the answer's bound: no longer JSON, the count still found */
	{ "{\"partialSuccess\": {\"rejectedLogRecords\": \"12\", \"errorMessage\": \"aaaa", 12, "" },
	{ "{\"partialSuccess\": {\"errorMessage\": \"aaaa", 0, "" },
	/* the collector's words reach the log escaped: no terminal escapes */
	{ "{\"partialSuccess\": {\"rejectedLogRecords\": 1, \"errorMessage\": "
	  "\"\\u001b[31mred\\u0007 caf\\u00e9\"}}", 1, "\\x1b[31mred\\x07 caf\\xc3\\xa9" },
};

START_TEST(test_partial)
{
	const struct partial_case *c = &partial_cases[_i];
	char msg[64] = "x";

	ck_assert_uint_eq(vp_report_otlp_rejected(c->answer, strlen(c->answer), msg, sizeof(msg)),
	                  c->rejected);
	ck_assert_str_eq(msg, c->message);
}
END_TEST

/* Off Compute Engine nothing is asked: the DMI product name decides. */
struct gce_case {
	const char *content;     /* NULL: no such file */
	bool gce;
};

static const struct gce_case gce_cases[] = {
	{ "Google Compute Engine\n", true },
	{ "Google Compute Engine", true },
	{ "Standard PC (Q35 + ICH9, 2009)\n", false },
	{ "Google\n", false },
	{ "", false },
	{ NULL, false },
};

START_TEST(test_gce)
{
	const struct gce_case *c = &gce_cases[_i];
	char path[] = "/tmp/vp-test-dmi-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	if (c->content)
		ck_assert_int_eq(write(fd, c->content, strlen(c->content)), (ssize_t)strlen(c->content));
	close(fd);
	if (!c->content)
		unlink(path);
	ck_assert_int_eq(vp_metadata_on_gce(path), c->gce);
	unlink(path);
}
END_TEST

static Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *format = tcase_create("format");
	TCase *disk = tcase_create("disk");
	TCase *report = tcase_create("report");

	tcase_add_loop_test(format, test_crc32c, 0, N_ELEMS(crc_cases));
	tcase_add_loop_test(format, test_frame, 0, N_ELEMS(frame_cases));
	tcase_add_loop_test(disk, test_recover, 0, N_ELEMS(recover_cases));
	tcase_add_loop_test(disk, test_full, 0, N_ELEMS(full_cases));
	tcase_add_test(disk, test_shrink);
	tcase_add_loop_test(disk, test_ack, 0, N_ELEMS(ack_cases));
	tcase_add_test(disk, test_bad_cursor);
	tcase_add_test(disk, test_synced_only);
	tcase_add_test(disk, test_window);
	tcase_add_loop_test(disk, test_early_segment, 0, N_ELEMS(early_cases));
	tcase_add_loop_test(disk, test_open, 0, N_ELEMS(open_cases));
	tcase_add_loop_test(report, test_time_ns, 0, N_ELEMS(time_cases));
	tcase_add_loop_test(report, test_severity, 0, N_ELEMS(severity_cases));
	tcase_add_loop_test(report, test_partial, 0, N_ELEMS(partial_cases));
	tcase_add_loop_test(report, test_gce, 0, N_ELEMS(gce_cases));
	suite_add_tcase(s, format);
	suite_add_tcase(s, report);
	suite_add_tcase(s, disk);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spool_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
