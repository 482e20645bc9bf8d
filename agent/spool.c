/* The spool at run time: appending, reading batches, the ack cursor and
 * the fdatasync rounds. The format and the I/O rules are in spool.h;
 * opening and recovery are in spool_open.c, frames in spool_frame.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/spool_impl.h"

static void set_error(struct vp_spool *sp, const char *what, int r)
{
	snprintf(sp->stats->last_error, sizeof(sp->stats->last_error), "spool '%s': %s: %s",
	         sp->dir, what, strerror(-r));
}

void vp__update_stats(struct vp_spool *sp)
{
	uint64_t done = sp->acked > sp->floor ? sp->acked : sp->floor;

	sp->stats->spooled_bytes = sp->total;
	sp->stats->spooled_records = sp->written > done ? sp->written - done : 0;
}

uint64_t vp_spool_segment_bytes(uint64_t max_bytes)
{
	uint64_t s = max_bytes / VP_SPOOL_SEGMENTS_PER;

	if (s < VP_SPOOL_SEGMENT_MIN)
		return VP_SPOOL_SEGMENT_MIN;
	return s > VP_SPOOL_SEGMENT_MAX ? VP_SPOOL_SEGMENT_MAX : s;
}

/* ---- segments ---- */

/* Closes the reader's segment; what the window held goes with it. */
static void close_reader(struct vp_spool *sp)
{
	if (sp->rfd >= 0)
		close(sp->rfd);
	sp->rfd = -1;
	sp->win_len = 0;
}

/* Deletes the oldest segment: acknowledged, or 'dropped' unsent (then its
 * unsent records are counted and logged). */
void vp__remove_front(struct vp_spool *sp, bool dropped)
{
	struct seg *s = &sp->segs[0];
	uint64_t hi = sp->n > 1 ? sp->segs[1].first - 1 : sp->written;
	uint64_t lo = s->first - 1 > sp->read_seq ? s->first - 1 : sp->read_seq;
	char name[SEG_NAME_LEN + 1];

	vp__seg_name(name, sizeof(name), s->first);
	if (dropped && hi > lo) {
		sp->stats->dropped += hi - lo;
		vp_log_warning("spool '%s' is full (%" PRIu64 " bytes): dropped segment '%s' with %"
		               PRIu64 " unsent results", sp->dir, sp->max_bytes, name, hi - lo);
	}
	if (dropped && hi > sp->floor)
		sp->floor = hi;
	if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
		vp_log_warning("spool '%s': unlink '%s': %s, ignoring", sp->dir, name, strerror(errno));
	sp->total -= s->size;
	memmove(sp->segs, sp->segs + 1, (sp->n - 1) * sizeof(*sp->segs));
	sp->n--;
	if (sp->read_seg > 0) {
		sp->read_seg--;
	} else {
		close_reader(sp);
		sp->read_off = 0;
	}
	sp->dirty_dir = true;
	vp__update_stats(sp);
}

int vp__add_seg(struct vp_spool *sp, uint64_t first, uint64_t size)
{
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? sp->cap * 2 : 16;
		struct seg *bigger = realloc(sp->segs, cap * sizeof(*bigger));

		if (!bigger)
			return -ENOMEM;
		sp->segs = bigger;
		sp->cap = cap;
	}
	sp->segs[sp->n++] = (struct seg){ .first = first, .size = size };
	sp->total += size;
	return 0;
}

/* A closed segment waits in 'retired' for the next fdatasync round. When
 * the thread pool has fallen that far behind, the oldest is synced here. */
static void retire(struct vp_spool *sp, int fd)
{
	if (sp->n_retired == VP_SPOOL_RETIRED_MAX) {
		(void)fdatasync(sp->retired[0]); /* an error shows in the next round's */
		close(sp->retired[0]);
		memmove(sp->retired, sp->retired + 1, (sp->n_retired - 1) * sizeof(int));
		sp->n_retired--;
	}
	sp->retired[sp->n_retired++] = fd;
}

