/* The GCP VPC firewall evaluator: see firewall.h for the semantics and
 * their sources. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "agent/firewall.h"

static const struct {
	const char *name;
	int proto;
} proto_names[] = {
	{ "all", VP_FW_PROTO_ALL }, { "tcp", 6 }, { "udp", 17 }, { "icmp", 1 },
	{ "esp", 50 }, { "ah", 51 }, { "sctp", 132 }, { "ipip", 4 },
};

int vp_fw_proto_parse(const char *text)
{
	char *end;
	unsigned long v;

	for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
		if (!strcasecmp(text, proto_names[i].name))
			return proto_names[i].proto;
	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || v > 255)
		return -EINVAL;
	return (int)v;
}

const char *vp_fw_proto_name(int proto)
{
	for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
		if (proto_names[i].proto == proto)
			return proto_names[i].name;
	return NULL;
}

static int port_number(const char *s, const char *stop, uint16_t *ret)
{
	unsigned long v = 0;

	if (s == stop || stop - s > 5)
		return -EINVAL;
	for (const char *p = s; p < stop; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int vp_fw_ports_parse(const char *text, struct vp_fw_ports *ret)
{
	const char *dash = strchr(text, '-');
	const char *end = text + strlen(text);
	struct vp_fw_ports p;

	if (port_number(text, dash ? dash : end, &p.lo) < 0)
		return -EINVAL;
	p.hi = p.lo;
	if (dash && port_number(dash + 1, end, &p.hi) < 0)
		return -EINVAL;
	if (p.hi < p.lo)
		return -EINVAL;
	*ret = p;
	return 0;
}

/* Clears the bits of 'addr' below its first 'prefix'. */
static void mask(uint8_t *addr, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned keep = prefix >= 8 * (i + 1) ? 8 : (prefix > 8 * i ? prefix - 8 * (unsigned)i : 0);

		addr[i] &= (uint8_t)(0xff00u >> keep);
	}
}

int vp_fw_range_parse(const char *text, struct vp_cidr *ret)
{
	struct vp_cidr c = { 0 };
	char host[64];
	const char *slash = strchr(text, '/');
	size_t hl = slash ? (size_t)(slash - text) : strlen(text);
	uint16_t prefix;

	if (hl == 0 || hl >= sizeof(host) || strlen(text) >= sizeof(c.text))
		return -EINVAL;
	memcpy(host, text, hl);
	host[hl] = '\0';
	c.family = strchr(host, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(c.family, host, c.addr) != 1)
		return -EINVAL;
	c.prefix = c.family == AF_INET ? 32 : 128;
	if (slash) {
		if (port_number(slash + 1, slash + 1 + strlen(slash + 1), &prefix) < 0 ||
		    prefix > c.prefix)
			return -EINVAL;
		c.prefix = (uint8_t)prefix;
	}
	mask(c.addr, c.family == AF_INET ? 4 : 16, c.prefix);
	snprintf(c.text, sizeof(c.text), "%s", text);
	*ret = c;
	return 0;
}

/* Whether 'a' and 'b' agree on their first 'prefix' bits. */
static bool same_prefix(const struct vp_cidr *a, const struct vp_cidr *b, unsigned prefix)
{
	uint8_t x[16], y[16];
	size_t len = a->family == AF_INET ? 4 : 16;

	memcpy(x, a->addr, len);
	memcpy(y, b->addr, len);
	mask(x, len, prefix);
	mask(y, len, prefix);
	return memcmp(x, y, len) == 0;
}

bool vp_fw_range_contains(const struct vp_cidr *outer, const struct vp_cidr *inner)
{
	if (outer->family != inner->family || outer->prefix > inner->prefix)
		return false;
	return same_prefix(outer, inner, outer->prefix);
}

bool vp_fw_range_overlaps(const struct vp_cidr *a, const struct vp_cidr *b)
{
	if (a->family != b->family)
		return false;
	return same_prefix(a, b, a->prefix < b->prefix ? a->prefix : b->prefix);
}

