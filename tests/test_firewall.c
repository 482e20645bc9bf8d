/* Unit tests for agent/firewall.c, the GCP VPC firewall evaluator, and for
 * agent/gcloud_fw.c, the reader of `gcloud compute firewall-rules list
 * --format=json` that feeds it. Each row of the evaluator's table is a set
 * of rules as gcloud prints them, the connector's traffic, the target
 * instance, and what the documented semantics (agent/firewall.h) say must
 * decide; a bug fix adds a row. The chain's table does the same for
 * hierarchical and network firewall policies (agent/firewall_policy.c) and
 * their reader. */
#include <arpa/inet.h>
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/firewall.h"
#include "agent/gcloud.h"

#define NET "https://www.googleapis.com/compute/v1/projects/shop/global/networks/default"
#define NET_OTHER "https://www.googleapis.com/compute/v1/projects/shop/global/networks/backend"

/* A rule of the default network: R("name", "more members"). */
#define R(name, more) "{\"name\":\"" name "\",\"network\":\"" NET "\"," more "}"
#define ALLOW_PG "\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"5432\"]}]"
#define DENY_PG "\"denied\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"5432\"]}]"
#define DENY_ALL "\"denied\":[{\"IPProtocol\":\"all\"}]"
#define FROM_CONN "\"sourceRanges\":[\"10.8.0.0/28\"]"
#define PRIO(n) "\"priority\":" #n
#define CONN_TAGS "vpc-connector,vpc-connector-us-central1-run-conn"

struct fw_case {
	const char *what;
	const char *rules;      /* JSON, as gcloud prints it */
	const char *src_range;  /* the connector's /28; NULL: unknown */
	const char *src_tags;   /* comma separated */
	const char *dst_tags;   /* the instance's network tags, comma separated */
	const char *dst_sas;    /* the instance's service accounts */
	int proto;
	uint16_t port;
	bool allowed;
	const char *decided;    /* the deciding rule's name, or "implied" */
	const char *hits;       /* every matching rule, in evaluation order */
	const char *maybe;      /* rules matching part of the range, or unchecked */
};

/* The usual question: the connector's range and tags to tcp:5432 of an
 * instance tagged "db" running as db@shop.iam.gserviceaccount.com. */
#define Q(what, rules, allowed, decided, hits, maybe) \
	{ what, rules, "10.8.0.0/28", CONN_TAGS, "db", "db@shop.iam.gserviceaccount.com", \
	  VP_FW_PROTO_TCP, 5432, allowed, decided, hits, maybe }