static int rotate(struct vp_spool *sp)
{
	char name[SEG_NAME_LEN + 1];
	int fd, r;

	if (sp->n == VP_SPOOL_SEGMENTS_MAX)
		vp__remove_front(sp, true);
	vp__seg_name(name, sizeof(name), sp->next_seq);
	fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = vp__add_seg(sp, sp->next_seq, 0);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (sp->wfd >= 0)
		retire(sp, sp->wfd);
	sp->wfd = fd;
	sp->dirty_dir = true;
	sp->rotate_soon = false;
	return 0;
}

int64_t vp_spool_append(struct vp_spool *sp, const void *data, size_t len)
{
	size_t flen = HDR + len;
	struct seg *s;
	bool full;
	ssize_t n;
	int r;

	if (len == 0 || len > VP_SPOOL_RECORD_MAX || sp->closing)
		return -EMSGSIZE;
	full = sp->wfd >= 0 && sp->segs[sp->n - 1].size > 0 &&
	       sp->segs[sp->n - 1].size + flen > sp->seg_bytes;
	if (sp->wfd < 0 || full || (sp->rotate_soon && sp->segs[sp->n - 1].size > 0)) {
		r = rotate(sp);
		/* An early rotation that failed (no descriptor, no inode) is
		 * tried again with the next record; this one still fits. */
		if (r < 0 && (sp->wfd < 0 || full)) {
			set_error(sp, "cannot create a segment", r);
			goto fail;
		}
	}
	while (sp->total + flen > sp->max_bytes && sp->n > 1)
		vp__remove_front(sp, true);
	vp_spool_frame_encode(sp->scratch, sp->next_seq, data, len);
	s = &sp->segs[sp->n - 1];
	n = vp__write_full(sp->wfd, sp->scratch, flen);
	if (n < 0) {
		r = (int)n;
		/* Cut a partial frame, so that the next append lands on a boundary. */
		(void)ftruncate(sp->wfd, (off_t)s->size); /* recovery would cut it anyway */
		set_error(sp, "write", r);
		goto fail;
	}
	s->size += flen;
	sp->total += flen;
	sp->written = sp->next_seq++;
	sp->dirty_data = true;
	vp__update_stats(sp);
	return (int64_t)sp->written;
fail:
	sp->stats->dropped++;
	return r;
}

/* ---- reading ---- */