const char *vp_fw_network_name(const char *ref)
{
	const char *slash = strrchr(ref, '/');

	return slash ? slash + 1 : ref;
}

/* The project of "…projects/P/…", as a pointer and a length; 0 when none. */
static size_t network_project(const char *ref, const char **ret)
{
	const char *p = strstr(ref, "projects/");
	const char *end;

	if (!p || (p != ref && p[-1] != '/'))
		return 0;
	p += strlen("projects/");
	end = strchr(p, '/');
	if (!end)
		return 0;
	*ret = p;
	return (size_t)(end - p);
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

bool vp_fw_same_network(const char *a, const char *b)
{
	const char *pa = NULL, *pb = NULL;
	size_t la, lb;

	if (strcmp(vp_fw_network_name(a), vp_fw_network_name(b)) != 0)
		return false;
	la = network_project(a, &pa);
	lb = network_project(b, &pb);
	/* "my-project" and "123456789012" may be one project: only like
	 * forms are compared. */
	if (!la || !lb || all_digits(pa, la) != all_digits(pb, lb))
		return true;
	return la == lb && memcmp(pa, pb, la) == 0;
}

static bool strs_meet(const struct vp_fw_strs *list, const char *const *want, size_t n)
{
	for (size_t i = 0; i < list->n; i++)
		for (size_t j = 0; j < n; j++)
			if (!strcmp(list->v[i], want[j]))
				return true;
	return false;
}

bool vp_fw_proto_matches(const struct vp_fw_rule *r, int proto, uint16_t port)
{
	for (size_t i = 0; i < r->n_protos; i++) {
		const struct vp_fw_proto *p = &r->protos[i];

		if (p->proto != VP_FW_PROTO_ALL && p->proto != proto)
			continue;
		if (p->n_ports == 0 || p->proto == VP_FW_PROTO_ALL)
			return true;
		for (size_t j = 0; j < p->n_ports; j++)
			if (port >= p->ports[j].lo && port <= p->ports[j].hi)
				return true;
	}
	return false;
}

static bool target_matches(const struct vp_fw_rule *r, const struct vp_fw_target *dst)
{
	if (r->target_tags.n)
		return strs_meet(&r->target_tags, dst->tags, dst->n_tags);
	if (r->target_sas.n)
		return strs_meet(&r->target_sas, dst->sas, dst->n_sas);
	return true;
}

/* The source criteria a rule's sources meet (VP_FW_BY_*), and in '*maybe'
 * those it might meet: a range that overlaps without containing, or any
 * range but 0.0.0.0/0 when the source range is unknown. */
static unsigned source_matches(const struct vp_fw_rule *r, const struct vp_fw_source *src,
                               unsigned *maybe)
{
	static const struct vp_cidr any4 = { .family = AF_INET, .prefix = 0, .text = "0.0.0.0/0" };
	const struct vp_cidr *ranges = r->source_ranges;
	size_t n = r->n_source_ranges;
	unsigned how = 0;

	*maybe = 0;
	/* An ingress rule with no source at all has the source 0.0.0.0/0. */
	if (n == 0 && r->source_tags.n == 0 && r->source_sas.n == 0) {
		ranges = &any4;
		n = 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!src->range) {
			/* Connectors send IPv4 only: 0.0.0.0/0 takes them all. */
			if (ranges[i].family == AF_INET && ranges[i].prefix == 0)
				how |= VP_FW_BY_RANGE;
			else
				*maybe |= VP_FW_BY_RANGE;
		} else if (vp_fw_range_contains(&ranges[i], src->range)) {
			how |= VP_FW_BY_RANGE;
		} else if (vp_fw_range_overlaps(&ranges[i], src->range)) {
			*maybe |= VP_FW_BY_RANGE;
		}
	}
	if (strs_meet(&r->source_tags, src->tags, src->n_tags))
		how |= VP_FW_BY_TAG;
	if (strs_meet(&r->source_sas, src->sas, src->n_sas))
		how |= VP_FW_BY_SA;
	return how;
}

