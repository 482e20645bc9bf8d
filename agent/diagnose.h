/* `vpcprobe diagnose` (issue 7): the seed's flowchart for one target, step
 * by step, from gcloud's exports and the probe's verdict. Pure: the inputs
 * are already read (agent/gcloud.h) and probed, and nothing here does I/O;
 * agent/cmd_diagnose.c prints the report. A missing input makes its steps
 * unknown, never a guess. */
#ifndef VP_DIAGNOSE_H
#define VP_DIAGNOSE_H

#include <jansson.h>
#include <stdbool.h>

#include "agent/gcloud.h"
#include "agent/limits.h"
#include "config/url.h"

/* In the order of the flowchart; the names are the contract. */
enum vp_diag_step {
	VP_DIAG_CONNECTOR_READY,
	VP_DIAG_CONNECTOR_ATTACHED,
	VP_DIAG_SAME_REGION,
	VP_DIAG_EGRESS_SETTING,
	VP_DIAG_FIREWALL,
	VP_DIAG_TARGET_LISTENING,
	VP_DIAG_CLOUDSQL_PATH,
	VP_DIAG_LOGS,
	VP_DIAG_CAPACITY,
	VP_DIAG_STEP_MAX,
};

enum vp_diag_status {
	VP_DIAG_UNKNOWN,
	VP_DIAG_PASS,
	VP_DIAG_FAIL,
};

struct vp_diag_input {
	const char *target;                    /* borrowed: the URL as given */
	const struct vp_url *url;              /* borrowed */
	/* The exports; each borrowed, NULL when not given. */
	const struct vp_gc_service *service;
	const struct vp_gc_connector *connector;
	const struct vp_fw_ruleset *rules;
	/* Hierarchical and network firewall policies (effective-firewalls.json,
	 * whose VPC rules stand in for 'rules' when that is not given), and the
	 * network's enforcement order (network.json; VP_FW_ORDER_UNKNOWN). */
	const struct vp_fw_policies *policies;
	enum vp_fw_order fw_order;
	const struct vp_gc_instance *instance;
	const struct vp_gc_sql *sql;
	const struct vp_gc_peerings *peerings;
	const struct vp_gc_logs *logs;
	/* The target's probe records (--results, or the live probe); NULL
	 * when it was not probed. */
	const struct vp_gc_results *results;
	const char *results_from;              /* borrowed: "results.jsonl", "a live probe" */
};

struct vp_diag_step_out {
	enum vp_diag_status status;
	const char *cause;                     /* static, set on fail */
	char evidence[VP_DIAG_TEXT_MAX];
	char fix[VP_DIAG_TEXT_MAX];            /* a command; "" unless fail */
};

struct vp_diag_report {
	struct vp_diag_step_out steps[VP_DIAG_STEP_MAX];
	const char *cause;                     /* static: the first failing step's, or NULL */
};

/* Runs every step. Returns 0, or -ENOMEM. */
int vp_diagnose(const struct vp_diag_input *in, struct vp_diag_report *out);

/* "connector_ready", ...; "pass", "fail", "unknown". */
const char *vp_diag_step_name(enum vp_diag_step s);
const char *vp_diag_status_name(enum vp_diag_status s);

/* {"target":..., "steps":[{"step","status","evidence","fix"}], "cause":...};
 * NULL when out of memory. */
json_t *vp_diag_json(const struct vp_diag_input *in, const struct vp_diag_report *r);

#endif
