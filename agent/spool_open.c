/* Opening the spool: the directory, its lock, and recovery from whatever
 * the last run left (spool.h). Runs once at start, before the loop does,
 * so its reads block nobody: it reads the newest segment only. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/spool_impl.h"

static void read_state(struct vp_spool *sp)
{
	char text[VP_SPOOL_STATE_MAX];
	uint64_t acked;
	ssize_t n;
	int fd = openat(sp->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			vp_log_warning("spool '%s': cannot read '%s': %s; sending from the oldest "
			               "record", sp->dir, STATE_NAME, strerror(errno));
		return;
	}
	n = vp__pread_full(fd, text, sizeof(text) - 1, 0);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	if (strncmp(text, STATE_MAGIC, strlen(STATE_MAGIC)) != 0 ||
	    sscanf(text + strlen(STATE_MAGIC), "acked %" SCNu64, &acked) != 1) {
		vp_log_warning("spool '%s': '%s' is not an ack cursor; sending from the oldest "
		               "record", sp->dir, STATE_NAME);
		return;
	}
	sp->acked = acked;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static bool parse_seg_name(const char *name, uint64_t *first)
{
	char *end;

	if (strlen(name) != SEG_NAME_LEN || strcmp(name + 16, ".seg") != 0 ||
	    strspn(name, "0123456789abcdef") != 16)
		return false;
	*first = strtoull(name, &end, 16);
	return end == name + 16 && *first > 0;
}

static int list_segments(struct vp_spool *sp)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	uint64_t first;
	int fd, r = 0;

	fd = openat(sp->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (r == 0 && (e = readdir(d)) != NULL) {
		if (!parse_seg_name(e->d_name, &first))
			continue;
		if (fstatat(sp->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = vp__add_seg(sp, first, (uint64_t)st.st_size);
	}
	closedir(d);
	if (sp->n)
		qsort(sp->segs, sp->n, sizeof(*sp->segs), cmp_seg);
	return r;
}

/* Checks every frame of the newest segment: counts corrupt frames, cuts a
 * torn tail (a partial frame, or garbage after the last good frame: what a
 * crash in the middle of a write leaves). Returns how many good frames it
 * holds, their highest sequence number in '*last'. */
