/* The readers of gcloud's JSON exports for `vpcprobe diagnose`
 * (agent/gcloud.h) and the firewall evaluator (agent/firewall.h). The
 * first byte picks the reader, the rest is the export. Every reader but
 * the firewall rules' takes a path and reads the file itself (bounded by
 * VP_GCLOUD_FILE_MAX), so the input is written to a memfd and passed as
 * /proc/self/fd/N. A rule list that reads is evaluated against a few
 * fixed sources and targets; an effective-firewalls export, with its
 * policies, in every enforcement order. */
#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/firewall.h"
#include "agent/gcloud.h"
#include "tests/fuzz/fuzz.h"

/* New readers go last: the seeds' first bytes keep their meaning. */
enum { SERVICE, CONNECTOR, INSTANCE, SQL, PEERINGS, LOGS, RESULTS, FIREWALL, EFFECTIVE, NETWORK,
       READERS };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

static void check_verdict(const struct vp_fw_ruleset *rs, const struct vp_fw_verdict *v)
{
	VP_FUZZ_CHECK(v->n_hits <= rs->n_rules && v->n_maybe <= rs->n_rules);
	for (size_t i = 0; i < v->n_hits; i++) {
		VP_FUZZ_CHECK(v->hits[i].rule < rs->n_rules);
		VP_FUZZ_CHECK(i == 0 || rs->rules[v->hits[i - 1].rule].priority <=
		                        rs->rules[v->hits[i].rule].priority);
	}
	for (size_t i = 0; i < v->n_maybe; i++)
		VP_FUZZ_CHECK(v->maybe[i].rule < rs->n_rules);
	if (v->implied) {
		VP_FUZZ_CHECK(!v->allowed);
	} else {
		const struct vp_fw_rule *r;

		VP_FUZZ_CHECK(v->n_hits > 0);
		r = &rs->rules[v->hits[0].rule];
		VP_FUZZ_CHECK(v->allowed == (r->action == VP_FW_ALLOW));
		VP_FUZZ_CHECK(r->direction == VP_FW_INGRESS && !r->disabled);
	}
}

static void evaluate(const struct vp_fw_ruleset *rs)
{
	static const char *const tags[] = { "db", "web" };
	static const char *const sas[] = { "vm@p.iam.gserviceaccount.com" };
	struct vp_cidr range;
	char err[VP_ERR_MAX];
	struct vp_fw_source srcs[2] = {
		{ .range = &range, .tags = tags, .n_tags = 1 },
		{ .range = NULL },
	};
	struct vp_fw_target dsts[2] = {
		{ .network = "default", .tags = tags, .n_tags = 2, .sas = sas, .n_sas = 1 },
		{ .network = "https://www.googleapis.com/compute/v1/projects/p/global/networks/vpc" },
	};

	VP_FUZZ_CHECK(vp_cidr_parse("10.8.0.0/28", &range, err, sizeof(err)) == 0);
	for (size_t s = 0; s < 2; s++) {
		for (size_t d = 0; d < 2; d++) {
			struct vp_fw_verdict v;
			char line[512];

			if (vp_fw_evaluate(rs, &srcs[s], &dsts[d], VP_FW_PROTO_TCP, 5432, &v) < 0)
				continue;   /* out of memory */
			check_verdict(rs, &v);
			for (size_t i = 0; i < v.n_hits; i++) {
				vp_fw_rule_describe(&rs->rules[v.hits[i].rule], v.hits[i].how, line, sizeof(line));
				VP_FUZZ_CHECK(vp_fuzz_terminated(line, sizeof(line)));
			}
			vp_fw_verdict_done(&v);
		}
	}
}

static void check_chain(const struct vp_fw_policies *pol, const struct vp_fw_ruleset *rs,
                        const struct vp_fw_chain *c)
{
	char line[512];

	VP_FUZZ_CHECK(c->n_passed <= VP_FW_PASSED_MAX);
	for (size_t i = 0; i < c->n_passed; i++) {
		VP_FUZZ_CHECK(c->passed[i].policy < pol->n &&
		              c->passed[i].rule < pol->v[c->passed[i].policy].n_rules);
		vp_fw_pol_rule_describe(pol, c->passed[i], line, sizeof(line));
		VP_FUZZ_CHECK(vp_fuzz_terminated(line, sizeof(line)));
	}
	if (c->vpc_consulted)
		check_verdict(rs, &c->vpc);
	if (c->by == VP_FW_DECIDED_POLICY) {
		const struct vp_fw_pol_rule *r;

		VP_FUZZ_CHECK(c->at.policy < pol->n && c->at.rule < pol->v[c->at.policy].n_rules);
		r = &pol->v[c->at.policy].rules[c->at.rule];
		VP_FUZZ_CHECK(c->allowed == (r->action == VP_FW_POL_ALLOW));
		VP_FUZZ_CHECK(r->m.direction == VP_FW_INGRESS && !r->m.disabled);
		vp_fw_pol_rule_describe(pol, c->at, line, sizeof(line));
		VP_FUZZ_CHECK(vp_fuzz_terminated(line, sizeof(line)));
	} else if (c->by == VP_FW_DECIDED_VPC) {
		VP_FUZZ_CHECK(c->vpc_consulted && !c->vpc.implied && c->allowed == c->vpc.allowed);
	} else {
		VP_FUZZ_CHECK(!c->allowed);
	}
}

