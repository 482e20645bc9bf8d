#include <stdlib.h>
#include <string.h>

#include "agent/history.h"
#include "agent/limits.h"

int vp_history_init(struct vp_history *h, uint32_t interval_s)
{
	size_t cap = VP_HISTORY_SECONDS / (interval_s ? interval_s : 1) + 1;

	if (cap > VP_HISTORY_MAX)
		cap = VP_HISTORY_MAX;
	memset(h, 0, sizeof(*h));
	h->ring = calloc(cap, sizeof(*h->ring));
	if (!h->ring)
		return -ENOMEM;
	h->cap = cap;
	return 0;
}

void vp_history_done(struct vp_history *h)
{
	free(h->ring);
	memset(h, 0, sizeof(*h));
}

void vp_history_add(struct vp_history *h, const struct vp_history_entry *e)
{
	if (!h->cap)
		return;
	h->ring[h->head] = *e;
	h->head = (h->head + 1) % h->cap;
	if (h->len < h->cap)
		h->len++;
}

const struct vp_history_entry *vp_history_get(const struct vp_history *h, size_t i)
{
	if (i >= h->len)
		return NULL;
	return &h->ring[(h->head + h->cap - 1 - i) % h->cap];
}

void vp_history_move(struct vp_history *to, struct vp_history *from)
{
	size_t n = from->len < to->cap ? from->len : to->cap;

	/* Oldest first, so that the newest end up newest. */
	for (size_t i = n; i > 0; i--)
		vp_history_add(to, vp_history_get(from, i - 1));
	vp_history_done(from);
}
