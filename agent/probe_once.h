/* Probing targets once, on a loop of its own: what `vpcprobe check` and
 * `vpcprobe diagnose` share. */
#ifndef VP_PROBE_ONCE_H
#define VP_PROBE_ONCE_H

#include <stddef.h>
#include <stdint.h>

#include "agent/runner.h"
#include "config/config.h"

/* A target named by its URL, as a command line gives it: its strings are
 * borrowed from 'url' (never freed), but for t->url's own path, which the
 * caller frees with vp_url_free(&t->url). Returns 0, or -EINVAL with the parser's
 * sentence in 'err'. */
int vp_target_from_url(struct vp_target *t, char *url, uint32_t timeout_ms, uint32_t interval_s,
                       char *err, size_t errlen);

/* Starts every run of 'runs' (setting their 'done' and 'data'), runs a loop
 * of its own until all are done, then closes it. Messages to stderr start
 * with 'who' ("vpcprobe check"). Returns 0, or -errno when the loop or the
 * engine could not be made; a run then has no results. */
int vp_probe_once(const struct vp_config *cfg, struct vp_target_run *runs, size_t n,
                  const char *who);

#endif
