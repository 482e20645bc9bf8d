/* The result record of the contract, as JSON. */
#ifndef VP_RECORD_H
#define VP_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "agent/engine.h"

/* Who and what a result is about; all borrowed. */
struct vp_record_ctx {
	const char *agent;
	const char *target;
	const char *host;      /* as the target names it */
	const char *url;       /* added as "url" when not NULL (check --json) */
	enum vp_kind kind;
};

/* A new JSON object for one result (NULL when out of memory). */
json_t *vp_record_json(const struct vp_record_ctx *ctx, const struct vp_probe_result *res);

/* "2026-11-24T10:00:00.123Z" into 'buf' (at least 25 bytes). */
void vp_format_time(const struct timespec *ts, char *buf, size_t len);

/* The flags every record is written with: compact, and milliseconds
 * without binary noise (2000.4, not 2000.4000000000001). */
#define VP_RECORD_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

#endif