static void evaluate_chain(const struct vp_fw_policies *pol, const struct vp_fw_ruleset *rs)
{
	static const enum vp_fw_order orders[] = {
		VP_FW_ORDER_UNKNOWN, VP_FW_ORDER_AFTER_CLASSIC, VP_FW_ORDER_BEFORE_CLASSIC,
	};
	static const char *const sas[] = { "vm@p.iam.gserviceaccount.com" };
	struct vp_cidr range;
	char err[VP_ERR_MAX];
	struct vp_fw_source src = { .range = &range };
	struct vp_fw_target dst = { .network = "default", .sas = sas, .n_sas = 1 };

	VP_FUZZ_CHECK(vp_cidr_parse("10.8.0.0/28", &range, err, sizeof(err)) == 0);
	for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
		struct vp_fw_chain c;

		if (vp_fw_evaluate_chain(pol, orders[o], rs, &src, &dst, VP_FW_PROTO_TCP, 5432, &c) < 0)
			continue;   /* out of memory */
		check_chain(pol, rs, &c);
		vp_fw_chain_done(&c);
	}
}

static int read_one(int which, const char *path, const char *text, char *err, size_t errlen)
{
	int r;

	switch (which) {
	case SERVICE: {
		struct vp_gc_service s;

		r = vp_gc_read_service(path, NULL, &s, err, errlen);
		if (r == 0)
			VP_FUZZ_CHECK(s.n_dv_tags <= VP_GCLOUD_TAGS_MAX &&
			              vp_fuzz_terminated(s.connector, sizeof(s.connector)));
		return r;
	}
	case CONNECTOR: {
		struct vp_gc_connector k;

		r = vp_gc_read_connector(path, NULL, &k, err, errlen);
		if (r == 0)
			VP_FUZZ_CHECK(vp_fuzz_terminated(k.name, sizeof(k.name)) &&
			              (!k.has_range || k.range.family == AF_INET || k.range.family == AF_INET6));
		return r;
	}
	case INSTANCE: {
		struct vp_gc_instance in;

		r = vp_gc_read_instance(path, NULL, &in, err, errlen);
		if (r == 0)
			VP_FUZZ_CHECK(in.n_nics <= VP_GCLOUD_NICS_MAX && in.n_tags <= VP_GCLOUD_TAGS_MAX &&
			              in.n_sas <= VP_GCLOUD_SAS_MAX);
		return r;
	}
	case SQL: {
		struct vp_gc_sql q;

		r = vp_gc_read_sql(path, NULL, &q, err, errlen);
		if (r == 0)
			VP_FUZZ_CHECK(q.n_ips <= VP_GCLOUD_IPS_MAX);
		return r;
	}
	case PEERINGS: {
		struct vp_gc_peerings p = { 0 };

		r = vp_gc_read_peerings(path, &p, err, errlen);
		if (r == 0)
			VP_FUZZ_CHECK(p.n <= VP_GCLOUD_PEERINGS_MAX);
		vp_gc_peerings_done(&p);
		return r;
	}
	case LOGS: {
		struct vp_gc_logs l = { 0 };

		r = vp_gc_read_logs(path, &l, err, errlen);
		if (r == 0)
			VP_FUZZ_CHECK(l.n <= VP_GCLOUD_LOG_MAX);
		vp_gc_logs_done(&l);
		return r;
	}
	case RESULTS: {
		struct vp_gc_results res = { 0 };

		r = vp_gc_read_results(path, "postgres://10.20.0.3:5432", "10.20.0.3", 5432, &res, err,
		                       errlen);
		if (r == 0)
			VP_FUZZ_CHECK(res.n <= VP_GCLOUD_RESULTS_MAX);
		vp_gc_results_done(&res);
		return r;
	}
	case EFFECTIVE: {
		struct vp_fw_ruleset rs = { 0 };
		struct vp_fw_policies pol = { 0 };

		r = vp_gc_read_effective_firewalls("effective-firewalls.json", text, &rs, &pol, err,
		                                   errlen);
		if (r == 0) {
			VP_FUZZ_CHECK(pol.n <= VP_GCLOUD_POLICIES_MAX);
			for (size_t i = 0; i < pol.n; i++)
				for (size_t j = 1; j < pol.v[i].n_rules; j++)
					VP_FUZZ_CHECK(pol.v[i].rules[j - 1].priority <= pol.v[i].rules[j].priority);
			evaluate_chain(&pol, &rs);
		}
		vp_fw_policies_done(&pol);
		vp_fw_ruleset_done(&rs);
		return r;
	}
	case NETWORK: {
		enum vp_fw_order order = VP_FW_ORDER_UNKNOWN;

		r = vp_gc_read_network(path, NULL, &order, err, errlen);
		if (r == 0)
			VP_FUZZ_CHECK(order == VP_FW_ORDER_AFTER_CLASSIC ||
			              order == VP_FW_ORDER_BEFORE_CLASSIC);
		return r;
	}
	default: {
		struct vp_fw_ruleset rs = { 0 };

		r = vp_gc_read_firewall_rules("firewall-rules.json", text, &rs, err, errlen);
		if (r == 0) {
			VP_FUZZ_CHECK(rs.n_rules <= VP_GCLOUD_RULES_MAX);
			evaluate(&rs);
		}
		vp_fw_ruleset_done(&rs);
		return r;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[VP_ERR_MAX], path[64];
	int which, fd, r;
	char *text;

	if (size == 0)
		return 0;
	which = data[0] % READERS;
	text = vp_fuzz_str(data + 1, size - 1);
	fd = memfd_create("fuzz-export", MFD_CLOEXEC);
	VP_FUZZ_CHECK(fd >= 0 && text != NULL);
	VP_FUZZ_CHECK(size == 1 || write(fd, data + 1, size - 1) == (ssize_t)(size - 1));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	memset(err, 'x', sizeof(err));
	r = read_one(which, path, text, err, sizeof(err));
	if (r < 0)
		VP_FUZZ_CHECK(vp_fuzz_terminated(err, sizeof(err)) && err[0] != '\0');
	close(fd);
	free(text);
	return 0;
}