static const struct fw_case fw_cases[] = {
	/* The implied deny-ingress rule. */
	Q("no rule at all: the implied deny", "[]", false, "implied", "", ""),
	Q("an allow for another port only: implied deny",
	  "[" R("allow-ssh", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"22\"]}]") "]",
	  false, "implied", "", ""),
	Q("an allow at priority 65535 loses the tie with the implied deny",
	  "[" R("allow-last", PRIO(65535) "," FROM_CONN "," ALLOW_PG) "]",
	  false, "implied", "allow-last", ""),
	Q("an allow at 65534 (the default network's rules) beats the implied deny",
	  "[" R("allow-internal", PRIO(65534) ",\"sourceRanges\":[\"10.0.0.0/8\"]," ALLOW_PG) "]",
	  true, "allow-internal", "allow-internal", ""),
	Q("a deny for another port does not apply: implied deny",
	  "[" R("deny-ssh", PRIO(10) "," FROM_CONN ",\"denied\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"22\"]}]") "]",
	  false, "implied", "", ""),
	/* Source ranges: per address, the whole /28 must be inside. */
	Q("the connector's exact range", "[" R("allow-pg", FROM_CONN "," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("a range containing the /28", "[" R("allow-pg", "\"sourceRanges\":[\"10.8.0.0/16\"]," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("0.0.0.0/0", "[" R("allow-pg", "\"sourceRanges\":[\"0.0.0.0/0\"]," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("the first half of the /28 only: partial, never decides",
	  "[" R("allow-half", "\"sourceRanges\":[\"10.8.0.0/29\"]," ALLOW_PG) "]",
	  false, "implied", "", "allow-half"),
	Q("a single connector address only: partial",
	  "[" R("allow-one", "\"sourceRanges\":[\"10.8.0.3\"]," ALLOW_PG) "]",
	  false, "implied", "", "allow-one"),
	Q("a disjoint range", "[" R("allow-other", "\"sourceRanges\":[\"10.9.0.0/28\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	Q("host bits in a rule's range are cleared (10.8.0.5/24 is 10.8.0.0/24)",
	  "[" R("allow-pg", "\"sourceRanges\":[\"10.8.0.5/24\"]," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("an IPv6 range never holds the IPv4 connector",
	  "[" R("allow-v6", "\"sourceRanges\":[\"::/0\"]," ALLOW_PG) "]", false, "implied", "", ""),
	Q("one of several ranges suffices",
	  "[" R("allow-pg", "\"sourceRanges\":[\"192.168.0.0/16\",\"10.8.0.0/28\"]," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("a rule with no source at all has 0.0.0.0/0", "[" R("allow-any", ALLOW_PG) "]",
	  true, "allow-any", "allow-any", ""),
	/* Source tags and service accounts; ranges and tags are OR'ed. */
	Q("the universal tag vpc-connector",
	  "[" R("allow-conn", "\"sourceTags\":[\"vpc-connector\"]," ALLOW_PG) "]",
	  true, "allow-conn", "allow-conn", ""),
	Q("the connector's own tag vpc-connector-REGION-NAME",
	  "[" R("allow-conn", "\"sourceTags\":[\"vpc-connector-us-central1-run-conn\"]," ALLOW_PG) "]",
	  true, "allow-conn", "allow-conn", ""),
	Q("another connector's tag",
	  "[" R("allow-other", "\"sourceTags\":[\"vpc-connector-europe-west1-run-conn\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	Q("ranges and tags: the tag matches, the range does not",
	  "[" R("allow-mixed", "\"sourceRanges\":[\"192.168.0.0/16\"],\"sourceTags\":[\"vpc-connector\"]," ALLOW_PG) "]",
	  true, "allow-mixed", "allow-mixed", ""),
	Q("ranges and tags: the range matches, the tag does not",
	  "[" R("allow-mixed", FROM_CONN ",\"sourceTags\":[\"web\"]," ALLOW_PG) "]",
	  true, "allow-mixed", "allow-mixed", ""),
	Q("ranges and tags: neither matches",
	  "[" R("allow-mixed", "\"sourceRanges\":[\"192.168.0.0/16\"],\"sourceTags\":[\"web\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	Q("a tag-only rule does not fall back to 0.0.0.0/0",
	  "[" R("allow-web", "\"sourceTags\":[\"web\"]," ALLOW_PG) "]", false, "implied", "", ""),
	Q("source service accounts: the connector runs as none of them",
	  "[" R("allow-sa", "\"sourceServiceAccounts\":[\"vpc-connector\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	/* Targets: all instances, tags, service accounts. */
	Q("targetTags naming the instance's tag",
	  "[" R("allow-db", FROM_CONN ",\"targetTags\":[\"web\",\"db\"]," ALLOW_PG) "]",
	  true, "allow-db", "allow-db", ""),
	Q("targetTags of other instances",
	  "[" R("allow-web", FROM_CONN ",\"targetTags\":[\"web\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	Q("targetServiceAccounts naming the instance's account",
	  "[" R("allow-sa", FROM_CONN ",\"targetServiceAccounts\":[\"db@shop.iam.gserviceaccount.com\"]," ALLOW_PG) "]",
	  true, "allow-sa", "allow-sa", ""),
	Q("targetServiceAccounts of another account",
	  "[" R("allow-sa", FROM_CONN ",\"targetServiceAccounts\":[\"web@shop.iam.gserviceaccount.com\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	Q("a tag is not a service account: targetTags with the account's name",
	  "[" R("allow-x", FROM_CONN ",\"targetTags\":[\"db@shop.iam.gserviceaccount.com\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	Q("a service account is not a tag: targetServiceAccounts [\"db\"]",
	  "[" R("allow-x", FROM_CONN ",\"targetServiceAccounts\":[\"db\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	/* Priority: the lowest number wins; at a tie deny beats allow. */
	Q("a deny at 900 before an allow at 1000",
	  "[" R("allow-pg", PRIO(1000) "," FROM_CONN "," ALLOW_PG) "," R("deny-pg", PRIO(900) "," FROM_CONN "," DENY_PG) "]",
	  false, "deny-pg", "deny-pg,allow-pg", ""),
	Q("an allow at 900 before a deny at 1000",
	  "[" R("deny-all", PRIO(1000) ",\"sourceRanges\":[\"0.0.0.0/0\"]," DENY_ALL) "," R("allow-pg", PRIO(900) "," FROM_CONN "," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg,deny-all", ""),
	Q("allow and deny at the same priority: deny wins",
	  "[" R("allow-pg", PRIO(1000) "," FROM_CONN "," ALLOW_PG) "," R("deny-pg", PRIO(1000) "," FROM_CONN "," DENY_PG) "]",
	  false, "deny-pg", "deny-pg,allow-pg", ""),
	Q("a tie with a deny by tag and an allow by range: deny wins",
	  "[" R("a-allow", PRIO(500) "," FROM_CONN "," ALLOW_PG) "," R("z-deny", PRIO(500) ",\"sourceTags\":[\"vpc-connector\"]," DENY_PG) "]",
	  false, "z-deny", "z-deny,a-allow", ""),
	Q("no priority means 1000: an explicit 999 deny wins",
	  "[" R("allow-pg", FROM_CONN "," ALLOW_PG) "," R("deny-pg", PRIO(999) "," FROM_CONN "," DENY_PG) "]",
	  false, "deny-pg", "deny-pg,allow-pg", ""),
	Q("every matching rule listed in evaluation order",
	  "[" R("c", PRIO(2000) "," FROM_CONN "," DENY_PG) "," R("b", PRIO(1000) "," FROM_CONN "," ALLOW_PG) ","
	      R("a", PRIO(500) ",\"sourceTags\":[\"vpc-connector\"]," ALLOW_PG) "]",
	  true, "a", "a,b,c", ""),
	/* Disabled, egress and other networks' rules are not consulted. */
	Q("a disabled deny at 100 is ignored",
	  "[" R("deny-pg", PRIO(100) ",\"disabled\":true," FROM_CONN "," DENY_PG) "," R("allow-pg", FROM_CONN "," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("a disabled allow is ignored",
	  "[" R("allow-pg", "\"disabled\":true," FROM_CONN "," ALLOW_PG) "]", false, "implied", "", ""),
	Q("\"disabled\": false is enabled",
	  "[" R("allow-pg", "\"disabled\":false," FROM_CONN "," ALLOW_PG) "]", true, "allow-pg", "allow-pg", ""),
	Q("an egress allow never admits ingress",
	  "[" R("egress-pg", "\"direction\":\"EGRESS\",\"destinationRanges\":[\"10.8.0.0/28\"]," ALLOW_PG) "]",
	  false, "implied", "", ""),
	Q("an egress deny at priority 0 never denies ingress",
	  "[" R("egress-deny", PRIO(0) ",\"direction\":\"EGRESS\"," DENY_ALL) "," R("allow-pg", FROM_CONN "," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("an allow of another network",
	  "[{\"name\":\"allow-pg\",\"network\":\"" NET_OTHER "\"," FROM_CONN "," ALLOW_PG "}]",
	  false, "implied", "", ""),
	Q("a deny of another network",
	  "[{\"name\":\"deny-pg\",\"network\":\"" NET_OTHER "\"," PRIO(0) "," FROM_CONN "," DENY_PG "}," R("allow-pg", FROM_CONN "," ALLOW_PG) "]",
	  true, "allow-pg", "allow-pg", ""),
	Q("the same network, written as a path",
	  "[{\"name\":\"allow-pg\",\"network\":\"projects/shop/global/networks/default\"," FROM_CONN "," ALLOW_PG "}]",
	  true, "allow-pg", "allow-pg", ""),
	Q("a network of the same name in another project",
	  "[{\"name\":\"allow-pg\",\"network\":\"projects/other/global/networks/default\"," FROM_CONN "," ALLOW_PG "}]",
	  false, "implied", "", ""),
	/* Protocols and ports. */
	Q("protocol all, no ports", "[" R("allow-all", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"all\"}]") "]",
	  true, "allow-all", "allow-all", ""),
	Q("tcp without ports: every port", "[" R("allow-tcp", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"tcp\"}]") "]",
	  true, "allow-tcp", "allow-tcp", ""),
	Q("protocol number 6 is tcp", "[" R("allow-6", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"6\",\"ports\":[\"5432\"]}]") "]",
	  true, "allow-6", "allow-6", ""),
	Q("udp is not tcp", "[" R("allow-udp", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"udp\",\"ports\":[\"5432\"]}]") "]",
	  false, "implied", "", ""),
	Q("a second entry of allowed[] matches",
	  "[" R("allow-mix", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"udp\"},{\"IPProtocol\":\"tcp\",\"ports\":[\"22\",\"5432\"]}]") "]",
	  true, "allow-mix", "allow-mix", ""),
	Q("a port range holding the port",
	  "[" R("allow-range", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"5000-6000\"]}]") "]",
	  true, "allow-range", "allow-range", ""),
	Q("a port range starting at the port",
	  "[" R("allow-range", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"5432-5440\"]}]") "]",
	  true, "allow-range", "allow-range", ""),
	Q("a port range just past the port",
	  "[" R("allow-range", FROM_CONN ",\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"5433-6000\"]}]") "]",
	  false, "implied", "", ""),
	Q("a deny of all protocols beats an allow of tcp:5432 at the same priority",
	  "[" R("allow-pg", FROM_CONN "," ALLOW_PG) "," R("deny-all", "\"sourceRanges\":[\"0.0.0.0/0\"]," DENY_ALL) "]",
	  false, "deny-all", "deny-all,allow-pg", ""),
	/* Unknown source range (a connector made on a subnet): tags only. */
	{ "unknown range: a rule by range cannot be checked",
	  "[" R("allow-pg", FROM_CONN "," ALLOW_PG) "]", NULL, CONN_TAGS, "db", "",
	  VP_FW_PROTO_TCP, 5432, false, "implied", "", "allow-pg" },
	{ "unknown range: 0.0.0.0/0 holds every IPv4 connector",
	  "[" R("allow-pg", "\"sourceRanges\":[\"0.0.0.0/0\"]," ALLOW_PG) "]", NULL, CONN_TAGS, "db", "",
	  VP_FW_PROTO_TCP, 5432, true, "allow-pg", "allow-pg", "" },
	{ "unknown range: a tag still matches",
	  "[" R("allow-pg", "\"sourceTags\":[\"vpc-connector\"]," ALLOW_PG) "]", NULL, CONN_TAGS, "", "",
	  VP_FW_PROTO_TCP, 5432, true, "allow-pg", "allow-pg", "" },
	{ "an instance without tags: a targetTags rule misses it",
	  "[" R("allow-db", FROM_CONN ",\"targetTags\":[\"db\"]," ALLOW_PG) "]", "10.8.0.0/28", CONN_TAGS,
	  "", "", VP_FW_PROTO_TCP, 5432, false, "implied", "", "" },
};

#define N_FW_CASES ((int)(sizeof(fw_cases) / sizeof(fw_cases[0])))

/* Splits "a,b,c" into 'buf' and points 'v' at the parts. */
static size_t split(const char *s, char *buf, size_t len, const char **v, size_t max)
{
	size_t n = 0;

	snprintf(buf, len, "%s", s);
	for (char *p = buf; *p && n < max;) {
		char *comma = strchr(p, ',');

		v[n++] = p;
		if (!comma)
			break;
		*comma = '\0';
		p = comma + 1;
	}
	return n;
}

/* "a,b" of the rules that 'hits' names. */
static void names(const struct vp_fw_ruleset *rs, const struct vp_fw_hit *hits, size_t n, char *buf,
                  size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "", rs->rules[hits[i].rule].name);
}

START_TEST(test_fw_table)
{
	const struct fw_case *c = &fw_cases[_i];
	char err[1024], sbuf[256], tbuf[256], abuf[256], got[1024];
	const char *stags[8], *ttags[8], *tsas[8];
	struct vp_fw_ruleset rs = { 0 };
	struct vp_fw_verdict v;
	struct vp_cidr range;
	struct vp_fw_source src = { 0 };
	struct vp_fw_target dst = { .network = NET };

	ck_assert_msg(vp_gc_read_firewall_rules("rules.json", c->rules, &rs, err, sizeof(err)) == 0,
	              "%s: %s", c->what, err);
	if (c->src_range) {
		ck_assert_int_eq(vp_fw_range_parse(c->src_range, &range), 0);
		src.range = &range;
	}
	src.tags = stags;
	src.n_tags = split(c->src_tags, sbuf, sizeof(sbuf), stags, 8);
	dst.tags = ttags;
	dst.n_tags = split(c->dst_tags, tbuf, sizeof(tbuf), ttags, 8);
	dst.sas = tsas;
	dst.n_sas = split(c->dst_sas, abuf, sizeof(abuf), tsas, 8);
	ck_assert_int_eq(vp_fw_evaluate(&rs, &src, &dst, c->proto, c->port, &v), 0);
	ck_assert_msg(v.allowed == c->allowed, "%s: allowed %d", c->what, v.allowed);
	if (!strcmp(c->decided, "implied"))
		ck_assert_msg(v.implied, "%s: decided by a rule, not the implied deny", c->what);
	else
		ck_assert_msg(!v.implied && v.n_hits && !strcmp(rs.rules[v.hits[0].rule].name, c->decided),
		              "%s: not decided by '%s'", c->what, c->decided);
	names(&rs, v.hits, v.n_hits, got, sizeof(got));
	ck_assert_msg(!strcmp(got, c->hits), "%s: hits '%s', expected '%s'", c->what, got, c->hits);
	names(&rs, v.maybe, v.n_maybe, got, sizeof(got));
	ck_assert_msg(!strcmp(got, c->maybe), "%s: maybe '%s', expected '%s'", c->what, got, c->maybe);
	vp_fw_verdict_done(&v);
	vp_fw_ruleset_done(&rs);
}
END_TEST

/* What was not consulted is counted, for the evidence. */
START_TEST(test_fw_counts)
{
	static const char rules[] = "["
		R("d", "\"disabled\":true," FROM_CONN "," ALLOW_PG) ","
		R("e", "\"direction\":\"EGRESS\"," ALLOW_PG) ","
		"{\"name\":\"o\",\"network\":\"" NET_OTHER "\"," ALLOW_PG "}]";
	char err[512];
	struct vp_fw_ruleset rs = { 0 };
	struct vp_fw_verdict v;
	struct vp_fw_source src = { 0 };
	struct vp_fw_target dst = { .network = NET };

	ck_assert_int_eq(vp_gc_read_firewall_rules("rules.json", rules, &rs, err, sizeof(err)), 0);
	ck_assert_int_eq(vp_fw_evaluate(&rs, &src, &dst, VP_FW_PROTO_TCP, 5432, &v), 0);
	ck_assert(!v.allowed && v.implied);
	ck_assert_uint_eq(v.n_disabled, 1);
	ck_assert_uint_eq(v.n_egress, 1);
	ck_assert_uint_eq(v.n_other_network, 1);
	vp_fw_verdict_done(&v);
	vp_fw_ruleset_done(&rs);
}
END_TEST

struct net_case {
	const char *a, *b;
	bool same;
};

static const struct net_case net_cases[] = {
	{ NET, NET, true },
	{ NET, "default", true },
	{ NET, "projects/shop/global/networks/default", true },
	{ NET, "projects/123456789012/global/networks/default", true }, /* id vs number: name only */
	{ NET, "projects/other/global/networks/default", false },
	{ NET, NET_OTHER, false },
	{ "default", "backend", false },
	{ "projects/1/global/networks/a", "projects/2/global/networks/a", false },
};

START_TEST(test_same_network)
{
	const struct net_case *c = &net_cases[_i];

	ck_assert_msg(vp_fw_same_network(c->a, c->b) == c->same, "%s vs %s", c->a, c->b);
	ck_assert_msg(vp_fw_same_network(c->b, c->a) == c->same, "%s vs %s", c->b, c->a);
}
END_TEST

struct ports_case {
	const char *text;
	int ok;
	uint16_t lo, hi;
};

static const struct ports_case ports_cases[] = {
	{ "5432", 0, 5432, 5432 }, { "0", 0, 0, 0 }, { "65535", 0, 65535, 65535 },
	{ "8000-9000", 0, 8000, 9000 }, { "1-1", 0, 1, 1 }, { "65536", -1, 0, 0 },
	{ "9000-8000", -1, 0, 0 }, { "", -1, 0, 0 }, { "-5", -1, 0, 0 }, { "5-", -1, 0, 0 },
	{ "5a", -1, 0, 0 }, { " 5", -1, 0, 0 }, { "000005432", -1, 0, 0 }, { "1-2-3", -1, 0, 0 },
};

START_TEST(test_ports)
{
	const struct ports_case *c = &ports_cases[_i];
	struct vp_fw_ports p = { 0 };
	int r = vp_fw_ports_parse(c->text, &p);

	ck_assert_msg((r == 0) == (c->ok == 0), "'%s': %d", c->text, r);
	if (r == 0)
		ck_assert_msg(p.lo == c->lo && p.hi == c->hi, "'%s': %u-%u", c->text, p.lo, p.hi);
}
END_TEST

struct range_case {
	const char *outer, *inner;
	bool contains, overlaps;
};

static const struct range_case range_cases[] = {
	{ "10.8.0.0/28", "10.8.0.0/28", true, true },
	{ "10.8.0.0/16", "10.8.0.0/28", true, true },
	{ "10.8.0.0/29", "10.8.0.0/28", false, true },
	{ "10.8.0.8/29", "10.8.0.0/28", false, true },
	{ "10.8.0.16/28", "10.8.0.0/28", false, false },
	{ "0.0.0.0/0", "10.8.0.0/28", true, true },
	{ "10.8.0.7", "10.8.0.0/28", false, true },
	{ "::/0", "10.8.0.0/28", false, false },
	{ "fd00::/8", "fd00:198:18::/48", true, true },
};

START_TEST(test_ranges)
{
	const struct range_case *c = &range_cases[_i];
	struct vp_cidr o, in;

	ck_assert_int_eq(vp_fw_range_parse(c->outer, &o), 0);
	ck_assert_int_eq(vp_fw_range_parse(c->inner, &in), 0);
	ck_assert_msg(vp_fw_range_contains(&o, &in) == c->contains, "%s holds %s", c->outer, c->inner);
	ck_assert_msg(vp_fw_range_overlaps(&o, &in) == c->overlaps, "%s meets %s", c->outer, c->inner);
}
END_TEST

/* Broken input: each names the file and the JSON path. */
struct bad_case {
	const char *json;
	const char *error;
};

static const struct bad_case bad_cases[] = {
	{ "[{\"name\":\"a\"", "rules.json: line 1 column" },
	{ "", "rules.json: line 1 column" },
	{ "{\"name\":\"a\"}", "rules.json: .: expected an array (the output of gcloud compute firewall-rules list), got an object" },
	{ "[1]", "rules.json: [0]: expected an object (a firewall rule), got an integer" },
	{ "[{\"name\":\"a\"," ALLOW_PG "}]", "rules.json: [0].network: missing; expected a string" },
	{ "[{\"name\":7,\"network\":\"n\"," ALLOW_PG "}]", "rules.json: [0].name: expected a string, got an integer" },
	{ "[" R("a", "\"priority\":\"1000\"," ALLOW_PG) "]", "rules.json: [0].priority: expected an integer, got a string" },
	{ "[" R("a", "\"priority\":70000," ALLOW_PG) "]", "rules.json: [0].priority: 70000 not in 0..65535" },
	{ "[" R("a", "\"disabled\":\"no\"," ALLOW_PG) "]", "rules.json: [0].disabled: expected a boolean, got a string" },
	{ "[" R("a", "\"direction\":\"SIDEWAYS\"," ALLOW_PG) "]", "rules.json: [0].direction: 'SIDEWAYS' is neither INGRESS nor EGRESS" },
	{ "[" R("a", "\"sourceRanges\":\"10.8.0.0/28\"," ALLOW_PG) "]", "rules.json: [0].sourceRanges: expected an array, got a string" },
	{ "[" R("a", "\"sourceRanges\":[\"10.8.0.0/33\"]," ALLOW_PG) "]", "rules.json: [0].sourceRanges[0]: '10.8.0.0/33' is not an IP range" },
	{ "[" R("a", "\"sourceTags\":[\"ok\",5]," ALLOW_PG) "]", "rules.json: [0].sourceTags[1]: expected a string, got an integer" },
	{ "[" R("a", "\"targetTags\":{}," ALLOW_PG) "]", "rules.json: [0].targetTags: expected an array, got an object" },
	{ "[" R("a", "\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[5432]}]") "]", "rules.json: [0].allowed[0].ports[0]: expected a string, got an integer" },
	{ "[" R("a", "\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"99999\"]}]") "]", "rules.json: [0].allowed[0].ports[0]: '99999' is neither a port nor a range" },
	{ "[" R("a", "\"denied\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"22\",\"9-1\"]}]") "]", "rules.json: [0].denied[0].ports[1]: '9-1' is neither" },
	{ "[" R("a", "\"allowed\":[{\"IPProtocol\":\"foo\"}]") "]", "rules.json: [0].allowed[0]: IPProtocol 'foo' is neither all" },
	{ "[" R("a", "\"allowed\":[{\"ports\":[\"22\"]}]") "]", "rules.json: [0].allowed[0].IPProtocol: missing; expected a string" },
	{ "[" R("a", "\"allowed\":[{\"IPProtocol\":\"all\",\"ports\":[\"22\"]}]") "]", "rules.json: [0].allowed[0].ports: ports are given with IPProtocol \"all\"" },
	{ "[" R("a", ALLOW_PG "," DENY_PG) "]", "rules.json: [0]: expected exactly one of allowed and denied, got both" },
	{ "[" R("a", "\"priority\":1") "]", "rules.json: [0]: expected exactly one of allowed and denied, got neither" },
	{ "[" R("a", "\"allowed\":\"tcp:22\"") "]", "rules.json: [0].allowed: expected an array, got a string" },
	{ "[" R("ok", ALLOW_PG) "," R("b", "\"allowed\":[7]") "]", "rules.json: [1].allowed[0]: expected an object, got an integer" },
	{ "[{\"name\":\"a\",\"name\":\"b\"}]", "rules.json: line 1 column" },
};

START_TEST(test_bad_rules)
{
	const struct bad_case *c = &bad_cases[_i];
	char err[1024] = "";
	struct vp_fw_ruleset rs = { 0 };

	ck_assert_int_eq(vp_gc_read_firewall_rules("rules.json", c->json, &rs, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, c->error) != NULL, "'%s': got '%s', want '%s'", c->json, err, c->error);
	ck_assert_ptr_null(rs.rules);
}
END_TEST

/* The evidence line of a rule. */
START_TEST(test_describe)
{
	static const char rules[] = "[" R("allow-pg", PRIO(900) "," FROM_CONN ",\"targetTags\":[\"db\"],"
		"\"allowed\":[{\"IPProtocol\":\"tcp\",\"ports\":[\"5432\",\"8000-9000\"]},{\"IPProtocol\":\"icmp\"}]") "]";
	char err[512], buf[512];
	struct vp_fw_ruleset rs = { 0 };

	ck_assert_int_eq(vp_gc_read_firewall_rules("rules.json", rules, &rs, err, sizeof(err)), 0);
	vp_fw_rule_describe(&rs.rules[0], VP_FW_BY_RANGE, buf, sizeof(buf));
	ck_assert_str_eq(buf, "'allow-pg' (priority 900, allow tcp:5432;8000-9000,icmp, source range "
	                      "10.8.0.0/28, target tags db)");
	vp_fw_rule_describe(&rs.rules[0], VP_FW_BY_TAG, buf, 20);
	ck_assert_uint_eq(strlen(buf), 19);
	vp_fw_ruleset_done(&rs);
}
END_TEST

/* ---- firewall policies: the whole chain (agent/firewall_policy.c) ----
 *
 * Each row is an effective-firewalls document as `gcloud compute networks
 * get-effective-firewalls NETWORK --format=json` prints it, the network's
 * enforcement order, and what the documented evaluation order (firewall.h)
 * says must decide, for the usual question (Q above). */

/* A policy rule: PR("name", priority, "action", "match members", "more"). */
#define PR(name, prio, action, match, more) \
	"{\"ruleName\":\"" name "\",\"priority\":" #prio ",\"action\":\"" action "\"," \
	"\"direction\":\"INGRESS\",\"kind\":\"compute#firewallPolicyRule\",\"match\":{" match "}" more "}"
#define L4_PG "\"layer4Configs\":[{\"ipProtocol\":\"tcp\",\"ports\":[\"5432\"]}]"
#define L4_ALL "\"layer4Configs\":[{\"ipProtocol\":\"all\"}]"
#define SRC(range) "\"srcIpRanges\":[\"" range "\"]"
#define POL(type, name, rules) \
	"{\"name\":\"" name "\",\"shortName\":\"" name "\",\"type\":\"" type "\",\"rules\":[" rules "]}"
#define EFF(firewalls, policies) "{\"firewalls\":[" firewalls "],\"firewallPolicys\":[" policies "]}"
#define VPC_ALLOW R("vpc-allow-pg", FROM_CONN "," ALLOW_PG)
#define VPC_DENY R("vpc-deny-pg", PRIO(100) "," FROM_CONN "," DENY_PG)

#define AFTER VP_FW_ORDER_AFTER_CLASSIC
#define BEFORE VP_FW_ORDER_BEFORE_CLASSIC
#define UNKNOWN_ORDER VP_FW_ORDER_UNKNOWN

struct chain_case {
	const char *what;
	const char *doc;
	enum vp_fw_order order;
	bool allowed;
	enum vp_fw_decider by;
	const char *decided;    /* the policy rule or VPC rule that decided, "" */
	const char *passed;     /* goto_next rules passed, "a,b" */
	bool unknown_order;
};

static const struct chain_case chain_cases[] = {
	{ "no policy: the VPC rules decide", EFF(VPC_ALLOW, ""), AFTER, true,
	  VP_FW_DECIDED_VPC, "vpc-allow-pg", "", false },
	{ "no policy, no rule: the implied deny", EFF("", ""), AFTER, false,
	  VP_FW_DECIDED_IMPLIED, "", "", false },
	{ "a hierarchical deny comes before an allowing VPC rule",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny-pg", 1000, "deny", SRC("0.0.0.0/0") "," L4_PG, ""))),
	  AFTER, false, VP_FW_DECIDED_POLICY, "org-deny-pg", "", false },
	{ "a hierarchical allow comes before a denying VPC rule",
	  EFF(VPC_DENY, POL("HIERARCHY", "org", PR("org-allow-conn", 1000, "allow", SRC("10.8.0.0/16") "," L4_ALL, ""))),
	  AFTER, true, VP_FW_DECIDED_POLICY, "org-allow-conn", "", false },
	{ "goto_next hands the traffic to the VPC rules, past the policy's later deny",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org",
	      PR("org-deny-all", 2000, "deny", SRC("0.0.0.0/0") "," L4_ALL, "") ","
	      PR("org-delegate-internal", 100, "goto_next", SRC("10.0.0.0/8") "," L4_ALL, ""))),
	  AFTER, true, VP_FW_DECIDED_VPC, "vpc-allow-pg", "org-delegate-internal", false },
	{ "goto_next to the VPC rules, which have nothing: the implied deny",
	  EFF("", POL("HIERARCHY", "org", PR("org-delegate", 100, "goto_next", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  AFTER, false, VP_FW_DECIDED_IMPLIED, "", "org-delegate", false },
	{ "the organization delegates, the folder below denies",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-delegate", 100, "goto_next", SRC("0.0.0.0/0") "," L4_ALL, "")) ","
	      POL("HIERARCHY", "folder-prod", PR("prod-deny-pg", 500, "deny", SRC("10.8.0.0/28") "," L4_PG, ""))),
	  AFTER, false, VP_FW_DECIDED_POLICY, "prod-deny-pg", "org-delegate", false },
	{ "the organization's allow ends it: the folder's deny is never reached",
	  EFF("", POL("HIERARCHY", "org", PR("org-allow", 100, "allow", SRC("10.8.0.0/28") "," L4_PG, "")) ","
	      POL("HIERARCHY", "folder-prod", PR("prod-deny-pg", 1, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  AFTER, true, VP_FW_DECIDED_POLICY, "org-allow", "", false },
	{ "no rule of a policy matches: on to the next level",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny-ssh", 100, "deny", SRC("0.0.0.0/0") ","
	      "\"layer4Configs\":[{\"ipProtocol\":\"tcp\",\"ports\":[\"22\"]}]", ""))),
	  AFTER, true, VP_FW_DECIDED_VPC, "vpc-allow-pg", "", false },
	{ "inside a policy the lowest priority number decides, whatever the listing order",
	  EFF("", POL("HIERARCHY", "org",
	      PR("org-deny", 2000, "deny", SRC("0.0.0.0/0") "," L4_ALL, "") ","
	      PR("org-allow", 1000, "allow", SRC("10.8.0.0/28") "," L4_PG, ""))),
	  AFTER, true, VP_FW_DECIDED_POLICY, "org-allow", "", false },
	{ "priorities past 65535 are valid in a policy",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny", 2147483000, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  AFTER, false, VP_FW_DECIDED_POLICY, "org-deny", "", false },
	{ "targetResources of another network: the rule does not apply",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny-backend", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL,
	      ",\"targetResources\":[\"" NET_OTHER "\"]"))),
	  AFTER, true, VP_FW_DECIDED_VPC, "vpc-allow-pg", "", false },
	{ "targetResources naming the instance's network",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny-default", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL,
	      ",\"targetResources\":[\"projects/shop/global/networks/default\"]"))),
	  AFTER, false, VP_FW_DECIDED_POLICY, "org-deny-default", "", false },
	{ "targetServiceAccounts of another account",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny-web", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL,
	      ",\"targetServiceAccounts\":[\"web@shop.iam.gserviceaccount.com\"]"))),
	  AFTER, true, VP_FW_DECIDED_VPC, "vpc-allow-pg", "", false },
	{ "targetServiceAccounts naming the instance's account",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny-db", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL,
	      ",\"targetServiceAccounts\":[\"db@shop.iam.gserviceaccount.com\"]"))),
	  AFTER, false, VP_FW_DECIDED_POLICY, "org-deny-db", "", false },
	{ "a disabled policy rule is ignored",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL,
	      ",\"disabled\":true"))),
	  AFTER, true, VP_FW_DECIDED_VPC, "vpc-allow-pg", "", false },
	{ "an egress policy rule never decides ingress",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", "{\"ruleName\":\"org-egress\",\"priority\":1,\"action\":\"deny\","
	      "\"direction\":\"EGRESS\",\"match\":{\"destIpRanges\":[\"0.0.0.0/0\"]," L4_ALL "}}")),
	  AFTER, true, VP_FW_DECIDED_VPC, "vpc-allow-pg", "", false },
	{ "a deny for half of the connector's range: unknown, never a guess",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-deny-half", 100, "deny", SRC("10.8.0.0/29") "," L4_PG, ""))),
	  AFTER, false, VP_FW_DECIDED_UNKNOWN, "org-deny-half", "", false },
	{ "a source by secure tags cannot be judged: unknown",
	  EFF(VPC_ALLOW, POL("NETWORK", "net-pol", PR("tagged", 100, "deny",
	      "\"srcSecureTags\":[{\"name\":\"tagValues/123\"}]," L4_PG, ""))),
	  BEFORE, false, VP_FW_DECIDED_UNKNOWN, "tagged", "", false },
	{ "a disjoint range with a secure tag may still match by the tag: unknown",
	  EFF("", POL("HIERARCHY", "org", PR("org-tagged", 100, "allow", SRC("192.168.0.0/16") ","
	      "\"srcSecureTags\":[{\"name\":\"tagValues/1\"}]," L4_PG, ""))),
	  AFTER, false, VP_FW_DECIDED_UNKNOWN, "org-tagged", "", false },
	{ "apply_security_profile_group: inspection decides, unknown here",
	  EFF(VPC_ALLOW, POL("HIERARCHY", "org", PR("org-inspect", 100, "apply_security_profile_group",
	      SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  AFTER, false, VP_FW_DECIDED_UNKNOWN, "org-inspect", "", false },
	/* The network firewall policies and the enforcement order. */
	{ "AFTER_CLASSIC_FIREWALL: the VPC rule decides before the network policy",
	  EFF(VPC_ALLOW, POL("NETWORK", "net-pol", PR("net-deny", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  AFTER, true, VP_FW_DECIDED_VPC, "vpc-allow-pg", "", false },
	{ "BEFORE_CLASSIC_FIREWALL: the network policy decides first",
	  EFF(VPC_ALLOW, POL("NETWORK", "net-pol", PR("net-deny", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  BEFORE, false, VP_FW_DECIDED_POLICY, "net-deny", "", false },
	{ "an unknown order the answer depends on: unknown",
	  EFF(VPC_ALLOW, POL("NETWORK", "net-pol", PR("net-deny", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  UNKNOWN_ORDER, false, VP_FW_DECIDED_UNKNOWN, "", "", true },
	{ "an unknown order, and one order meets a rule that cannot be judged: unknown, naming it",
	  EFF(VPC_ALLOW, POL("NETWORK", "net-pol", PR("net-deny-half", 100, "deny", SRC("10.8.0.0/29") "," L4_PG, ""))),
	  UNKNOWN_ORDER, false, VP_FW_DECIDED_UNKNOWN, "net-deny-half", "", false },
	{ "an unknown order both orders agree on: known",
	  EFF("", POL("NETWORK", "net-pol", PR("net-deny", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  UNKNOWN_ORDER, false, VP_FW_DECIDED_POLICY, "net-deny", "", false },
	{ "AFTER_CLASSIC_FIREWALL: no VPC rule matches, the network policy allows",
	  EFF("", POL("NETWORK", "net-pol", PR("net-allow", 100, "allow", SRC("10.8.0.0/28") "," L4_PG, ""))),
	  AFTER, true, VP_FW_DECIDED_POLICY, "net-allow", "", false },
	{ "a VPC allow at 65535 is no decision: the network policy after it allows",
	  EFF(R("allow-last", PRIO(65535) "," FROM_CONN "," ALLOW_PG),
	      POL("NETWORK", "net-pol", PR("net-allow", 100, "allow", SRC("10.8.0.0/28") "," L4_PG, ""))),
	  AFTER, true, VP_FW_DECIDED_POLICY, "net-allow", "", false },
	{ "the global network policy before the regional one",
	  EFF("", POL("NETWORK_REGIONAL", "reg-pol", PR("reg-allow", 1, "allow", SRC("0.0.0.0/0") "," L4_ALL, "")) ","
	      POL("NETWORK", "net-pol", PR("net-deny", 100, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  AFTER, false, VP_FW_DECIDED_POLICY, "net-deny", "", false },
	{ "a system policy comes right after the hierarchy, before the VPC rules",
	  EFF(VPC_ALLOW, POL("SYSTEM_REGIONAL", "gke-sys", PR("sys-deny", 100, "deny", SRC("0.0.0.0/0") "," L4_PG, ""))),
	  AFTER, false, VP_FW_DECIDED_POLICY, "sys-deny", "", false },
	{ "goto_next in a network policy: on to the VPC rules (BEFORE_CLASSIC_FIREWALL)",
	  EFF(VPC_DENY, POL("NETWORK", "net-pol", PR("net-next", 10, "goto_next", SRC("0.0.0.0/0") "," L4_ALL, "") ","
	      PR("net-allow", 20, "allow", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  BEFORE, false, VP_FW_DECIDED_VPC, "vpc-deny-pg", "net-next", false },
	{ "a rule with no ruleName is named by its priority",
	  EFF("", POL("HIERARCHY", "org", "{\"priority\":42,\"action\":\"deny\",\"direction\":\"INGRESS\","
	      "\"match\":{" SRC("0.0.0.0/0") "," L4_ALL "}}")),
	  AFTER, false, VP_FW_DECIDED_POLICY, "priority 42", "", false },
};

/* "a,b" of the goto_next rules passed. */
static void passed_names(const struct vp_fw_policies *pol, const struct vp_fw_chain *c, char *buf,
                         size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->n_passed && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "",
		                      pol->v[c->passed[i].policy].rules[c->passed[i].rule].m.name);
}

START_TEST(test_chain)
{
	const struct chain_case *c = &chain_cases[_i];
	static const char *const stags[] = { "vpc-connector", "vpc-connector-us-central1-run-conn" };
	static const char *const ttags[] = { "db" };
	static const char *const tsas[] = { "db@shop.iam.gserviceaccount.com" };
	char err[1024], got[512];
	struct vp_fw_ruleset rs = { 0 };
	struct vp_fw_policies pol = { 0 };
	struct vp_fw_chain v;
	struct vp_cidr range;
	struct vp_fw_source src = { .range = &range, .tags = stags, .n_tags = 2 };
	struct vp_fw_target dst = { .network = NET, .tags = ttags, .n_tags = 1, .sas = tsas, .n_sas = 1 };
	const char *decided = "";

	ck_assert_int_eq(vp_fw_range_parse("10.8.0.0/28", &range), 0);
	ck_assert_msg(vp_gc_read_effective_firewalls("eff.json", c->doc, &rs, &pol, err, sizeof(err)) == 0,
	              "%s: %s", c->what, err);
	ck_assert_int_eq(vp_fw_evaluate_chain(&pol, c->order, &rs, &src, &dst, VP_FW_PROTO_TCP, 5432, &v), 0);
	if (v.by == VP_FW_DECIDED_POLICY || (v.by == VP_FW_DECIDED_UNKNOWN && !v.unknown_order &&
	                                     pol.n > 0))
		decided = pol.v[v.at.policy].rules[v.at.rule].m.name;
	else if (v.by == VP_FW_DECIDED_VPC)
		decided = rs.rules[v.vpc.hits[0].rule].name;
	ck_assert_msg(v.allowed == c->allowed, "%s: allowed %d", c->what, v.allowed);
	ck_assert_msg(v.by == c->by, "%s: decided by kind %d, expected %d", c->what, v.by, c->by);
	ck_assert_msg(!strcmp(decided, c->decided), "%s: decided by '%s', expected '%s'", c->what,
	              decided, c->decided);
	passed_names(&pol, &v, got, sizeof(got));
	ck_assert_msg(!strcmp(got, c->passed), "%s: passed '%s', expected '%s'", c->what, got, c->passed);
	ck_assert_msg(v.unknown_order == c->unknown_order, "%s: unknown_order %d", c->what, v.unknown_order);
	vp_fw_chain_done(&v);
	vp_fw_policies_done(&pol);
	vp_fw_ruleset_done(&rs);
}
END_TEST

/* Broken effective-firewalls exports: the file and the JSON path named. */
static const struct bad_case bad_eff_cases[] = {
	{ "[]", "eff.json: .: expected an object (the output of gcloud compute networks get-effective-firewalls), got an array" },
	{ "{\"firewalls\":{}}", "eff.json: .firewalls: expected an array, got an object" },
	{ "{\"firewalls\":[{\"name\":\"a\"}]}", "eff.json: .firewalls[0].network: missing" },
	{ "{\"firewallPolicys\":[7]}", "eff.json: .firewallPolicys[0]: expected an object (a firewall policy), got an integer" },
	{ "{\"firewallPolicys\":[{\"name\":\"p\",\"rules\":[]}]}", "eff.json: .firewallPolicys[0].type: missing" },
	{ EFF("", "{\"name\":\"p\",\"type\":\"FOLDER\",\"rules\":[]}"), "eff.json: .firewallPolicys[0].type: 'FOLDER' is none of" },
	{ EFF("", POL("HIERARCHY", "p", PR("r", 1, "permit", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  "eff.json: .firewallPolicys[0].rules[0].action: 'permit' is none of allow, deny, goto_next" },
	{ EFF("", POL("HIERARCHY", "p", PR("r", -1, "deny", SRC("0.0.0.0/0") "," L4_ALL, ""))),
	  "eff.json: .firewallPolicys[0].rules[0].priority: -1 not in 0..2147483647" },
	{ EFF("", POL("HIERARCHY", "p", PR("r", 1, "deny", SRC("0.0.0.0/0"), ""))),
	  "eff.json: .firewallPolicys[0].rules[0].match.layer4Configs: missing" },
	{ EFF("", POL("HIERARCHY", "p", PR("r", 1, "deny", SRC("0.0.0.0/0") ",\"layer4Configs\":[]", ""))),
	  "eff.json: .firewallPolicys[0].rules[0].match.layer4Configs: expected at least one" },
	{ EFF("", POL("HIERARCHY", "p", PR("r", 1, "deny", SRC("10.0.0.0/99") "," L4_ALL, ""))),
	  "eff.json: .firewallPolicys[0].rules[0].match.srcIpRanges[0]: '10.0.0.0/99' is not an IP range" },
	{ EFF("", POL("HIERARCHY", "p", PR("r", 1, "deny", SRC("0.0.0.0/0") ",\"layer4Configs\":[{\"IPProtocol\":\"tcp\"}]", ""))),
	  "eff.json: .firewallPolicys[0].rules[0].match.layer4Configs[0].ipProtocol: missing" },
	{ EFF("", POL("HIERARCHY", "p", "{\"priority\":1,\"action\":\"deny\"}")),
	  "eff.json: .firewallPolicys[0].rules[0].match: missing" },
	{ EFF("", POL("HIERARCHY", "p", PR("r", 1, "deny", SRC("0.0.0.0/0") "," L4_ALL, ",\"targetResources\":\"net\""))),
	  "eff.json: .firewallPolicys[0].rules[0].targetResources: expected an array, got a string" },
	{ "{\"firewallPolicys\":[{\"name\":\"p\",\"type\":\"HIERARCHY\",\"rules\":[1]}]", "eff.json: line 1 column" },
};

START_TEST(test_bad_effective)
{
	const struct bad_case *c = &bad_eff_cases[_i];
	char err[1024] = "";
	struct vp_fw_ruleset rs = { 0 };
	struct vp_fw_policies pol = { 0 };

	ck_assert_int_eq(vp_gc_read_effective_firewalls("eff.json", c->json, &rs, &pol, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_msg(strstr(err, c->error) != NULL, "'%s': got '%s', want '%s'", c->json, err, c->error);
	ck_assert_ptr_null(rs.rules);
	ck_assert_ptr_null(pol.v);
}
END_TEST

/* The evidence line of a policy rule. */
START_TEST(test_pol_describe)
{
	static const char doc[] = EFF("", POL("HIERARCHY", "org-guard",
		PR("deny-pg", 1000, "deny", SRC("0.0.0.0/0") "," L4_PG, "")));
	char err[512], buf[512];
	struct vp_fw_ruleset rs = { 0 };
	struct vp_fw_policies pol = { 0 };

	ck_assert_int_eq(vp_gc_read_effective_firewalls("eff.json", doc, &rs, &pol, err, sizeof(err)), 0);
	vp_fw_pol_rule_describe(&pol, (struct vp_fw_pol_ref){ 0, 0 }, buf, sizeof(buf));
	ck_assert_str_eq(buf, "'deny-pg' (priority 1000, deny tcp:5432, source 0.0.0.0/0) of "
	                      "hierarchical policy 'org-guard'");
	vp_fw_policies_done(&pol);
	vp_fw_ruleset_done(&rs);
}
END_TEST

/* The file names of an exports directory, shared by `diagnose --exports`
 * and the status page (which reads the inputs before VP_GC_IN_PEERINGS). */
START_TEST(test_input_files)
{
	ck_assert_str_eq(vp_gc_input_file(VP_GC_IN_SERVICE), "service.json");
	ck_assert_str_eq(vp_gc_input_file(VP_GC_IN_RULES), "firewall-rules.json");
	ck_assert_str_eq(vp_gc_input_file(VP_GC_IN_SQL), "sql-instance.json");
	ck_assert_str_eq(vp_gc_input_file(VP_GC_IN_PEERINGS), "peerings.json");
	ck_assert_str_eq(vp_gc_input_file(VP_GC_IN_RESULTS), "results.jsonl");
	for (int i = 0; i < VP_GC_IN_MAX; i++)
		ck_assert_ptr_nonnull(vp_gc_input_file(i));
	ck_assert_ptr_null(vp_gc_input_file(VP_GC_IN_MAX));
	ck_assert_ptr_null(vp_gc_input_file(VP_GC_IN_INVALID));
}
END_TEST

static Suite *firewall_suite(void)
{
	Suite *s = suite_create("firewall");
	TCase *tc = tcase_create("evaluate");
	TCase *tr = tcase_create("read");

	tcase_add_loop_test(tc, test_fw_table, 0, N_FW_CASES);
	tcase_add_test(tc, test_fw_counts);
	tcase_add_loop_test(tc, test_same_network, 0, (int)(sizeof(net_cases) / sizeof(net_cases[0])));
	tcase_add_loop_test(tc, test_ports, 0, (int)(sizeof(ports_cases) / sizeof(ports_cases[0])));
	tcase_add_loop_test(tc, test_ranges, 0, (int)(sizeof(range_cases) / sizeof(range_cases[0])));
	tcase_add_loop_test(tr, test_bad_rules, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tr, test_describe);
	tcase_add_loop_test(tc, test_chain, 0, (int)(sizeof(chain_cases) / sizeof(chain_cases[0])));
	tcase_add_loop_test(tr, test_bad_effective, 0,
	                    (int)(sizeof(bad_eff_cases) / sizeof(bad_eff_cases[0])));
	tcase_add_test(tr, test_pol_describe);
	tcase_add_test(tr, test_input_files);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(firewall_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
