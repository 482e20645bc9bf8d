/* A target's recent verdicts: a fixed ring sized at load for the last hour. */
#ifndef VP_HISTORY_H
#define VP_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "probes/verdict.h"

struct vp_history_entry {
	int64_t time_ms;          /* CLOCK_REALTIME, ms since the epoch */
	float total_ms;           /* the slowest address's total */
	uint8_t verdict;          /* enum vp_verdict: the worst of the run's addresses */
	uint8_t n_ok;             /* addresses ok */
	uint8_t n_addresses;
};

struct vp_history {
	struct vp_history_entry *ring;   /* owned, 'cap' entries */
	size_t cap;
	size_t len;                      /* entries held, <= cap */
	size_t head;                     /* next write */
};

/* Sized for VP_HISTORY_SECONDS at 'interval_s', at most VP_HISTORY_MAX. */
int vp_history_init(struct vp_history *h, uint32_t interval_s);
void vp_history_done(struct vp_history *h);
void vp_history_add(struct vp_history *h, const struct vp_history_entry *e);
/* The i-th newest entry (0 = newest), NULL past the end. */
const struct vp_history_entry *vp_history_get(const struct vp_history *h, size_t i);
/* Moves what 'from' holds into 'to' (newest kept when 'to' is smaller). */
void vp_history_move(struct vp_history *to, struct vp_history *from);

#endif
