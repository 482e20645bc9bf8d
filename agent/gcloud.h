/* Readers for the JSON that gcloud prints with --format=json, for
 * `vpcprobe diagnose` (issue 7). Each reader is strict about the types it
 * relies on and ignores every member it does not use (gcloud adds fields
 * over time). On failure it returns -errno and writes one sentence into
 * 'err' naming the file and the JSON path. README.md ("diagnose") gives the
 * gcloud command that writes each file. */
#ifndef VP_GCLOUD_H
#define VP_GCLOUD_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/firewall.h"
#include "agent/limits.h"
#include "config/url.h"

#define VP_GC_ANN_CONNECTOR  "run.googleapis.com/vpc-access-connector"
#define VP_GC_ANN_EGRESS     "run.googleapis.com/vpc-access-egress"
#define VP_GC_ANN_INTERFACES "run.googleapis.com/network-interfaces"
#define VP_GC_LABEL_LOCATION "cloud.googleapis.com/location"

/* The inputs of the evaluator (agent/diagnose.h) as files of an exports
 * directory (`diagnose --exports DIR`, agent.gcloud_exports), by their file
 * names: vp_gc_input_file(). The firewall step's inputs come first, up to
 * VP_GC_IN_PEERINGS: the status page's firewall line reads only those. */
enum vp_gc_input {
	VP_GC_IN_SERVICE,      /* service.json */
	VP_GC_IN_CONNECTOR,    /* connector.json */
	VP_GC_IN_RULES,        /* firewall-rules.json */
	VP_GC_IN_EFFECTIVE,    /* effective-firewalls.json */
	VP_GC_IN_NETWORK,      /* network.json */
	VP_GC_IN_INSTANCE,     /* instance.json */
	VP_GC_IN_SQL,          /* sql-instance.json */
	VP_GC_IN_PEERINGS,     /* peerings.json */
	VP_GC_IN_LOGS,         /* logs.json */
	VP_GC_IN_RESULTS,      /* results.jsonl */
	VP_GC_IN_MAX,
	VP_GC_IN_INVALID = -EINVAL,
};

/* The file name of an input in an exports directory; NULL for none. */
const char *vp_gc_input_file(enum vp_gc_input in);

enum vp_gc_egress {
	VP_GC_EGRESS_UNSET,    /* no annotation: Cloud Run's default, private-ranges-only */
	VP_GC_EGRESS_PRIVATE,  /* "private-ranges-only" */
	VP_GC_EGRESS_ALL,      /* "all-traffic" (older gcloud wrote "all") */
};

/* `gcloud run services describe SERVICE --region REGION --format=json`:
 * the Knative (v1) form, annotations under spec.template.metadata. */
struct vp_gc_service {
	char name[VP_GCLOUD_NAME_MAX];
	char region[VP_GCLOUD_NAME_MAX];      /* metadata.labels location; "" unknown */
	char connector[VP_GCLOUD_STR_MAX];    /* the annotation as written; "" none */
	char connector_name[VP_GCLOUD_NAME_MAX]; /* its last path component */
	char connector_region[VP_GCLOUD_NAME_MAX]; /* from a full path; "" otherwise */
	enum vp_gc_egress egress;
	/* Direct VPC egress (run.googleapis.com/network-interfaces). */
	bool direct_vpc;
	char dv_network[VP_GCLOUD_STR_MAX];
	char dv_subnet[VP_GCLOUD_STR_MAX];
	char dv_tags[VP_GCLOUD_TAGS_MAX][VP_GCLOUD_NAME_MAX];
	size_t n_dv_tags;
};

/* `gcloud compute networks vpc-access connectors describe NAME --region
 * REGION --format=json`. Numbers are -1 when absent. */
struct vp_gc_connector {
	char name[VP_GCLOUD_NAME_MAX];        /* from projects/P/locations/R/connectors/NAME */
	char region[VP_GCLOUD_NAME_MAX];
	char project[VP_GCLOUD_NAME_MAX];
	char state[VP_GCLOUD_NAME_MAX];       /* READY, CREATING, DELETING, ERROR, UPDATING */
	char network[VP_GCLOUD_STR_MAX];      /* "" when absent */
	bool has_range;
	struct vp_cidr range;                 /* ipCidrRange */
	char subnet[VP_GCLOUD_STR_MAX];       /* subnet.name, "" when absent */
	char machine_type[VP_GCLOUD_NAME_MAX];
	long long min_instances, max_instances, min_throughput, max_throughput;
};

struct vp_gc_nic {
	char name[VP_GCLOUD_NAME_MAX];
	char network[VP_GCLOUD_STR_MAX];
	char ip[46];                          /* networkIP, "" when absent */
};

/* `gcloud compute instances describe NAME --zone ZONE --format=json`. */
struct vp_gc_instance {
	char name[VP_GCLOUD_NAME_MAX];
	char zone[VP_GCLOUD_NAME_MAX];        /* the last component of the zone URL */
	struct vp_gc_nic nics[VP_GCLOUD_NICS_MAX];
	size_t n_nics;
	char tags[VP_GCLOUD_TAGS_MAX][VP_GCLOUD_NAME_MAX]; /* tags.items */
	size_t n_tags;
	char sas[VP_GCLOUD_SAS_MAX][VP_GCLOUD_STR_MAX];    /* serviceAccounts[].email */
	size_t n_sas;
};

struct vp_gc_sql_ip {
	char type[VP_GCLOUD_NAME_MAX];        /* PRIMARY, PRIVATE, OUTGOING */
	char ip[46];
};

