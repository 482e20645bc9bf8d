/* Unit tests for agent/firewall.c, the GCP VPC firewall evaluator, and for
 * agent/gcloud_fw.c, the reader of `gcloud compute firewall-rules list
 * --format=json` that feeds it. Each row of the evaluator's table is a set
 * of rules as gcloud prints them, the connector's traffic, the target
 * instance, and what the documented semantics (agent/firewall.h) say must
 * decide; a bug fix adds a row. */
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
