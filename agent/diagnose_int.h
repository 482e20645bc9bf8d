/* Internals of agent/diagnose*.c: the context every step reads, the text
 * helpers, and the steps themselves. */
#ifndef VP_DIAGNOSE_INT_H
#define VP_DIAGNOSE_INT_H

#include "agent/diagnose.h"

/* What the steps share, derived once from the inputs. */
struct vp_diag_ctx {
	const struct vp_diag_input *in;        /* borrowed */
	struct vp_diag_report *out;            /* borrowed */
	char addr[VP_HOST_MAX];                /* the target's address; "" unknown */
	bool addr_from_probe;                  /* a name, its address taken from a record */
	const struct vp_gc_nic *nic;           /* the instance's interface with addr; NULL */
	bool is_vm;                            /* instance.json describes the target */
	bool is_sql;                           /* sql-instance.json describes the target */
	/* The connector's network tags (firewall.h's source), when known. */
	char tag_region[VP_GCLOUD_NAME_MAX * 3];
	const char *tags[VP_GCLOUD_TAGS_MAX + 2];
	size_t n_tags;
};

/* Sets a step's status, cause and evidence (printf-style). */
void vp_diag_set(struct vp_diag_ctx *c, enum vp_diag_step s, enum vp_diag_status st,
                 const char *cause, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Appends to a step's evidence. */
void vp_diag_more(struct vp_diag_ctx *c, enum vp_diag_step s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets a step's fix. */
void vp_diag_fix(struct vp_diag_ctx *c, enum vp_diag_step s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The service's region, else the connector's; "REGION" when neither. */
const char *vp_diag_region(const struct vp_diag_ctx *c);
/* The connector's name: connector.json's, else the annotation's; "CONNECTOR". */
const char *vp_diag_connector_name(const struct vp_diag_ctx *c);
/* The network to name in a fix: the target's, the connector's; "NETWORK". */
const char *vp_diag_network(const struct vp_diag_ctx *c);
/* Whether 'addr' is routed by private-ranges-only egress. */
bool vp_diag_private_address(const char *addr);

void vp_diag_connector_ready(struct vp_diag_ctx *c);
void vp_diag_connector_attached(struct vp_diag_ctx *c);
void vp_diag_same_region(struct vp_diag_ctx *c);
void vp_diag_egress_setting(struct vp_diag_ctx *c);
int vp_diag_firewall(struct vp_diag_ctx *c);
void vp_diag_target_listening(struct vp_diag_ctx *c);
void vp_diag_cloudsql_path(struct vp_diag_ctx *c);
void vp_diag_logs(struct vp_diag_ctx *c);
void vp_diag_capacity(struct vp_diag_ctx *c);

/* The firewall rule that would let the connector in: a gcloud command,
 * outranking 'deny' when not NULL. */
void vp_diag_allow_rule_fix(struct vp_diag_ctx *c, enum vp_diag_step s,
                            const struct vp_fw_rule *deny);

#endif
