/* The GCP VPC firewall, as documented, for one question: does this source
 * reach this port of this instance? Pure functions: no I/O, no clock.
 *
 * The semantics modelled (https://cloud.google.com/vpc/docs/firewalls and
 * the Compute API's Firewall resource):
 *  - only INGRESS rules of the target's own network are consulted; EGRESS
 *    rules (and the implied allow-egress rule) never decide ingress;
 *  - a disabled rule is ignored;
 *  - the matching rule with the lowest priority number decides; at equal
 *    priority a deny rule beats an allow rule;
 *  - when nothing matches, the implied deny-ingress rule decides: action
 *    deny, source 0.0.0.0/0, priority 65535 (the lowest). Being a deny, it
 *    also beats an allow rule of priority 65535, which is why the default
 *    network's rules use 65534;
 *  - a rule applies to every instance of the network unless it names
 *    targetTags (an instance with any one of them) or targetServiceAccounts
 *    (an instance running as any one of them);
 *  - sources: sourceRanges, sourceTags and sourceServiceAccounts are OR'ed:
 *    "if both properties are set, an inbound connection is allowed if the
 *    range or the tag of the source matches"; an ingress rule with none of
 *    them has the source 0.0.0.0/0;
 *  - protocols: "all", a name (tcp, udp, icmp, esp, ah, sctp, ipip) or an IP
 *    protocol number; ports are single ports and ranges ("5432",
 *    "8000-9000"); no ports means every port.
 *
 * The source is a range, not an address: a Serverless VPC Access connector
 * sends from any address of its /28. A rule matches by range only when the
 * rule's range contains the whole source range, since only then does it
 * match every packet the connector can send. A rule whose ranges merely
 * overlap it matches some connector instances and not others; it is
 * reported apart ("maybe") and never decides. */
#ifndef VP_FIREWALL_H
#define VP_FIREWALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/url.h"

#define VP_FW_PROTO_ALL (-1)
#define VP_FW_PROTO_TCP 6
#define VP_FW_PRIORITY_DEFAULT 1000
#define VP_FW_PRIORITY_IMPLIED 65535

enum vp_fw_direction {
	VP_FW_INGRESS,
	VP_FW_EGRESS,
};

enum vp_fw_action {
	VP_FW_ALLOW,
	VP_FW_DENY,
};

struct vp_fw_ports {
	uint16_t lo, hi;       /* inclusive */
};

/* One entry of a rule's allowed[] or denied[]. */
struct vp_fw_proto {
	int proto;             /* IP protocol number, or VP_FW_PROTO_ALL */
	struct vp_fw_ports *ports; /* owned; NULL and 0: every port */
	size_t n_ports;
};

struct vp_fw_strs {
	char **v;              /* owned array of owned strings */
	size_t n;
};

struct vp_fw_rule {
	char *name;            /* owned */
	char *network;         /* owned: as written, URL or name */
	enum vp_fw_direction direction;
	enum vp_fw_action action;
	uint16_t priority;
	bool disabled;
	struct vp_cidr *source_ranges; /* owned array */
	size_t n_source_ranges;
	struct vp_fw_strs source_tags;
	struct vp_fw_strs source_sas;
	struct vp_fw_strs target_tags;
	struct vp_fw_strs target_sas;
	struct vp_fw_proto *protos;    /* owned array: allowed[] or denied[] */
	size_t n_protos;
};

struct vp_fw_ruleset {
	struct vp_fw_rule *rules;      /* owned array */
	size_t n_rules;
};

/* What sends: its range (NULL when unknown), network tags, service accounts. */
struct vp_fw_source {
	const struct vp_cidr *range;   /* borrowed */
	const char *const *tags;       /* borrowed */
	size_t n_tags;
	const char *const *sas;        /* borrowed */
	size_t n_sas;
};

/* What receives: the instance's network, its tags and service accounts. */
struct vp_fw_target {
	const char *network;           /* borrowed: URL or name */
	const char *const *tags;       /* borrowed */
	size_t n_tags;
	const char *const *sas;        /* borrowed */
	size_t n_sas;
};

/* How a rule's source matched: bits. */
#define VP_FW_BY_RANGE 1u
#define VP_FW_BY_TAG   2u
#define VP_FW_BY_SA    4u

struct vp_fw_hit {
	size_t rule;           /* index into the ruleset */
	unsigned how;          /* VP_FW_BY_*: what matched (for a maybe: what might) */
};