/* `gcloud sql instances describe NAME --format=json`. */
struct vp_gc_sql {
	char name[VP_GCLOUD_NAME_MAX];
	char region[VP_GCLOUD_NAME_MAX];
	char project[VP_GCLOUD_NAME_MAX];
	struct vp_gc_sql_ip ips[VP_GCLOUD_IPS_MAX];
	size_t n_ips;
	char private_network[VP_GCLOUD_STR_MAX]; /* settings.ipConfiguration.privateNetwork */
};

struct vp_gc_peering {
	char network[VP_GCLOUD_STR_MAX];      /* projects/NUMBER/global/networks/NAME */
	char peering[VP_GCLOUD_NAME_MAX];
	char service[VP_GCLOUD_STR_MAX];      /* services/servicenetworking.googleapis.com */
	char ranges[VP_GCLOUD_RANGES_MAX][VP_GCLOUD_NAME_MAX];
	size_t n_ranges;
};

/* `gcloud services vpc-peerings list --network NETWORK --format=json`. */
struct vp_gc_peerings {
	struct vp_gc_peering *v;              /* owned */
	size_t n;
};

enum vp_gc_log_kind {
	VP_GC_LOG_FLOW,        /* VPC Flow Logs: jsonPayload.reporter */
	VP_GC_LOG_FIREWALL,    /* Firewall Rules Logging: jsonPayload.disposition */
};

struct vp_gc_log {
	enum vp_gc_log_kind kind;
	char src_ip[46];
	char dest_ip[46];
	int dest_port;                        /* -1 when absent */
	char reporter[16];                    /* flow: SRC, DEST, SRC_GATEWAY, DEST_GATEWAY */
	char disposition[16];                 /* firewall: ALLOWED, DENIED */
	char rule[VP_GCLOUD_NAME_MAX];        /* firewall: from rule_details.reference */
	char timestamp[40];
};

/* `gcloud logging read FILTER --format=json`: entries of VPC Flow Logs and
 * Firewall Rules Logging. Other entries are counted and skipped. */
struct vp_gc_logs {
	struct vp_gc_log *v;                  /* owned */
	size_t n;
	size_t n_other;                       /* entries of neither kind */
	size_t n_unread;                      /* past VP_GCLOUD_LOG_MAX */
};

/* One record of `vpcprobe check --json` (or of a live probe). */
struct vp_gc_result {
	char address[46];                     /* "" when none (a DNS failure) */
	uint16_t port;
	char verdict[24];
	char reason[48];
	char detail[VP_DETAIL_MAX];
};

/* The records of one target: matched by "url", else by host or address and
 * port. At most VP_GCLOUD_RESULTS_MAX are kept. */
struct vp_gc_results {
	struct vp_gc_result *v;               /* owned */
	size_t n;
};

/* With 'text' not NULL that text (NUL-terminated) is parsed instead of the
 * file, and 'path' only names it in messages: the agent opens its exports
 * itself (agent/status_fw_load.c). With NULL the file is opened by name and
 * read to its end, whatever it is: the command line takes pipes and FIFOs,
 * such as <(gcloud ...). */
int vp_gc_read_service(const char *path, const char *text, struct vp_gc_service *ret,
                       char *err, size_t errlen);
int vp_gc_read_connector(const char *path, const char *text, struct vp_gc_connector *ret,
                         char *err, size_t errlen);
int vp_gc_read_instance(const char *path, const char *text, struct vp_gc_instance *ret,
                        char *err, size_t errlen);
int vp_gc_read_sql(const char *path, const char *text, struct vp_gc_sql *ret, char *err,
                   size_t errlen);
int vp_gc_read_peerings(const char *path, struct vp_gc_peerings *ret, char *err, size_t errlen);
int vp_gc_read_logs(const char *path, struct vp_gc_logs *ret, char *err, size_t errlen);
int vp_gc_read_results(const char *path, const char *url, const char *host, uint16_t port,
                       struct vp_gc_results *ret, char *err, size_t errlen);

/* `gcloud compute firewall-rules list --format=json`. 'text' as for
 * vp_gc_read_service(). */
int vp_gc_read_firewall_rules(const char *path, const char *text, struct vp_fw_ruleset *ret,
                              char *err, size_t errlen);

/* Policies read from one effective-firewalls export: the organization,
 * up to ten levels of folders, the network's global and regional policies
 * and the system ones fit many times over. */
#define VP_GCLOUD_POLICIES_MAX 64

/* `gcloud compute networks get-effective-firewalls NETWORK --format=json`:
 * its "firewalls" (the VPC rules, as firewall-rules list prints them) into
 * 'rules' and its "firewallPolicys" (hierarchical, system and network
 * policies, each policy's rules sorted by priority) into 'policies'. Both
 * members may be absent. 'text' as for vp_gc_read_firewall_rules(). */
int vp_gc_read_effective_firewalls(const char *path, const char *text, struct vp_fw_ruleset *rules,
                                   struct vp_fw_policies *policies, char *err, size_t errlen);

/* `gcloud compute networks describe NETWORK --format=json`: the network's
 * firewall policy enforcement order. */
int vp_gc_read_network(const char *path, const char *text, enum vp_fw_order *ret, char *err,
                       size_t errlen);

void vp_gc_peerings_done(struct vp_gc_peerings *p);
void vp_gc_logs_done(struct vp_gc_logs *l);
void vp_gc_results_done(struct vp_gc_results *r);

/* Splits "projects/P/locations/R/connectors/N" (or a bare "N"). Returns 0,
 * or -EINVAL for anything else; parts that are absent become "". */
int vp_gc_connector_ref(const char *ref, char *project, char *region, char *name);

#endif