struct sort_hit {
	const struct vp_fw_rule *r;  /* borrowed */
	struct vp_fw_hit hit;
};

/* Evaluation order: priority, deny before allow, then name and index so
 * that the order is total and the evidence reproducible. */
static int hit_cmp(const void *a, const void *b)
{
	const struct sort_hit *x = a, *y = b;
	int c;

	if (x->r->priority != y->r->priority)
		return x->r->priority < y->r->priority ? -1 : 1;
	if (x->r->action != y->r->action)
		return x->r->action == VP_FW_DENY ? -1 : 1;
	c = strcmp(x->r->name, y->r->name);
	if (c)
		return c;
	return x->hit.rule < y->hit.rule ? -1 : (x->hit.rule > y->hit.rule);
}

static struct vp_fw_hit *sorted_hits(const struct vp_fw_ruleset *rs, struct sort_hit *s, size_t n)
{
	struct vp_fw_hit *out = calloc(n ? n : 1, sizeof(*out));

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i].r = &rs->rules[s[i].hit.rule];
	qsort(s, n, sizeof(*s), hit_cmp);
	for (size_t i = 0; i < n; i++)
		out[i] = s[i].hit;
	return out;
}

/* Sorts every applicable rule into 'hits' or 'maybe'. */
static void classify_rules(const struct vp_fw_ruleset *rs, const struct vp_fw_source *src,
                           const struct vp_fw_target *dst, int proto, uint16_t port,
                           struct sort_hit *hits, struct sort_hit *maybe, struct vp_fw_verdict *v)
{
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct vp_fw_rule *r = &rs->rules[i];
		unsigned how, might;

		if (!vp_fw_same_network(r->network, dst->network)) {
			v->n_other_network++;
			continue;
		}
		if (r->direction != VP_FW_INGRESS) {
			v->n_egress++;
			continue;
		}
		if (r->disabled) {
			v->n_disabled++;
			continue;
		}
		if (!target_matches(r, dst) || !vp_fw_proto_matches(r, proto, port))
			continue;
		how = source_matches(r, src, &might);
		if (how)
			hits[v->n_hits++].hit = (struct vp_fw_hit){ .rule = i, .how = how };
		else if (might)
			maybe[v->n_maybe++].hit = (struct vp_fw_hit){ .rule = i, .how = might };
	}
}

int vp_fw_evaluate(const struct vp_fw_ruleset *rs, const struct vp_fw_source *src,
                   const struct vp_fw_target *dst, int proto, uint16_t port,
                   struct vp_fw_verdict *out)
{
	struct vp_fw_verdict v = { 0 };
	size_t n = rs->n_rules ? rs->n_rules : 1;
	struct sort_hit *hits = calloc(n, sizeof(*hits));
	struct sort_hit *maybe = calloc(n, sizeof(*maybe));
	int r = -ENOMEM;

	if (!hits || !maybe)
		goto out;
	classify_rules(rs, src, dst, proto, port, hits, maybe, &v);
	v.hits = sorted_hits(rs, hits, v.n_hits);
	v.maybe = sorted_hits(rs, maybe, v.n_maybe);
	if (!v.hits || !v.maybe) {
		vp_fw_verdict_done(&v);
		goto out;
	}
	/* The implied deny-ingress rule sits at 65535; as a deny it also wins
	 * a tie with an allow rule of that priority. */
	v.implied = v.n_hits == 0 ||
	            (rs->rules[v.hits[0].rule].action == VP_FW_ALLOW &&
	             rs->rules[v.hits[0].rule].priority == VP_FW_PRIORITY_IMPLIED);
	v.allowed = !v.implied && rs->rules[v.hits[0].rule].action == VP_FW_ALLOW;
	*out = v;
	r = 0;
out:
	free(hits);
	free(maybe);
	return r;
}

