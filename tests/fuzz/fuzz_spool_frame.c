/* The spool's frame reader (agent/spool.h, agent/spool_impl.h): the input
 * is a segment file as a crash, a full disk or a bad sector may leave it.
 * It is walked as recovery walks the newest segment (spool_open.c:
 * recover_segment), through vp__frame_at() and vp__resync() on a memfd,
 * and again in memory with vp_spool_frame_parse(); both must find the same
 * frames, and every good frame must be what vp_spool_frame_encode() makes
 * of its payload. */
#include <sys/mman.h>
#include <unistd.h>

#include "agent/spool_impl.h"
#include "tests/fuzz/fuzz.h"

static struct vp_delivery_stats stats;
static struct vp_spool sp;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	sp.stats = &stats;
	sp.dir = (char *)"fuzz/spool";
	sp.scratch = malloc(HDR + VP_SPOOL_RECORD_MAX);
	VP_FUZZ_CHECK(sp.scratch != NULL);
	return 0;
}

/* The offsets of the good frames, found in memory: at a frame boundary a
 * good frame is taken whole, anything else moves on to the next magic
 * whose frame is good. */
static size_t walk_memory(const uint8_t *buf, size_t size, uint64_t *offs, size_t max)
{
	size_t off = 0, n = 0;

	while (off < size) {
		struct vp_spool_frame f;
		size_t next;

		if (vp_spool_frame_parse(buf + off, size - off, &f) == VP_SPOOL_FRAME_OK) {
			VP_FUZZ_CHECK(f.len > 0 && f.len <= VP_SPOOL_RECORD_MAX);
			VP_FUZZ_CHECK(f.payload == buf + off + HDR && HDR + f.len <= size - off);
			if (n < max)
				offs[n] = off;
			n++;
			off += HDR + f.len;
			continue;
		}
		for (next = off + 1; next + 4 <= size; next++)
			if (memcmp(buf + next, "VPR1", 4) == 0 &&
			    vp_spool_frame_parse(buf + next, size - next, &f) == VP_SPOOL_FRAME_OK)
				break;
		if (next + 4 > size)
			break;
		off = next;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t offs[256];
	uint8_t *enc = malloc(HDR + VP_SPOOL_RECORD_MAX);
	size_t n_mem, n_fd = 0;
	uint64_t off = 0;
	int fd = memfd_create("fuzz-segment", MFD_CLOEXEC);

	VP_FUZZ_CHECK(fd >= 0 && enc != NULL);
	VP_FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
	n_mem = walk_memory(data, size, offs, sizeof(offs) / sizeof(offs[0]));
	while (off < size) {
		struct vp_spool_frame f;
		int st = vp__frame_at(&sp, fd, off, size, &f);
		int64_t next;

		VP_FUZZ_CHECK(st == VP_SPOOL_FRAME_OK || st == VP_SPOOL_FRAME_SHORT ||
		              st == VP_SPOOL_FRAME_BAD);
		if (st == VP_SPOOL_FRAME_OK) {
			VP_FUZZ_CHECK(f.len > 0 && f.len <= VP_SPOOL_RECORD_MAX && off + HDR + f.len <= size);
			VP_FUZZ_CHECK(n_fd >= sizeof(offs) / sizeof(offs[0]) || offs[n_fd] == off);
			VP_FUZZ_CHECK(vp_spool_frame_encode(enc, f.seq, f.payload, f.len) == HDR + f.len);
			VP_FUZZ_CHECK(memcmp(enc, data + off, HDR + f.len) == 0);
			n_fd++;
			off += HDR + f.len;
			continue;
		}
		next = vp__resync(&sp, fd, off + 1, size);
		VP_FUZZ_CHECK(next > (int64_t)off && (uint64_t)next <= size);
		if ((uint64_t)next >= size)
			break;
		vp__count_corrupt(&sp, &(struct seg){ .first = 1 }, off, (uint64_t)next);
		off = (uint64_t)next;
	}
	VP_FUZZ_CHECK(n_fd == n_mem);
	close(fd);
	free(enc);
	return 0;
}