static int batch_add(struct vp_spool_batch *b, size_t *cap_recs, size_t *cap_buf,
                     const struct vp_spool_frame *f)
{
	if (b->n == *cap_recs) {
		size_t cap = *cap_recs ? *cap_recs * 2 : 64;
		struct vp_spool_record *r = realloc(b->recs, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		b->recs = r;
		*cap_recs = cap;
	}
	if (b->bytes + f->len > *cap_buf) {
		size_t cap = *cap_buf ? *cap_buf * 2 : 16384;
		char *buf;

		while (cap < b->bytes + f->len)
			cap *= 2;
		buf = realloc(b->buf, cap);
		if (!buf)
			return -ENOMEM;
		b->buf = buf;
		*cap_buf = cap;
	}
	memcpy(b->buf + b->bytes, f->payload, f->len);
	/* An offset for now, made a pointer at the end: 'buf' may still move. */
	b->recs[b->n++] = (struct vp_spool_record){ .seq = f->seq,
	                                            .data = (const char *)(uintptr_t)b->bytes,
	                                            .len = f->len };
	b->bytes += f->len;
	return 0;
}

static int open_reader(struct vp_spool *sp)
{
	char name[SEG_NAME_LEN + 1];

	if (sp->rfd >= 0)
		return 0;
	vp__seg_name(name, sizeof(name), sp->segs[sp->read_seg].first);
	sp->rfd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
	return sp->rfd < 0 ? -errno : 0;
}

/* The frame at the reader's offset, from the window when it holds the whole
 * frame; otherwise the window is refilled from that offset. What the window
 * holds never changes: segments only grow, and it is emptied whenever the
 * reader's descriptor is closed. A frame larger than the window is read on
 * its own (vp__frame_at). */
static int window_frame(struct vp_spool *sp, uint64_t end, struct vp_spool_frame *f)
{
	uint64_t off = sp->read_off;

	for (int pass = 0; pass < 2; pass++) {
		if (off >= sp->win_off && off < sp->win_off + sp->win_len) {
			size_t at = (size_t)(off - sp->win_off);
			int st = vp_spool_frame_parse(sp->window + at, sp->win_len - at, f);

			/* Short at the end of what is written: nothing more now. */
			if (st != VP_SPOOL_FRAME_SHORT || sp->win_off + sp->win_len >= end)
				return st;
			if (at == 0)
				break;
		}
		size_t want = end - off < VP_SPOOL_WINDOW ? (size_t)(end - off) : VP_SPOOL_WINDOW;
		ssize_t n = vp__pread_full(sp->rfd, sp->window, want, off);

		sp->win_off = off;
		sp->win_len = n > 0 ? (size_t)n : 0;
		if (n <= 0)
			return n < 0 ? (int)n : VP_SPOOL_FRAME_SHORT;
	}
	return vp__frame_at(sp, sp->rfd, off, end, f);
}

static void next_segment(struct vp_spool *sp)
{
	close_reader(sp);
	sp->read_seg++;
	sp->read_off = 0;
}

/* Steps over a bad frame at the reader's offset, counting it once. */
static int skip_bad(struct vp_spool *sp, struct seg *s)
{
	int64_t next = vp__resync(sp, sp->rfd, sp->read_off + 1, s->size);

	if (next < 0)
		return (int)next;
	vp__count_corrupt(sp, s, sp->read_off, (uint64_t)next);
	sp->read_off = (uint64_t)next;
	if (sp->read_off > s->checked)
		s->checked = sp->read_off;
	return 0;
}

/* One step of the reader: VP_SPOOL_FRAME_OK with a frame in 'f' and the payload in
 * the scratch buffer; VP_SPOOL_FRAME_SHORT when there is nothing more to read now;
 * VP_SPOOL_FRAME_BAD when it moved on (a bad frame, the next segment): step again. */
static int read_step(struct vp_spool *sp, struct vp_spool_frame *f)
{
	struct seg *s = &sp->segs[sp->read_seg];
	bool active = sp->wfd >= 0 && sp->read_seg == sp->n - 1;
	int st;

	if (sp->read_off >= s->size) {
		if (active)
			return VP_SPOOL_FRAME_SHORT;
		next_segment(sp);
		return VP_SPOOL_FRAME_BAD;
	}
	st = open_reader(sp);
	if (st == -ENOENT) {
		next_segment(sp); /* deleted under us: nothing to read there */
		return VP_SPOOL_FRAME_BAD;
	}
	if (st == 0)
		st = window_frame(sp, s->size, f);
	if (st == VP_SPOOL_FRAME_OK || st < 0)
		return st;
	st = skip_bad(sp, s);
	return st < 0 ? st : VP_SPOOL_FRAME_BAD;
}

int vp_spool_read(struct vp_spool *sp, size_t max_records, size_t max_bytes,
                  struct vp_spool_batch *b)
{
	size_t cap_recs = 0, cap_buf = 0;
	struct vp_spool_frame f;
	int r = 0;

	memset(b, 0, sizeof(*b));
	while (b->n < max_records && sp->read_seg < sp->n) {
		int st = read_step(sp, &f);

		if (st < 0) {
			r = st;
			break;
		}
		if (st == VP_SPOOL_FRAME_SHORT)
			break;
		if (st == VP_SPOOL_FRAME_BAD)
			continue;
		if (f.seq > sp->synced)
			break;
		if (f.seq > sp->read_seq) {
			if (b->n > 0 && b->bytes + f.len > max_bytes)
				break;
			r = batch_add(b, &cap_recs, &cap_buf, &f);
			if (r < 0)
				break;
			sp->read_seq = f.seq;
		}
		sp->read_off += HDR + f.len;
		if (sp->read_off > sp->segs[sp->read_seg].checked)
			sp->segs[sp->read_seg].checked = sp->read_off;
	}
	for (size_t i = 0; i < b->n; i++)
		b->recs[i].data = b->buf + (uintptr_t)b->recs[i].data;
	b->id = b->n ? b->recs[b->n - 1].seq : 0;
	if (r < 0 && b->n == 0)
		vp_spool_batch_clear(b);
	return b->n ? 0 : r;
}

uint64_t vp_spool_unread(const struct vp_spool *sp)
{
	uint64_t done = sp->read_seq > sp->floor ? sp->read_seq : sp->floor;

	return sp->synced > done ? sp->synced - done : 0;
}

void vp_spool_batch_clear(struct vp_spool_batch *b)
{
	free(b->recs);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

/* ---- the ack cursor ---- */

/* Written to a temporary file and renamed over the old one, so that a kill
 * leaves either cursor whole. Not synced here: the next fdatasync round
 * does it; a cursor lost with the page cache only sends a batch again, and
 * a batch sent again carries the same id. */
static int write_state(struct vp_spool *sp)
{
	char text[VP_SPOOL_STATE_MAX];
	int n = snprintf(text, sizeof(text), STATE_MAGIC "acked %" PRIu64 "\n", sp->acked);
	int fd = openat(sp->dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t w;
	int r = 0;

	if (fd < 0)
		return -errno;
	w = vp__write_full(fd, (const uint8_t *)text, (size_t)n);
	if (close(fd) < 0 && w >= 0)
		w = -errno;
	if (w < 0)
		r = (int)w;
	else if (renameat(sp->dirfd, STATE_TMP, sp->dirfd, STATE_NAME) < 0)
		r = -errno;
	if (r == 0)
		sp->dirty_state = true;
	return r;
}

int vp_spool_ack(struct vp_spool *sp, uint64_t seq)
{
	int r;

	if (seq <= sp->acked)
		return 0;
	sp->acked = seq;
	if (sp->read_seq < seq)
		sp->read_seq = seq;
	r = write_state(sp);
	if (r < 0)
		set_error(sp, "cannot write the ack cursor", r);
	/* A segment goes once every record in it is acknowledged; the active
	 * one stays, it is still being written. */
	while (sp->n > 0 && !(sp->wfd >= 0 && sp->n == 1) &&
	       (sp->n > 1 ? sp->segs[1].first - 1 : sp->written) <= sp->acked)
		vp__remove_front(sp, false);
	/* Delivery keeps up: the next record starts a new segment, so that the
	 * acknowledged records of this one leave the disk with the next ack
	 * instead of growing to seg_bytes there. A disk smaller than the
	 * spool's bound would otherwise fill with records a collector has
	 * (issue 9, tests/faults.py disk). */
	if (sp->wfd >= 0 && sp->n > 0 && sp->segs[sp->n - 1].first <= sp->acked &&
	    sp->segs[sp->n - 1].size >= VP_SPOOL_SEGMENT_MIN)
		sp->rotate_soon = true;
	vp__update_stats(sp);
	return r;
}

/* ---- fdatasync ---- */

static void sync_work(uv_work_t *req)
{
	struct sync_job *j = req->data;
	int fd;

	for (size_t i = 0; i < j->n_fds; i++) {
		if (fdatasync(j->fds[i]) < 0 && !j->err) {
			j->err = -errno;
			j->what = "fdatasync of a segment";
		}
		close(j->fds[i]);
	}
	if (j->state) {
		fd = openat(j->sp->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && fdatasync(fd) < 0 && !j->err) {
			j->err = -errno;
			j->what = "fdatasync of the ack cursor";
		}
		if (fd >= 0)
			close(fd);
	}
	if (j->dir && fsync(j->sp->dirfd) < 0 && !j->err) {
		j->err = -errno;
		j->what = "fsync of the directory";
	}
}

static void maybe_finish(struct vp_spool *sp);

static void made_sendable(struct vp_spool *sp, uint64_t seq)
{
	if (seq <= sp->synced)
		return;
	sp->synced = seq;
	if (sp->synced_cb && !sp->closing)
		sp->synced_cb(sp->synced_arg);
}

static void sync_done(uv_work_t *req, int status)
{
	struct sync_job *j = req->data;
	struct vp_spool *sp = j->sp;

	sp->working = false;
	/* Linux does not keep a failed write-back for a second fdatasync to
	 * report, so retrying cannot help: log it once per round, move on. */
	if (j->err) {
		set_error(sp, j->what, j->err);
		vp_log_err("%s", sp->stats->last_error);
	}
	(void)status; /* never cancelled */
	made_sendable(sp, j->seq);
	if (sp->closing)
		maybe_finish(sp);
}

static bool sync_needed(const struct vp_spool *sp)
{
	return sp->n_retired || sp->dirty_data || sp->dirty_state || sp->dirty_dir;
}

static void start_sync(struct vp_spool *sp)
{
	struct sync_job *j = &sp->job;
	int fd;

	if (sp->working || !sync_needed(sp))
		return;
	memset(j, 0, sizeof(*j));
	j->req.data = j;
	j->sp = sp;
	memcpy(j->fds, sp->retired, sp->n_retired * sizeof(int));
	j->n_fds = sp->n_retired;
	sp->n_retired = 0;
	if (sp->dirty_data && sp->wfd >= 0) {
		fd = fcntl(sp->wfd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0)
			j->fds[j->n_fds++] = fd;
		else
			(void)fdatasync(sp->wfd); /* out of descriptors: here, once */
	}
	j->seq = sp->written;
	j->state = sp->dirty_state;
	j->dir = sp->dirty_dir || sp->dirty_state;
	sp->dirty_data = sp->dirty_state = sp->dirty_dir = false;
	sp->working = true;
	if (uv_queue_work(sp->loop, &j->req, sync_work, sync_done) < 0) {
		sync_work(&j->req);
		sync_done(&j->req, 0);
	}
}

void vp__spool_tick(uv_timer_t *t)
{
	start_sync(t->data);
}

int vp_spool_flush(struct vp_spool *sp)
{
	int r = 0;

	for (size_t i = 0; i < sp->n_retired; i++) {
		if (fdatasync(sp->retired[i]) < 0 && r == 0)
			r = -errno;
		close(sp->retired[i]);
	}
	sp->n_retired = 0;
	if (sp->wfd >= 0 && fdatasync(sp->wfd) < 0 && r == 0)
		r = -errno;
	if (fsync(sp->dirfd) < 0 && r == 0)
		r = -errno;
	sp->dirty_data = sp->dirty_state = sp->dirty_dir = false;
	made_sendable(sp, sp->written);
	return r;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct vp_spool *sp = h->data;

	if (sp->closed)
		sp->closed(sp->closed_arg);
}

static void maybe_finish(struct vp_spool *sp)
{
	if (sp->working)
		return;
	if (sync_needed(sp)) {
		start_sync(sp); /* comes back here when done */
		return;
	}
	uv_close((uv_handle_t *)&sp->timer, on_timer_closed);
}

void vp_spool_close(struct vp_spool *sp, void (*closed)(void *arg), void *arg)
{
	sp->closing = true;
	sp->closed = closed;
	sp->closed_arg = arg;
	/* The lock goes first: a spool replacing this one (a reload) may open
	 * the directory at once; this one only syncs and closes from now on. */
	close(sp->lockfd);
	sp->lockfd = -1;
	close_reader(sp);
	if (sp->wfd >= 0)
		retire(sp, sp->wfd);
	sp->wfd = -1;
	uv_timer_stop(&sp->timer);
	maybe_finish(sp);
}

struct vp_spool *vp_spool_free(struct vp_spool *sp)
{
	if (!sp)
		return NULL;
	for (size_t i = 0; i < sp->n_retired; i++)
		close(sp->retired[i]);
	if (sp->wfd >= 0)
		close(sp->wfd);
	if (sp->rfd >= 0)
		close(sp->rfd);
	if (sp->lockfd >= 0)
		close(sp->lockfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	free(sp->segs);
	free(sp->dir);
	free(sp->scratch);
	free(sp->window);
	free(sp);
	return NULL;
}