void vp_fw_verdict_done(struct vp_fw_verdict *v)
{
	free(v->hits);
	free(v->maybe);
	*v = (struct vp_fw_verdict){ 0 };
}

/* Appends to a bounded buffer; output past its end is cut. */
static void append(char *buf, size_t len, size_t *o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*o + 1 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *o, len - *o, fmt, ap);
	va_end(ap);
	if (n > 0)
		*o = *o + (size_t)n < len ? *o + (size_t)n : len - 1;
}

static void describe_protos(const struct vp_fw_rule *r, char *buf, size_t len, size_t *o)
{
	for (size_t i = 0; i < r->n_protos; i++) {
		const struct vp_fw_proto *p = &r->protos[i];
		const char *name = vp_fw_proto_name(p->proto);

		if (name)
			append(buf, len, o, "%s%s", i ? "," : " ", name);
		else
			append(buf, len, o, "%sproto-%d", i ? "," : " ", p->proto);
		for (size_t j = 0; j < p->n_ports && j < 4; j++) {
			if (p->ports[j].lo == p->ports[j].hi)
				append(buf, len, o, "%s%u", j ? ";" : ":", p->ports[j].lo);
			else
				append(buf, len, o, "%s%u-%u", j ? ";" : ":", p->ports[j].lo, p->ports[j].hi);
		}
		if (p->n_ports > 4)
			append(buf, len, o, ";...");
	}
}

void vp_fw_rule_describe(const struct vp_fw_rule *r, unsigned how, char *buf, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	append(buf, len, &o, "'%s' (priority %u, %s", r->name, r->priority,
	       r->action == VP_FW_ALLOW ? "allow" : "deny");
	describe_protos(r, buf, len, &o);
	if (how & VP_FW_BY_RANGE) {
		append(buf, len, &o, ", source range");
		for (size_t i = 0; i < r->n_source_ranges && i < 3; i++)
			append(buf, len, &o, " %s", r->source_ranges[i].text);
		if (r->n_source_ranges == 0)
			append(buf, len, &o, " 0.0.0.0/0 (no source given)");
		else if (r->n_source_ranges > 3)
			append(buf, len, &o, " ...");
	}
	if ((how & VP_FW_BY_TAG) && r->source_tags.n)
		append(buf, len, &o, ", source tags %s%s", r->source_tags.v[0],
		       r->source_tags.n > 1 ? ",..." : "");
	if ((how & VP_FW_BY_SA) && r->source_sas.n)
		append(buf, len, &o, ", source service accounts %s%s", r->source_sas.v[0],
		       r->source_sas.n > 1 ? ",..." : "");
	if (r->target_tags.n)
		append(buf, len, &o, ", target tags %s%s", r->target_tags.v[0],
		       r->target_tags.n > 1 ? ",..." : "");
	else if (r->target_sas.n)
		append(buf, len, &o, ", target service account %s%s", r->target_sas.v[0],
		       r->target_sas.n > 1 ? ",..." : "");
	append(buf, len, &o, ")");
}

static void strs_done(struct vp_fw_strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

void vp_fw_rule_done(struct vp_fw_rule *r)
{
	free(r->name);
	free(r->network);
	free(r->source_ranges);
	strs_done(&r->source_tags);
	strs_done(&r->source_sas);
	strs_done(&r->target_tags);
	strs_done(&r->target_sas);
	for (size_t i = 0; i < r->n_protos; i++)
		free(r->protos[i].ports);
	free(r->protos);
	*r = (struct vp_fw_rule){ 0 };
}

void vp_fw_ruleset_done(struct vp_fw_ruleset *rs)
{
	for (size_t i = 0; i < rs->n_rules; i++)
		vp_fw_rule_done(&rs->rules[i]);
	free(rs->rules);
	rs->rules = NULL;
	rs->n_rules = 0;
}
