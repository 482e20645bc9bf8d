/* The spool: every result on disk before it counts as produced, kept until
 * the collector acknowledges it (DESIGN.md "Collector delivery", issue 5).
 *
 * STATE_DIR/spool/ holds append-only segment files named after the sequence
 * number of their first record ("%016llx.seg"), an ack cursor ("ack",
 * replaced atomically with rename) and a lock file. Every record is framed:
 *
 *   offset 0   magic "VPR1"
 *          4   payload length, u32 little-endian, 1..VP_SPOOL_RECORD_MAX
 *          8   sequence number, u64 little-endian
 *         16   CRC32C of bytes 4..16 and of the payload, u32 little-endian
 *         20   payload: the record's JSON
 *
 * A segment ends at the size vp_spool_segment_bytes() gives, or earlier
 * once an ack covers its first record and it holds VP_SPOOL_SEGMENT_MIN
 * bytes: then what the collector has leaves the disk with the next ack, and
 * a disk smaller than spool_max_mb does not fill while delivery keeps up.
 *
 * Sequence numbers grow by one per record and never go back, also across
 * restarts; a new spool starts at the wall clock in microseconds, so that
 * wiping state_dir does not reuse them either. Records are handed to the
 * sender only once fdatasync has covered them, so a batch named by its last
 * record's sequence number always holds the same records: that is the batch
 * id a collector can drop duplicates by.
 *
 * I/O: appends are single writev() calls of a few KB on the loop thread, as
 * are batch reads (bounded by VP_REPORT_BATCH_BYTES, normally from the page
 * cache) and the ack cursor (a few bytes, once per batch); fdatasync runs on
 * the libuv thread pool every VP_SPOOL_SYNC_MS. Opening reads the newest
 * segment only (at most VP_SPOOL_SEGMENT_MAX plus a frame); older segments
 * are checked as they are read for sending. */
#ifndef VP_SPOOL_H
#define VP_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define VP_SPOOL_FRAME_HEADER 20
#define VP_SPOOL_LAST_ERROR_MAX 256

enum vp_spool_frame_status {
	VP_SPOOL_FRAME_OK,
	VP_SPOOL_FRAME_SHORT,      /* the buffer ends inside the frame */
	VP_SPOOL_FRAME_BAD,        /* magic, length or CRC */
};

struct vp_spool_frame {
	uint64_t seq;
	uint32_t len;
	const uint8_t *payload;    /* borrowed: into the parsed buffer */
};

/* Writes one frame (VP_SPOOL_FRAME_HEADER + 'len' bytes, 'len' at most
 * VP_SPOOL_RECORD_MAX) to 'out'; returns its size. */
size_t vp_spool_frame_encode(uint8_t *out, uint64_t seq, const void *data, size_t len);

/* Checks the frame at the start of 'buf' ('avail' bytes there). Returns an
 * enum vp_spool_frame_status; 'f' is filled for VP_SPOOL_FRAME_OK, and for
 * VP_SPOOL_FRAME_SHORT once the header is complete. */
int vp_spool_frame_parse(const uint8_t *buf, size_t avail, struct vp_spool_frame *f);

/* What the spool and the reporter count, for the status page and /metrics.
 * Owned by the daemon, so that the counts survive a reporter replaced by a
 * reload; the spool and the reporter borrow it. */
struct vp_delivery_stats {
	uint64_t spooled_bytes;    /* vpcprobe_reports_spooled_bytes: segment bytes on disk */
	uint64_t spooled_records;  /* records written and not yet acknowledged (an estimate) */
	uint64_t dropped;          /* vpcprobe_reports_dropped_total: lost to a full spool or a failed write */
	uint64_t corrupt;          /* frames that failed their checksum, skipped */
	uint64_t torn;             /* torn tails cut at start */
	uint64_t delivered;        /* records a collector acknowledged */
	uint64_t rejected;         /* records a collector refused (4xx, or OTLP partialSuccess) */
	uint64_t batches;          /* batches acknowledged */
	uint64_t retries;          /* POSTs sent again */
	int64_t last_success_ms;   /* realtime of the last acknowledgement, 0: none yet */
	char last_error[VP_SPOOL_LAST_ERROR_MAX]; /* empty: none since the last success */
};

struct vp_spool;

/* One record of a batch; 'data' points into the batch's buffer. */
struct vp_spool_record {
	uint64_t seq;
	const char *data;          /* borrowed from the batch, not NUL-terminated */
	uint32_t len;
};

struct vp_spool_batch {
	uint64_t id;                    /* the sequence number of its last record */
	struct vp_spool_record *recs;   /* owned */
	size_t n;
	char *buf;                      /* owned: the payloads */
	size_t bytes;                   /* payload bytes */
};

/* Opens (creating STATE_DIR and STATE_DIR/spool when missing) and recovers
 * the spool: cuts a torn tail off the newest segment and counts corrupt
 * frames in it, reads the ack cursor, drops the oldest segments beyond
 * 'max_bytes'. Takes an exclusive lock: one agent per state_dir. 'synced'
 * (may be NULL) runs with 'arg' after each fdatasync that made more records
 * sendable. On failure returns -errno and writes a message naming the
 * directory or file and the errno into 'err'; nothing is left to close. */
int vp_spool_open(uv_loop_t *loop, const char *state_dir, uint64_t max_bytes,
                  struct vp_delivery_stats *stats, void (*synced)(void *arg), void *arg,
                  struct vp_spool **ret, char *err, size_t errlen);

/* The segment size for a bound: max_bytes / VP_SPOOL_SEGMENTS_PER, within
 * VP_SPOOL_SEGMENT_MIN..VP_SPOOL_SEGMENT_MAX. */
uint64_t vp_spool_segment_bytes(uint64_t max_bytes);

/* Appends one record; returns its sequence number (> 0) or -errno:
 * -EMSGSIZE for an empty or oversized record, the write's errno (the
 * partial frame is cut off again). Makes room by dropping the oldest
 * segments, counted in stats->dropped. */
int64_t vp_spool_append(struct vp_spool *sp, const void *data, size_t len);

/* Reads the next batch after the last one read: at most 'max_records'
 * records and 'max_bytes' payload bytes (at least one record), only records
 * already synced. Skips corrupt frames (counted). b->n == 0: nothing to
 * send. Returns 0 or -errno (a read error, -ENOMEM). */
int vp_spool_read(struct vp_spool *sp, size_t max_records, size_t max_bytes,
                  struct vp_spool_batch *b);

/* Records written, synced, and not yet read: a trigger for sending, not an
 * exact count (a dropped or corrupt record may still be counted). */
uint64_t vp_spool_unread(const struct vp_spool *sp);

/* Acknowledges everything up to 'seq' (a batch's id): persists the cursor,
 * deletes segments that hold nothing newer. Returns 0 or -errno (the
 * cursor could not be written; it is written again with the next ack). */
int vp_spool_ack(struct vp_spool *sp, uint64_t seq);

/* fdatasync now, on this thread, and make everything written sendable.
 * For tests and for a stop; the loop uses the thread pool. */
int vp_spool_flush(struct vp_spool *sp);

/* Frees a batch's memory. Accepts an empty batch. */
void vp_spool_batch_clear(struct vp_spool_batch *b);

/* Releases the lock at once, then syncs and closes the files; 'closed'
 * (may be NULL) runs with 'arg' when done. No other call after this one. */
void vp_spool_close(struct vp_spool *sp, void (*closed)(void *arg), void *arg);

/* Frees a closed spool. Accepts NULL; returns NULL. */
struct vp_spool *vp_spool_free(struct vp_spool *sp);

#endif
