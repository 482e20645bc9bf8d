/* The spool's insides, shared by spool.c (appending, reading, acks,
 * fdatasync), spool_frame.c (the frame format) and spool_open.c (opening
 * and recovery). Not for other modules. */
#ifndef VP_SPOOL_IMPL_H
#define VP_SPOOL_IMPL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "agent/limits.h"
#include "agent/spool.h"

#define HDR VP_SPOOL_FRAME_HEADER
#define SEG_NAME_FMT "%016" PRIx64 ".seg"
#define SEG_NAME_LEN 20                  /* 16 hex digits and ".seg" */
#define STATE_NAME "ack"
#define STATE_TMP "ack.tmp"
#define STATE_MAGIC "vpcprobe-spool 1\n"

struct seg {
	uint64_t first;      /* the sequence number of its first record: its name */
	uint64_t size;       /* bytes in the file */
	uint64_t checked;    /* corrupt frames before this offset are counted already */
};

/* One fdatasync round on the thread pool. The job owns its descriptors (the
 * retired segments and a dup of the active one) and closes them itself, so
 * that the loop never closes a descriptor a worker still uses. */
struct sync_job {
	uv_work_t req;
	struct vp_spool *sp;             /* borrowed */
	int fds[VP_SPOOL_RETIRED_MAX + 1];
	size_t n_fds;
	bool state;                      /* fdatasync the ack cursor */
	bool dir;                        /* fsync the directory */
	uint64_t seq;                    /* the last record this round covers */
	int err;                         /* the first failure, -errno */
	const char *what;                /* static: what failed */
};

struct vp_spool {
	uv_loop_t *loop;                 /* borrowed */
	struct vp_delivery_stats *stats; /* borrowed */
	char *dir;                       /* owned: STATE_DIR/spool */
	int dirfd, lockfd;
	int wfd;                         /* the active segment (the last one), -1: none yet */
	int rfd;                         /* the reader's segment, -1: not open */
	uint64_t max_bytes, seg_bytes, total;
	struct seg *segs;                /* owned, oldest first */
	size_t n, cap;
	uint64_t next_seq;               /* the next record's */
	uint64_t written;                /* the last record written */
	uint64_t synced;                 /* the last record covered by fdatasync: sendable */
	uint64_t acked;
	uint64_t read_seq;               /* the last record read for sending, >= acked */
	uint64_t floor;                  /* the last record dropped */
	size_t read_seg;                 /* index into segs */
	uint64_t read_off;
	int retired[VP_SPOOL_RETIRED_MAX];
	size_t n_retired;
	bool dirty_data, dirty_dir, dirty_state;
	bool rotate_soon;                /* the active segment's start is acknowledged */
	uint8_t *scratch;                /* owned: one frame, header and payload */
	uint8_t *window;                 /* owned: VP_SPOOL_WINDOW bytes of the reader's segment */
	uint64_t win_off;                /* the file offset of window[0] */
	size_t win_len;                  /* bytes in it; 0 whenever rfd is not the segment read */
	uv_timer_t timer;
	struct sync_job job;
	bool working;                    /* 'job' is on the thread pool */
	bool closing;
	void (*synced_cb)(void *arg);
	void *synced_arg;                /* borrowed */
	void (*closed)(void *arg);
	void *closed_arg;                /* borrowed */
};

/* The reader reads this much of a segment at once and takes the frames in
 * it from memory: one pread for a batch instead of two a frame. */
#define VP_SPOOL_WINDOW (64 * 1024)

/* spool_frame.c */
ssize_t vp__pread_full(int fd, void *buf, size_t len, uint64_t off);
ssize_t vp__write_full(int fd, const uint8_t *buf, size_t len);
/* The frame at 'off' of a file of 'end' bytes, read into sp->scratch. */
int vp__frame_at(struct vp_spool *sp, int fd, uint64_t off, uint64_t end,
                 struct vp_spool_frame *f);
/* The offset of the next good frame after 'from', or 'end'; < 0: errno. */
int64_t vp__resync(struct vp_spool *sp, int fd, uint64_t from, uint64_t end);
void vp__seg_name(char *buf, size_t len, uint64_t first);
/* Counts (once) and logs a corrupt region [from, to) of segment 's'. */
void vp__count_corrupt(struct vp_spool *sp, struct seg *s, uint64_t from, uint64_t to);

/* spool.c */
int vp__add_seg(struct vp_spool *sp, uint64_t first, uint64_t size);
void vp__remove_front(struct vp_spool *sp, bool dropped);
void vp__update_stats(struct vp_spool *sp);
void vp__spool_tick(uv_timer_t *t);

/* spool_open.c */
int vp__recover(struct vp_spool *sp);

#endif