struct vp_fw_verdict {
	bool allowed;
	/* The deciding rule: hits[0] unless 'implied' (no rule matched). */
	bool implied;
	/* Every matching rule, in evaluation order: priority, then deny
	 * before allow, then name. hits[0] decided; the others would have
	 * matched at a lower priority (or lost the tie). Owned. */
	struct vp_fw_hit *hits;
	size_t n_hits;
	/* Rules that may match some of the traffic but not all of it: their
	 * source ranges overlap the source range without containing it (per
	 * address, some connector instances match and others do not), or the
	 * source range is unknown. They never decide. Owned. */
	struct vp_fw_hit *maybe;
	size_t n_maybe;
	/* What was not consulted, for the evidence. */
	size_t n_disabled;     /* matching network, direction ingress, but disabled */
	size_t n_egress;       /* egress rules of the network */
	size_t n_other_network;
};

/* Evaluates ingress of protocol 'proto' to 'port' from 'src' to 'dst'.
 * Returns 0, or -ENOMEM (with '*out' empty). vp_fw_verdict_done() frees it. */
int vp_fw_evaluate(const struct vp_fw_ruleset *rs, const struct vp_fw_source *src,
                   const struct vp_fw_target *dst, int proto, uint16_t port,
                   struct vp_fw_verdict *out);
void vp_fw_verdict_done(struct vp_fw_verdict *v);

/* Whether two network references name the same network: a URL
 * (https://www.googleapis.com/compute/v1/projects/P/global/networks/N), a
 * path (projects/P/global/networks/N) or a bare name (N). Projects are
 * compared only when both name one in the same form (an id and a number can
 * name the same project). */
bool vp_fw_same_network(const char *a, const char *b);

/* The name of a network reference: what follows its last '/'. */
const char *vp_fw_network_name(const char *ref);

/* "tcp" -> 6, "all" -> VP_FW_PROTO_ALL, "17" -> 17; -EINVAL otherwise. */
int vp_fw_proto_parse(const char *text);
/* "tcp", "udp", ..., "all", or NULL for a number without a name. */
const char *vp_fw_proto_name(int proto);
/* "5432" or "8000-9000". Returns 0 or -EINVAL. */
int vp_fw_ports_parse(const char *text, struct vp_fw_ports *ret);
/* A CIDR of a firewall rule; a bare address is a /32 (/128) and host bits
 * below the prefix are cleared, as GCP does. Returns 0 or -EINVAL. */
int vp_fw_range_parse(const char *text, struct vp_cidr *ret);
/* Whether 'outer' contains all of 'inner'; whether they share an address. */
bool vp_fw_range_contains(const struct vp_cidr *outer, const struct vp_cidr *inner);
bool vp_fw_range_overlaps(const struct vp_cidr *a, const struct vp_cidr *b);

/* One line about a rule for evidence:
 * "'allow-pg' (priority 1000, allow tcp:5432, from 10.8.0.0/28)". */
void vp_fw_rule_describe(const struct vp_fw_rule *r, unsigned how, char *buf, size_t len);

void vp_fw_rule_done(struct vp_fw_rule *r);
void vp_fw_ruleset_done(struct vp_fw_ruleset *rs);

/* Whether one of the rule's allowed[]/denied[] entries takes 'proto' to
 * 'port'. */
bool vp_fw_proto_matches(const struct vp_fw_rule *r, int proto, uint16_t port);

/* ---- firewall policies (agent/firewall_policy.c) ----
 *
 * Hierarchical firewall policies (of the organization and its folders) and
 * network firewall policies, as `gcloud compute networks
 * get-effective-firewalls NETWORK --format=json` lists them next to the VPC
 * rules. The documented evaluation order
 * (https://cloud.google.com/firewall/docs/firewall-policies-rule-eval-order):
 *  1. hierarchical policies, the organization's first, then the folders'
 *     from the top down (the order in which the API lists them);
 *  2. regional system policies (Google-managed);
 *  3. with the network's networkFirewallPolicyEnforcementOrder
 *     AFTER_CLASSIC_FIREWALL (the default): the VPC firewall rules, then
 *     the global and the regional network firewall policies;
 *     BEFORE_CLASSIC_FIREWALL: those policies first, then the VPC rules;
 *  4. the implied deny of ingress.
 * Inside a policy the rule with the lowest priority number that matches
 * decides: allow and deny end the evaluation, goto_next hands it to the next
 * level; a policy in which no rule matches hands it on too. The VPC rules
 * decide as vp_fw_evaluate() says; when only the implied rule would, they
 * hand it on. Hierarchical rules have no source or target tags: sources are
 * srcIpRanges (and kinds this model cannot judge: secure tags, address
 * groups, FQDNs, geolocations, threat lists), targets are networks
 * (targetResources) or service accounts. A rule that matches only part of
 * the connector's range, or by what cannot be judged, leaves the answer
 * unknown when it comes before the deciding rule. */

