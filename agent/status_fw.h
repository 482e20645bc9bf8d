/* The status page's firewall line (issues 6 and 7): for each target whose
 * config names connector_range, the answer of `vpcprobe diagnose`'s
 * firewall_admits_connector step, evaluated from the gcloud exports of
 * agent.gcloud_exports once per load (at start and at SIGHUP), never per
 * request. The loader (status_fw_load.c) is part of the diagnose library;
 * what the page and /api/v1/status do with a line (status_fw.c) is part of
 * the status library, which knows only the plain types below. */
#ifndef VP_STATUS_FW_H
#define VP_STATUS_FW_H

#include <jansson.h>
#include <stddef.h>

#include "agent/html.h"
#include "agent/limits.h"
#include "config/config.h"

/* "firewall (exports of 2026-11-25T10:00:00Z): " before a step's evidence. */
#define VP_STATUS_FW_TEXT_MAX (VP_DIAG_TEXT_MAX + 128)
/* The largest export file the daemon reads. gcloud's own limit
 * (VP_GCLOUD_FILE_MAX) would let one file stall the probe loop for
 * seconds; a project's firewall list of thousands of rules is a few MiB.
 * Bounds only this reader, so it lives here rather than in limits.h. */
#define VP_STATUS_FW_FILE_MAX (16 * 1024 * 1024)

enum vp_status_fw_answer {
	VP_STATUS_FW_UNKNOWN,
	VP_STATUS_FW_ALLOWED,
	VP_STATUS_FW_DENIED,
	VP_STATUS_FW_MAX,
};

struct vp_status_fw_line {
	char target[VP_NAME_MAX + 1];         /* the target's name */
	enum vp_status_fw_answer answer;
	/* "firewall (exports of TIME): EVIDENCE": valid UTF-8, not escaped
	 * (the exports are untrusted: the page escapes it). */
	char text[VP_STATUS_FW_TEXT_MAX];
	char fix[VP_DIAG_TEXT_MAX];           /* a gcloud command, "" unless denied */
};

/* One load of the exports. Read-only once made. */
struct vp_status_fw {
	char dir[VP_PATH_MAX];                /* agent.gcloud_exports */
	char when[40];                        /* newest export's mtime, UTC; "" none read */
	char error[VP_ERR_MAX];               /* why nothing could be judged; "" none */
	struct vp_status_fw_line *lines;      /* owned: one per target with connector_range */
	size_t n;
};

/* ---- the loader (status_fw_load.c, in vpdiag) ---- */

/* Reads the exports of 'dir' and evaluates every target of 't[0..n)' that
 * names connector_range. A missing or broken file is no failure: the lines
 * say "unknown" and why (the file and the JSON path), and each unknown is
 * logged once here. 0 and '*ret' set, or -ENOMEM. */
int vp_status_fw_load(const char *dir, const struct vp_target *t, size_t n,
                      struct vp_status_fw **ret);

/* Accepts NULL; returns NULL. */
struct vp_status_fw *vp_status_fw_free(struct vp_status_fw *fw);

/* ---- the page's side (status_fw.c, in vpstatus) ---- */

/* The line of target 'name'; NULL when 'fw' is NULL or has none. */
const struct vp_status_fw_line *vp_status_fw_find(const struct vp_status_fw *fw,
                                                  const char *name);

/* "unknown", "allowed", "denied". */
const char *vp_status_fw_answer_name(enum vp_status_fw_answer a);

/* The row's firewall block: hidden (for the script) when 'l' is NULL.
 * Every string is HTML-escaped. */
void vp_status_fw_html(struct vp_buf *b, const struct vp_status_fw_line *l);

/* {"answer","text","fix","exports","exports_time"} for /api/v1/status;
 * json_null() when 'l' is NULL. NULL when out of memory. */
json_t *vp_status_fw_json(const struct vp_status_fw *fw, const struct vp_status_fw_line *l);

#endif
