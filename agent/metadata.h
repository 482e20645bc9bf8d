/* Compute Engine metadata: which instance, zone, project and network this
 * agent runs in, put on every report (issue 5). Asked only on Compute
 * Engine (the DMI product name says so) or when agent.metadata_url points
 * at a server of the tests' own. */
#ifndef VP_METADATA_H
#define VP_METADATA_H

#include <stdbool.h>
#include <uv.h>

#include "agent/limits.h"

#define VP_METADATA_DEFAULT_URL "http://169.254.169.254"
#define VP_DMI_PRODUCT_NAME "/sys/class/dmi/id/product_name"

/* Empty strings for what is not known. The zone and the network are the
 * last part of what the server answers ("projects/N/zones/Z" gives Z). */
struct vp_instance {
	char name[VP_METADATA_VALUE_MAX + 1];
	char zone[VP_METADATA_VALUE_MAX + 1];
	char project[VP_METADATA_VALUE_MAX + 1];
	char network[VP_METADATA_VALUE_MAX + 1];
};

struct vp_curlm;
struct vp_metadata;

/* Whether the file 'dmi_path' (VP_DMI_PRODUCT_NAME) says "Google Compute
 * Engine". */
bool vp_metadata_on_gce(const char *dmi_path);

/* Whether any field is known. */
bool vp_instance_known(const struct vp_instance *inst);

/* Starts the four requests on 'cm' against 'base_url' (no trailing path;
 * "/computeMetadata/v1/..." is added), with Metadata-Flavor: Google, never
 * through a proxy. A 503 or a failed connect is asked again every
 * VP_METADATA_RETRY_MS until VP_METADATA_DEADLINE_MS. 'inst' (borrowed)
 * fills as answers arrive; 'done' runs once, from the loop, when all are in
 * or the deadline passed. Returns 0 or -errno (then 'done' never runs). */
int vp_metadata_start(uv_loop_t *loop, struct vp_curlm *cm, const char *base_url,
                      struct vp_instance *inst, void (*done)(void *arg), void *arg,
                      struct vp_metadata **ret);

/* Stops what is in flight ('done' does not run); frees itself once its
 * handles have closed. Accepts NULL. */
void vp_metadata_close(struct vp_metadata *m);

#endif