static int recover_segment(struct vp_spool *sp, struct seg *s, uint64_t *last)
{
	char name[SEG_NAME_LEN + 1];
	uint64_t off = 0, good_end = 0;
	struct vp_spool_frame f;
	int fd, st = 0, n = 0;
	int64_t next;

	vp__seg_name(name, sizeof(name), s->first);
	fd = openat(sp->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (off < s->size) {
		st = vp__frame_at(sp, fd, off, s->size, &f);
		if (st < 0)
			goto out;
		if (st == VP_SPOOL_FRAME_OK) {
			n++;
			*last = f.seq > *last ? f.seq : *last;
			off += HDR + f.len;
			good_end = off;
			continue;
		}
		next = vp__resync(sp, fd, off + 1, s->size);
		st = next < 0 ? (int)next : 0;
		if (st < 0 || (uint64_t)next >= s->size)
			break;
		vp__count_corrupt(sp, s, off, (uint64_t)next);
		off = (uint64_t)next;
	}
	if (st >= 0 && good_end < s->size) {
		if (ftruncate(fd, (off_t)good_end) < 0) {
			st = -errno;
			goto out;
		}
		sp->stats->torn++;
		vp_log_warning("spool '%s': segment '%s': cut a torn tail of %" PRIu64 " bytes at "
		               "offset %" PRIu64, sp->dir, name, s->size - good_end, good_end);
		sp->total -= s->size - good_end;
		s->size = good_end;
	}
	s->checked = s->size;
out:
	close(fd);
	return st < 0 ? st : n;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Recovery proper: the newest segment with a good frame decides where the
 * sequence goes on; empty ones after it go. */
static int recover(struct vp_spool *sp)
{
	uint64_t last = 0;
	int r;

	r = list_segments(sp);
	while (r == 0 && sp->n > 0) {
		struct seg *s = &sp->segs[sp->n - 1];
		char name[SEG_NAME_LEN + 1];

		r = recover_segment(sp, s, &last);
		if (r != 0)
			break;
		vp__seg_name(name, sizeof(name), s->first);
		(void)unlinkat(sp->dirfd, name, 0); /* nothing in it; a leftover is harmless */
		sp->total -= s->size;
		sp->n--;
	}
	if (r < 0)
		return r;
	(void)unlinkat(sp->dirfd, STATE_TMP, 0); /* a rename that did not happen */
	read_state(sp);
	if (sp->n > 0 || sp->acked > 0)
		sp->next_seq = (last > sp->acked ? last : sp->acked) + 1;
	else
		sp->next_seq = now_us();
	if (sp->n > 0 && sp->next_seq <= sp->segs[sp->n - 1].first)
		sp->next_seq = sp->segs[sp->n - 1].first + 1;
	sp->written = sp->synced = sp->next_seq - 1;
	sp->read_seq = sp->acked;
	/* Written by an earlier run: on disk as far as a crash goes. */
	while (sp->total > sp->max_bytes && sp->n > 0)
		vp__remove_front(sp, true);
	while (sp->n > 0 && (sp->n > 1 ? sp->segs[1].first - 1 : sp->written) <= sp->acked)
		vp__remove_front(sp, false);
	/* Nothing below the oldest segment is left to send. */
	if (sp->n == 0)
		sp->floor = sp->written;
	else if (sp->segs[0].first - 1 > sp->floor)
		sp->floor = sp->segs[0].first - 1;
	sp->read_seg = 0;
	sp->read_off = 0;
	vp__update_stats(sp);
	return 0;
}

static int open_dirs(struct vp_spool *sp, const char *state_dir, char *err, size_t errlen)
{
	const char *what = "cannot create it";
	int r = 0;

	if (mkdir(state_dir, 0750) < 0 && errno != EEXIST)
		goto fail;
	what = "cannot create 'spool' in it";
	if (mkdir(sp->dir, 0700) < 0 && errno != EEXIST)
		goto fail;
	what = "cannot open 'spool' in it";
	sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0)
		goto fail;
	what = "'spool' in it is not writable";
	if (faccessat(sp->dirfd, ".", W_OK, AT_EACCESS) < 0)
		goto fail;
	what = "cannot create 'spool/lock' in it";
	sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->lockfd < 0)
		goto fail;
	if (flock(sp->lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen, "state_dir '%s': %s", state_dir, r == -EBUSY ?
		         "in use by another vpcprobe (spool/lock is held)" : strerror(-r));
		return r;
	}
	return 0;
fail:
	r = -errno;
	snprintf(err, errlen, "state_dir '%s': %s: %s (errno %d)", state_dir, what, strerror(-r), -r);
	return r;
}

int vp_spool_open(uv_loop_t *loop, const char *state_dir, uint64_t max_bytes,
                  struct vp_delivery_stats *stats, void (*synced)(void *arg), void *arg,
                  struct vp_spool **ret, char *err, size_t errlen)
{
	struct vp_spool *sp = calloc(1, sizeof(*sp));
	int r = -ENOMEM;

	snprintf(err, errlen, "spool: out of memory");
	if (!sp)
		return r;
	sp->dirfd = sp->lockfd = sp->wfd = sp->rfd = -1;
	sp->loop = loop;
	sp->stats = stats;
	sp->synced_cb = synced;
	sp->synced_arg = arg;
	sp->max_bytes = max_bytes;
	sp->seg_bytes = vp_spool_segment_bytes(max_bytes);
	sp->scratch = malloc(HDR + VP_SPOOL_RECORD_MAX);
	sp->window = malloc(VP_SPOOL_WINDOW);
	if (asprintf(&sp->dir, "%s/spool", state_dir) < 0)
		sp->dir = NULL;
	if (!sp->scratch || !sp->window || !sp->dir)
		goto fail;
	if (max_bytes < 2 * sp->seg_bytes) {
		r = -EINVAL;
		snprintf(err, errlen, "spool '%s': a bound of %" PRIu64 " bytes is below the "
		         "minimum of %d", sp->dir, max_bytes, 2 * VP_SPOOL_SEGMENT_MIN);
		goto fail;
	}
	r = open_dirs(sp, state_dir, err, errlen);
	if (r < 0)
		goto fail;
	r = recover(sp);
	if (r < 0) {
		snprintf(err, errlen, "spool '%s': recovery: %s (errno %d)", sp->dir, strerror(-r), -r);
		goto fail;
	}
	/* Nothing can fail from here on: no handle to close on the way out. */
	uv_timer_init(loop, &sp->timer);
	sp->timer.data = sp;
	uv_timer_start(&sp->timer, vp__spool_tick, VP_SPOOL_SYNC_MS, VP_SPOOL_SYNC_MS);
	*ret = sp;
	return 0;
fail:
	sp->closing = true;
	vp_spool_free(sp);
	return r;
}