enum vp_fw_pol_type {
	VP_FW_POL_HIERARCHY,
	VP_FW_POL_SYSTEM,              /* SYSTEM_GLOBAL, SYSTEM_REGIONAL */
	VP_FW_POL_NETWORK,             /* a global network firewall policy */
	VP_FW_POL_NETWORK_REGIONAL,
};

enum vp_fw_pol_action {
	VP_FW_POL_ALLOW,
	VP_FW_POL_DENY,
	VP_FW_POL_GOTO_NEXT,
	/* apply_security_profile_group: Cloud NGFW's inspection allows or
	 * denies, by what no export shows; a match leaves the answer unknown. */
	VP_FW_POL_INSPECT,
};

enum vp_fw_order {
	VP_FW_ORDER_UNKNOWN,           /* the network's setting is not known */
	VP_FW_ORDER_AFTER_CLASSIC,
	VP_FW_ORDER_BEFORE_CLASSIC,
};

struct vp_fw_pol_rule {
	/* name (ruleName, else "priority N"), direction, disabled,
	 * source_ranges, target_sas and protos; 'network' and the tags unused. */
	struct vp_fw_rule m;
	uint32_t priority;             /* 0..2147483647, unique in its policy */
	enum vp_fw_pol_action action;
	bool unnamed;                  /* no ruleName: m.name is "priority N" */
	struct vp_fw_strs target_networks; /* targetResources; none: every network */
	bool opaque_source;            /* sources this model cannot judge */
	bool opaque_target;            /* targetSecureTags */
};

struct vp_fw_policy {
	char *name;                    /* owned: the policy's id or name */
	char *short_name;              /* owned, may be NULL */
	enum vp_fw_pol_type type;
	struct vp_fw_pol_rule *rules;  /* owned array, by priority (the reader sorts it) */
	size_t n_rules;
};

struct vp_fw_policies {
	struct vp_fw_policy *v;        /* owned array, in the API's order */
	size_t n;
};

enum vp_fw_decider {
	VP_FW_DECIDED_POLICY,          /* a policy's allow or deny rule */
	VP_FW_DECIDED_VPC,             /* a VPC firewall rule */
	VP_FW_DECIDED_IMPLIED,         /* nothing matched: the implied deny */
	VP_FW_DECIDED_UNKNOWN,         /* see 'policy'/'rule', or unknown_order */
};

#define VP_FW_PASSED_MAX 8

struct vp_fw_pol_ref {
	size_t policy, rule;           /* indexes into vp_fw_policies */
};

struct vp_fw_chain {
	bool allowed;
	enum vp_fw_decider by;
	/* DECIDED_POLICY: the deciding rule; DECIDED_UNKNOWN without
	 * unknown_order: the rule that could not be judged. */
	struct vp_fw_pol_ref at;
	bool unknown_order;            /* the answer depends on the unknown order */
	bool policies_first;           /* network policies came before the VPC rules */
	/* goto_next rules that matched and handed the traffic on. */
	struct vp_fw_pol_ref passed[VP_FW_PASSED_MAX];
	size_t n_passed;
	bool vpc_consulted;            /* the VPC rules were reached; 'vpc' is theirs */
	struct vp_fw_verdict vpc;      /* owned */
};

/* The whole chain for ingress of 'proto' to 'port' from 'src' to 'dst':
 * 'pol' may be empty, 'rs' the VPC rules. With VP_FW_ORDER_UNKNOWN both
 * orders are tried, and an answer they disagree on is unknown. Returns 0 or
 * -ENOMEM; vp_fw_chain_done() frees '*out'. */
int vp_fw_evaluate_chain(const struct vp_fw_policies *pol, enum vp_fw_order order,
                         const struct vp_fw_ruleset *rs, const struct vp_fw_source *src,
                         const struct vp_fw_target *dst, int proto, uint16_t port,
                         struct vp_fw_chain *out);
void vp_fw_chain_done(struct vp_fw_chain *c);

/* "hierarchical", "system", "network", "regional network". */
const char *vp_fw_pol_type_name(enum vp_fw_pol_type t);
/* One line about a policy rule: "'deny-all' (priority 1000, deny all,
 * source 0.0.0.0/0) of hierarchical policy 'org-guard'"; a rule without a
 * ruleName is "without a name (priority 2147483645, goto_next all, ...". */
void vp_fw_pol_rule_describe(const struct vp_fw_policies *pol, struct vp_fw_pol_ref at,
                             char *buf, size_t len);
void vp_fw_policies_done(struct vp_fw_policies *p);

#endif
