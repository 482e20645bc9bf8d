/* Unit tests for the status endpoints' pure parts: HTML and URL escaping,
 * Prometheus label escaping, the "failing for N min" phrase, the sparkline,
 * the routing table (method x path -> status), the token check, the loop
 * watch, the refusal to open the page to the network without a token, the
 * next-step commands, and the page, the JSON and /metrics built from a
 * scheduler whose results hold hostile text. Each table row is one case; a
 * bug fix adds a row. */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/status_int.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define MIN_MS (60 * 1000)
#define NOW ((int64_t)1795000000000)   /* 2026-11-18, any fixed time */

/* ---- escaping ---- */

struct esc_case {
	const char *in;
	const char *out;
};

static const struct esc_case html_cases[] = {
	{ "", "" },
	{ "orders-db", "orders-db" },
	{ "<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;" },
	{ "a&b", "a&amp;b" },
	{ "\"quoted\" 'single'", "&quot;quoted&quot; &#39;single&#39;" },
	{ "</script><script>", "&lt;/script&gt;&lt;script&gt;" },
	{ "caf\xc3\xa9 \xe2\x9c\x93", "caf\xc3\xa9 \xe2\x9c\x93" },          /* valid UTF-8 kept */
	{ "tab\tand\nline", "tab\tand\nline" },
	{ "bell\x07", "bell\xef\xbf\xbd" },                                  /* C0 control */
	{ "del\x7f", "del\xef\xbf\xbd" },
	{ "c1\xc2\x85", "c1\xef\xbf\xbd" },                                  /* C1 as UTF-8 */
	{ "bad\xff<", "bad\xef\xbf\xbd&lt;" },                               /* invalid byte */
	{ "over\xc0\xbc", "over\xef\xbf\xbd\xef\xbf\xbd" },                  /* overlong '<' */
	{ "cut\xe2\x9c", "cut\xef\xbf\xbd\xef\xbf\xbd" },                    /* cut sequence */
	{ "surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	{ "-ERR <b>bold</b>", "-ERR &lt;b&gt;bold&lt;/b&gt;" },
};

START_TEST(test_html_escape)
{
	const struct esc_case *c = &html_cases[_i];
	struct vp_buf b;

	vp_buf_init(&b, 1024);
	ck_assert_int_eq(vp_buf_html(&b, c->in), 0);
	ck_assert_str_eq(b.data ? b.data : "", c->out);
	vp_buf_done(&b);
}
END_TEST

static const struct esc_case url_cases[] = {
	{ "orders-db", "orders-db" },
	{ "a b/c", "a%20b%2Fc" },
	{ "<img src=x>", "%3Cimg%20src%3Dx%3E" },
	{ "caf\xc3\xa9", "caf%C3%A9" },
	{ "x~y_z.1", "x~y_z.1" },
};

START_TEST(test_url_encode)
{
	const struct esc_case *c = &url_cases[_i];
	struct vp_buf b;

	vp_buf_init(&b, 1024);
	ck_assert_int_eq(vp_buf_urlenc(&b, c->in), 0);
	ck_assert_str_eq(b.data, c->out);
	vp_buf_done(&b);
}
END_TEST

static const struct esc_case prom_cases[] = {
	{ "orders-db", "orders-db" },
	{ "say \"hi\"", "say \\\"hi\\\"" },
	{ "C:\\path", "C:\\\\path" },
	{ "two\nlines", "two\\nlines" },
	{ "\\\"\n", "\\\\\\\"\\n" },
	{ "<img src=x>", "<img src=x>" },      /* the text format needs no HTML escaping */
	{ "caf\xc3\xa9", "caf\xc3\xa9" },
};

START_TEST(test_prom_label)
{
	const struct esc_case *c = &prom_cases[_i];
	struct vp_buf b;

	vp_buf_init(&b, 1024);
	ck_assert_int_eq(vp_prom_label(&b, c->in), 0);
	ck_assert_str_eq(b.data, c->out);
	vp_buf_done(&b);
}
END_TEST

START_TEST(test_buf_limit)
{
	struct vp_buf b;
	size_t len = 0;
	char *s;

	vp_buf_init(&b, 8);
	ck_assert_int_eq(vp_buf_puts(&b, "12345678"), 0);
	ck_assert_int_eq(vp_buf_puts(&b, "9"), -ENOBUFS);
	ck_assert_int_eq(vp_buf_printf(&b, "%d", 1), -ENOBUFS);   /* sticky */
	ck_assert_str_eq(b.data, "12345678");
	ck_assert_ptr_null(vp_buf_steal(&b, &len));                /* an error gives nothing */
	vp_buf_init(&b, 7);
	ck_assert_int_eq(vp_buf_html(&b, "<<"), -ENOBUFS);         /* "&lt;&lt;" is 8 bytes */
	vp_buf_done(&b);
	vp_buf_init(&b, 8);
	ck_assert_int_eq(vp_buf_html(&b, "<<"), 0);
	s = vp_buf_steal(&b, &len);
	ck_assert_str_eq(s, "&lt;&lt;");
	ck_assert_uint_eq(len, 8);
	free(s);
	vp_buf_done(&b);
}
END_TEST

/* ---- "failing for 12 min" ---- */

struct since_case {
	const char *prefix;
	int64_t changed_ms;
	int64_t now_ms;
	const char *out;
};

static const struct since_case since_cases[] = {
	{ "failing for ", NOW, NOW, "failing for 0 s" },
	{ "failing for ", NOW - 999, NOW, "failing for 0 s" },
	{ "failing for ", NOW - 40 * 1000, NOW, "failing for 40 s" },
	{ "failing for ", NOW - 59999, NOW, "failing for 59 s" },
	{ "failing for ", NOW - MIN_MS, NOW, "failing for 1 min" },
	{ "failing for ", NOW - 12 * MIN_MS - 30000, NOW, "failing for 12 min" },
	{ "failing for ", NOW - 59 * MIN_MS - 59999, NOW, "failing for 59 min" },
	{ "ok for ", NOW - 60 * MIN_MS, NOW, "ok for 1 h" },
	{ "ok for ", NOW - 185 * MIN_MS, NOW, "ok for 3 h 5 min" },
	{ "ok for ", NOW - 47 * 60 * MIN_MS - 59 * MIN_MS, NOW, "ok for 47 h 59 min" },
	{ "failing for ", NOW - 48 * 60 * MIN_MS, NOW, "failing for 2 d" },
	{ "failing for ", NOW - 76 * 60 * MIN_MS, NOW, "failing for 3 d 4 h" },
	/* the clock stepped back: never a negative time */
	{ "failing for ", NOW + 5000, NOW, "failing for 0 s" },
};

START_TEST(test_since)
{
	const struct since_case *c = &since_cases[_i];
	char buf[64];

	vp_fmt_since(c->prefix, c->changed_ms, c->now_ms, buf, sizeof(buf));
	ck_assert_str_eq(buf, c->out);
}
END_TEST

struct ms_case {
	double ms;
	const char *out;
};

static const struct ms_case ms_cases[] = {
	{ -1, "-" }, { 0, "0.00 ms" }, { 0.123, "0.12 ms" }, { 9.999, "10.00 ms" },
	{ 12.34, "12.3 ms" }, { 2000.4, "2000 ms" },
};

START_TEST(test_fmt_ms)
{
	char buf[32];

	vp_fmt_ms(ms_cases[_i].ms, buf, sizeof(buf));
	ck_assert_str_eq(buf, ms_cases[_i].out);
}
END_TEST

/* ---- the sparkline ---- */

struct spark_run {
	int64_t ago_ms;          /* before NOW */
	enum vp_verdict verdict;
	float ms;
};

struct spark_case {
	const char *what;
	struct spark_run runs[8];   /* oldest first; ago_ms 0 ends the list */
	int n_rects;                /* failing minutes drawn */
	const char *has[3];         /* substrings of the SVG */
	const char *not[2];
};

static const struct spark_case spark_cases[] = {
	{ "no history", { { 0 } }, 0, { "<title>last hour: no probe yet</title>", "d=\"\"" },
	  { "<rect" } },
	{ "one ok run now", { { 1, VP_VERDICT_OK, 1.5f }, { 0 } }, 0,
	  { "last hour: 1 min ok, 0 min failing, slowest ok 1.50 ms", "d=\"M119 2.0h0\"" },
	  { "<rect" } },
	{ "a failing minute is a full bar at its place",
	  { { 30 * MIN_MS + 1, VP_VERDICT_REFUSED, 0.1f }, { 0 } }, 1,
	  { "<rect class=\"sf\" x=\"58\" y=\"0\" width=\"2\" height=\"24\"/>", "1 min failing" },
	  { "slowest ok" } },
	{ "a flapping minute is a half bar",
	  { { 5 * MIN_MS + 2000, VP_VERDICT_OK, 2.0f }, { 5 * MIN_MS + 1000, VP_VERDICT_TIMEOUT, 2000 },
	    { 0 } }, 1, { "height=\"12\"", "0 min ok, 1 min failing" }, { NULL } },
	{ "older than an hour is left out",
	  { { 61 * MIN_MS, VP_VERDICT_REFUSED, 1 }, { 2 * MIN_MS, VP_VERDICT_OK, 3 }, { 0 } }, 0,
	  { "1 min ok, 0 min failing" }, { "<rect" } },
	{ "a gap breaks the line",
	  { { 10 * MIN_MS, VP_VERDICT_OK, 1 }, { 9 * MIN_MS, VP_VERDICT_OK, 1 },
	    { 3 * MIN_MS, VP_VERDICT_OK, 100 }, { 0 } }, 0,
	  { "M101 19.0h0L103 19.0M115 2.0h0\"" }, { NULL } },
	{ "a run in the future counts as now",
	  { { -5000, VP_VERDICT_REFUSED, 1 }, { 0 } }, 1, { "x=\"118\"" }, { NULL } },
};

START_TEST(test_sparkline)
{
	const struct spark_case *c = &spark_cases[_i];
	struct vp_spark_bucket sp[VP_SPARK_BUCKETS];
	struct vp_history h;
	struct vp_buf b;
	int rects = 0;

	ck_assert_int_eq(vp_history_init(&h, 1), 0);
	for (int i = 0; c->runs[i].ago_ms != 0; i++) {
		struct vp_history_entry e = { .time_ms = NOW - c->runs[i].ago_ms,
		                              .verdict = (uint8_t)c->runs[i].verdict,
		                              .total_ms = c->runs[i].ms, .n_addresses = 1 };

		vp_history_add(&h, &e);
	}
	vp_spark_buckets(&h, NOW, sp);
	vp_buf_init(&b, 64 * 1024);
	ck_assert_int_eq(vp_spark_svg(&b, sp), 0);
	for (const char *p = b.data; (p = strstr(p, "<rect")) != NULL; p++)
		rects++;
	ck_assert_msg(rects == c->n_rects, "%s: %d rects in %s", c->what, rects, b.data);
	ck_assert_msg(strncmp(b.data, "<svg class=\"spark\" viewBox=\"0 0 120 24\"", 39) == 0, "%s", b.data);
	ck_assert_msg(strstr(b.data, "</svg>") == b.data + b.len - 6, "%s", b.data);
	for (int i = 0; i < 3 && c->has[i]; i++)
		ck_assert_msg(strstr(b.data, c->has[i]) != NULL, "%s: no '%s' in %s", c->what,
		              c->has[i], b.data);
	for (int i = 0; i < 2 && c->not[i]; i++)
		ck_assert_msg(strstr(b.data, c->not[i]) == NULL, "%s: '%s' in %s", c->what,
		              c->not[i], b.data);
	vp_buf_done(&b);
	vp_history_done(&h);
}
END_TEST

/* ---- routing: method x path -> status ---- */

struct route_case {
	const char *method;
	const char *path;
	unsigned status;
	enum vp_route route;
	const char *rest;
};

static const struct route_case route_cases[] = {
	{ "GET", "/", 200, VP_ROUTE_PAGE, NULL },
	{ "HEAD", "/", 200, VP_ROUTE_PAGE, NULL },
	{ "POST", "/", 405, 0, NULL },
	{ "PUT", "/metrics", 405, 0, NULL },
	{ "DELETE", "/api/v1/status", 405, 0, NULL },
	{ "OPTIONS", "/healthz", 405, 0, NULL },
	{ "get", "/", 405, 0, NULL },                     /* methods are case-sensitive */
	{ "GET", "/api/v1/status", 200, VP_ROUTE_STATUS, NULL },
	{ "GET", "/api/v1/status/", 404, 0, NULL },
	{ "GET", "/api/v1/listeners", 200, VP_ROUTE_LISTENERS, NULL },
	{ "GET", "/metrics", 200, VP_ROUTE_METRICS, NULL },
	{ "HEAD", "/metrics", 200, VP_ROUTE_METRICS, NULL },
	{ "GET", "/healthz", 200, VP_ROUTE_HEALTHZ, NULL },
	{ "GET", "/-/healthy", 200, VP_ROUTE_HEALTHZ, NULL },
	{ "GET", "/-/ready", 200, VP_ROUTE_READY, NULL },
	{ "GET", "/target/orders-db", 200, VP_ROUTE_TARGET, "orders-db" },
	{ "GET", "/target/a/b", 200, VP_ROUTE_TARGET, "a/b" },
	{ "GET", "/target/<img src=x>", 200, VP_ROUTE_TARGET, "<img src=x>" },
	{ "POST", "/target/x", 405, 0, NULL },
	{ "GET", "/target/", 404, 0, NULL },
	{ "GET", "/target", 404, 0, NULL },
	{ "GET", "/index.html", 404, 0, NULL },
	{ "POST", "/nope", 404, 0, NULL },                 /* an unknown path is 404 first */
	{ "GET", "", 404, 0, NULL },
	{ "GET", "//", 404, 0, NULL },
	{ "GET", "/METRICS", 404, 0, NULL },
	{ "GET", NULL, 404, 0, NULL },
};

START_TEST(test_route)
{
	const struct route_case *c = &route_cases[_i];
	enum vp_route route = VP_ROUTE_INVALID;
	const char *rest = "untouched";
	unsigned status = vp_status_route(c->method, c->path, &route, &rest);

	ck_assert_msg(status == c->status, "%s %s: %u, expected %u", c->method, c->path, status,
	              c->status);
	if (status != 200) {
		ck_assert_int_eq(route, VP_ROUTE_INVALID);
		return;
	}
	ck_assert_int_eq(route, c->route);
	if (c->rest)
		ck_assert_str_eq(rest, c->rest);
	else
		ck_assert_ptr_null(rest);
}
END_TEST

/* ---- the token ---- */

#define TOKEN "s3cret-T0ken"
#define B64(x) x   /* base64 below, computed with `printf %s ... | base64` */

struct auth_case {
	const char *header;
	bool ok;
};

static char long_header[VP_STATUS_AUTH_MAX + 16];

static const struct auth_case auth_cases[] = {
	{ "Bearer " TOKEN, true },
	{ "bearer " TOKEN, true },                         /* the scheme is case-insensitive */
	{ "Bearer   " TOKEN "  ", true },
	{ "Basic " B64("dXNlcjpzM2NyZXQtVDBrZW4="), true },   /* user:s3cret-T0ken */
	{ "Basic " B64("OnMzY3JldC1UMGtlbg=="), true },       /* :s3cret-T0ken, no user */
	{ "BASIC " B64("YW55b25lOnMzY3JldC1UMGtlbg=="), true }, /* anyone:s3cret-T0ken */
	{ "Basic " B64("dXNlcjp3cm9uZw=="), false },           /* user:wrong */
	{ "Basic " B64("czNjcmV0LVQwa2Vu"), false },           /* s3cret-T0ken, no colon */
	{ "Basic " B64("dXNlcjpzM2NyZXQtVDBrZW4"), false },    /* padding cut */
	{ "Basic !!!!", false },
	{ "Basic ", false },
	{ "Bearer " TOKEN "x", false },
	{ "Bearer s3cret-T0ke", false },
	{ "Bearer", false },
	{ "Bearer ", false },
	{ TOKEN, false },
	{ "Digest " TOKEN, false },
	{ "", false },
	{ NULL, false },
	{ long_header, false },
};

START_TEST(test_auth)
{
	unsigned char want[VP_STATUS_SHA256_LEN];

	memset(long_header, 'A', sizeof(long_header) - 1);
	memcpy(long_header, "Bearer ", 7);
	vp_status_sha256(TOKEN, strlen(TOKEN), want);
	ck_assert_msg(vp_status_auth_ok(auth_cases[_i].header, want) == auth_cases[_i].ok,
	              "row %d: '%.40s'", _i, auth_cases[_i].header);
}
END_TEST

struct stall_case {
	uint64_t beat_ms;
	uint64_t now_ms;
	bool stalled;
};

static const struct stall_case stall_cases[] = {
	{ 1000, 1000, false },
	{ 1000, 2000, false },
	{ 1000, 1000 + VP_STATUS_STALL_MS, false },
	{ 1000, 1001 + VP_STATUS_STALL_MS, true },
	{ 1000, 60000, true },
	{ 5000, 1000, false },        /* a beat "after" now: no stall */
};

START_TEST(test_stall)
{
	const struct stall_case *c = &stall_cases[_i];

	ck_assert_int_eq(vp_status_loop_stalled(c->beat_ms, c->now_ms), c->stalled);
}
END_TEST

/* ---- status_listen and status_token_file ---- */

struct listen_case {
	const char *listen;
	bool token;
	int r;
};

static const struct listen_case listen_cases[] = {
	{ "127.0.0.1:9464", false, 0 },
	{ "127.1.2.3:9464", false, 0 },
	{ "[::1]:9464", false, 0 },
	{ "[::ffff:127.0.0.1]:9464", false, 0 },
	{ "0.0.0.0:9464", false, -EPERM },
	{ "10.20.0.9:9464", false, -EPERM },
	{ "[::]:9464", false, -EPERM },
	{ "[fd00:198:18::2]:9464", false, -EPERM },
	{ "0.0.0.0:9464", true, 0 },
	{ "[::]:9464", true, 0 },
	{ "127.0.0.1:9464", true, 0 },
};

START_TEST(test_listen_policy)
{
	const struct listen_case *c = &listen_cases[_i];
	struct vp_config *cfg = NULL;
	char json[256], err[VP_ERR_MAX] = "";

	snprintf(json, sizeof(json), "{\"agent\": {\"status_listen\": \"%s\", "
	         "\"status_token_file\": %s}}", c->listen, c->token ? "\"/etc/t\"" : "null");
	ck_assert_int_eq(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(vp_status_check_config(cfg, err, sizeof(err)), c->r);
	if (c->r < 0) {
		ck_assert_msg(strstr(err, "config 't.json': agent.status_listen") != NULL, "%s", err);
		ck_assert_msg(strstr(err, "agent.status_token_file is not set") != NULL, "%s", err);
		ck_assert_msg(strstr(err, c->listen) != NULL, "%s", err);
	}
	vp_config_free(cfg);
}
END_TEST

/* ---- next steps ---- */

struct step_case {
	const char *url;
	const char *connector;      /* NULL: none in the config */
	enum vp_verdict verdict;
	const char *address;
	uint16_t port;
	size_t n;
	const char *has[2];         /* substrings of steps[0] and steps[1] */
};

static const struct step_case step_cases[] = {
	{ "postgres://10.20.0.3:5432", "10.8.0.0/28", VP_VERDICT_TIMEOUT, "10.20.0.3", 5432, 2,
	  { "gcloud compute firewall-rules list --filter=\"direction=INGRESS AND allowed[].ports:5432\"",
	    "gcloud compute firewall-rules create allow-vpc-connector-tcp-5432 --network=NETWORK "
	    "--direction=INGRESS --action=ALLOW --rules=tcp:5432 --source-ranges=10.8.0.0/28 "
	    "--destination-ranges=10.20.0.3/32" } },
	{ "tcp://[fd20::10]:9100", "10.8.0.0/28", VP_VERDICT_TIMEOUT, "fd20::10", 9100, 2,
	  { "allowed[].ports:9100", "--rules=tcp:9100 --source-ranges=10.8.0.0/28" } },
	{ "postgres://10.20.0.3:5432", NULL, VP_VERDICT_TIMEOUT, "10.20.0.3", 5432, 2,
	  { "allowed[].ports:5432", "vpc-access connectors list" } },
	{ "redis://10.20.0.4", NULL, VP_VERDICT_REFUSED, "10.20.0.4", 6379, 2,
	  { "ss -ltnp 'sport = :6379'    # on 10.20.0.4", "vpcprobe listeners 6379" } },
	{ "tcp://10.20.0.4:8080", NULL, VP_VERDICT_LOCALHOST_ONLY, "10.20.0.4", 8080, 2,
	  { "ss -ltnp 'sport = :8080'", NULL } },
	{ "tcp://10.20.0.4:8080", NULL, VP_VERDICT_UNREACHABLE, "10.20.0.4", 8080, 2,
	  { "ip route get 10.20.0.4", "traceroute -T -p 8080 10.20.0.4" } },
	{ "https://api.internal/healthz", NULL, VP_VERDICT_DNS_ERROR, "", 443, 2,
	  { "getent ahosts api.internal", "managed-zones list" } },
	{ "https://api.internal/healthz", NULL, VP_VERDICT_TLS_ERROR, "10.1.2.3", 443, 1,
	  { "openssl s_client -connect 10.1.2.3:443 -servername api.internal", NULL } },
	{ "redis://10.20.0.4", NULL, VP_VERDICT_PROTOCOL_ERROR, "10.20.0.4", 6379, 1,
	  { "redis-cli -h 10.20.0.4 -p 6379 PING", NULL } },
	{ "postgres://10.20.0.3", NULL, VP_VERDICT_PROTOCOL_ERROR, "10.20.0.3", 5432, 1,
	  { "psql \"host=10.20.0.3 port=5432\"", NULL } },
	{ "http://10.0.0.1:8080/x?a=1", NULL, VP_VERDICT_PROTOCOL_ERROR, "10.0.0.1", 8080, 1,
	  { "curl -sv --max-time 5 'http://10.0.0.1:8080/x?a=1'", NULL } },
	{ "http://10.0.0.1:8080/it's", NULL, VP_VERDICT_PROTOCOL_ERROR, "10.0.0.1", 8080, 0,
	  { NULL, NULL } },                                /* no quoting trouble: no command */
	{ "tcp://10.0.0.1:1", NULL, VP_VERDICT_RESET, "10.0.0.1", 1, 1, { "nc -vz 10.0.0.1 1", NULL } },
	{ "tcp://10.0.0.1:1", NULL, VP_VERDICT_LOCAL_ERROR, "10.0.0.1", 1, 2,
	  { "LimitNOFILE", "ip route get 10.0.0.1" } },
	{ "tcp://10.0.0.1:1", NULL, VP_VERDICT_OK, "10.0.0.1", 1, 0, { NULL, NULL } },
};

START_TEST(test_next_steps)
{
	const struct step_case *c = &step_cases[_i];
	char steps[VP_STATUS_STEPS_MAX][VP_STATUS_STEP_MAX];
	struct vp_probe_result r = { .port = c->port };
	struct vp_target t = { .name = (char *)"t", .url_text = (char *)c->url };
	char err[VP_ERR_MAX];
	size_t n;

	ck_assert_int_eq(vp_url_parse(c->url, &t.url, err, sizeof(err)), 0);
	if (c->connector)
		ck_assert_int_eq(vp_cidr_parse(c->connector, &t.connector_range, err, sizeof(err)), 0);
	r.v.verdict = c->verdict;
	snprintf(r.address, sizeof(r.address), "%s", c->address);
	n = vp_status_next_steps(&t, &r, NULL, steps, VP_STATUS_STEPS_MAX);
	ck_assert_uint_eq(n, c->n);
	for (size_t i = 0; i < 2 && i < n; i++)
		if (c->has[i])
			ck_assert_msg(strstr(steps[i], c->has[i]) != NULL, "row %d step %zu: %s", _i, i,
			              steps[i]);
	ck_assert_uint_eq(vp_status_next_steps(&t, &r, NULL, steps, 1), n > 1 ? 1 : n);  /* bounded */
	vp_url_free(&t.url);
}
END_TEST

/* The network the metadata server named fills the timeout's commands; a
 * name that could not stand unquoted in a shell leaves NETWORK. */
START_TEST(test_next_steps_network)
{
	static const struct { const char *network, *list, *create; } rows[] = {
		{ "shared-vpc", "--filter=\"network~/shared-vpc$ AND direction=INGRESS",
		  "--network=shared-vpc --direction=INGRESS" },
		{ "", "--filter=\"direction=INGRESS AND", "--network=NETWORK " },
		{ "a b;rm -rf", "--filter=\"direction=INGRESS AND", "--network=NETWORK " },
		{ "Default", "--filter=\"direction=INGRESS AND", "--network=NETWORK " },
	};
	char steps[VP_STATUS_STEPS_MAX][VP_STATUS_STEP_MAX];
	struct vp_probe_result r = { .port = 5432 };
	struct vp_target t = { .name = (char *)"db", .url_text = (char *)"postgres://10.20.0.3" };
	char err[VP_ERR_MAX];

	ck_assert_int_eq(vp_url_parse(t.url_text, &t.url, err, sizeof(err)), 0);
	ck_assert_int_eq(vp_cidr_parse("10.8.0.0/28", &t.connector_range, err, sizeof(err)), 0);
	r.v.verdict = VP_VERDICT_TIMEOUT;
	snprintf(r.address, sizeof(r.address), "10.20.0.3");
	for (int i = 0; i < N_ELEMS(rows); i++) {
		ck_assert_uint_eq(vp_status_next_steps(&t, &r, rows[i].network, steps,
		                                       VP_STATUS_STEPS_MAX), 2);
		ck_assert_msg(strstr(steps[0], rows[i].list) != NULL, "row %d: %s", i, steps[0]);
		ck_assert_msg(strstr(steps[1], rows[i].create) != NULL, "row %d: %s", i, steps[1]);
	}
}
END_TEST

/* ---- the delivery state in the header ---- */

struct delivery_case {
	bool collector;
	struct vp_status_delivery d;
	const char *text;
};

static const struct delivery_case delivery_cases[] = {
	{ false, { .known = true, .ok = true }, "no collector" },
	{ true, { .known = false }, "collector configured; delivery state not available" },
	{ true, { .known = true, .ok = true, .spooled_bytes = 512 }, "collector ok, 512 bytes spooled" },
	{ true, { .known = true, .spooled_bytes = 3 },
	  "collector: no batch acknowledged yet, 3 bytes spooled" },
	{ true, { .known = true, .spooled_bytes = 9, .dropped_total = 2, .last_error = "HTTP 503" },
	  "collector failing: HTTP 503; 9 bytes spooled, 2 dropped" },
	/* Results lost otherwise are named, each only when there are some. */
	{ true, { .known = true, .ok = true, .spooled_bytes = 1, .set_aside_total = 5, .torn_total = 1 },
	  "collector ok, 1 bytes spooled, 5 set aside, 1 torn spool tails cut" },
	{ true, { .known = true, .spooled_bytes = 0, .dropped_total = 2, .set_aside_total = 3,
	          .partial_total = 4, .corrupt_total = 6, .torn_total = 7, .last_error = "HTTP 400" },
	  "collector failing: HTTP 400; 0 bytes spooled, 2 dropped, 3 set aside, 4 rejected by "
	  "partialSuccess, 6 corrupt spool frames skipped, 7 torn spool tails cut" },
};

START_TEST(test_delivery_text)
{
	const struct delivery_case *c = &delivery_cases[_i];
	struct vp_status s = { .collector = c->collector };
	char buf[VP_DETAIL_MAX + 320];

	vp_status_delivery_text(&s, &c->d, buf, sizeof(buf));
	ck_assert_str_eq(buf, c->text);
}
END_TEST

/* ---- the page, the JSON and /metrics from a scheduler's state ---- */

#define XSS_NAME "<img src=x onerror=alert(1)>"
#define XSS_DETAIL "-ERR <script>alert('detail')</script>"
#define XSS_HINT "</code><img src=y onerror=alert(2)>"

static const char render_config[] =
	"{\"agent\": {\"name\": \"diag <vm>\"},"
	" \"targets\": ["
	"  {\"name\": \"ok \\\"q\\\" \\\\ back\", \"url\": \"tcp://127.0.0.1:2\"},"
	"  {\"name\": \"orders-db\", \"url\": \"tcp://10.20.0.3:5432\", \"connector_range\": \"10.8.0.0/28\"},"
	"  {\"name\": \"not-yet\", \"url\": \"tcp://127.0.0.1:3\"},"
	"  {\"name\": \"" "<img src=x onerror=alert(1)>" "\", \"url\": \"tcp://127.0.0.1:1\"},"
	"  {\"name\": \"cache\", \"url\": \"redis://127.0.0.1:6379\"}"
	" ]}";

struct fixture {
	uv_loop_t loop;
	struct vp_config *cfg;
	struct vp_scheduler *sched;
	struct vp_status s;
	struct vp_buf b;
	struct vp_instance inst;
};

static struct vp_scheduler *fixture_sched(void *arg)
{
	return ((struct fixture *)arg)->sched;
}

static const struct vp_instance *fixture_instance(void *arg)
{
	return &((struct fixture *)arg)->inst;
}

/* One finished run of target 'i': 'verdict' since 'changed_ago_ms'. */
static void set_run(struct fixture *f, size_t i, enum vp_verdict verdict, const char *detail,
                    const char *hint, int64_t changed_ago_ms)
{
	struct vp_sched_target *st = vp_scheduler_target(f->sched, i);
	struct vp_probe_result *r = calloc(1, sizeof(*r));
	struct vp_history_entry e = { .time_ms = vp_status_realtime_ms() - 1000,
	                              .verdict = (uint8_t)verdict, .total_ms = 1.25f,
	                              .n_addresses = 1, .n_ok = verdict == VP_VERDICT_OK };

	ck_assert_ptr_nonnull(r);
	r->v.verdict = verdict;
	r->v.reason = verdict == VP_VERDICT_OK ? VP_REASON_CONNECTED :
	              verdict == VP_VERDICT_TIMEOUT ? VP_REASON_SYN_NO_ANSWER : VP_REASON_RST_TO_SYN;
	snprintf(r->v.detail, sizeof(r->v.detail), "%s", detail);
	snprintf(r->v.hint, sizeof(r->v.hint), "%s", hint);
	snprintf(r->address, sizeof(r->address), "%.45s", st->target->url.host);
	r->port = st->target->url.port;
	r->total_ms = 1.25;
	r->connect_ms = -1;
	r->dns_ms = -1;
	r->protocol_ms = -1;
	free(st->last);
	st->last = r;
	st->n_last = 1;
	st->runs++;
	st->verdict = verdict;
	st->changed_ms = vp_status_realtime_ms() - changed_ago_ms;
	vp_history_add(&st->history, &e);
	vp_metrics_observe(f->s.metrics, st);
}

static void fixture_up(struct fixture *f)
{
	char err[4096];

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	ck_assert_msg(vp_config_load_string(render_config, "t.json", &f->cfg, err, sizeof(err)) == 0,
	              "%s", err);
	f->sched = vp_scheduler_new(&f->loop, f->cfg, NULL, NULL);
	ck_assert_ptr_nonnull(f->sched);
	f->s.src.scheduler = fixture_sched;
	f->s.src.instance = fixture_instance;
	f->s.src.arg = f;
	/* As the metadata server may answer: the project is not known. */
	snprintf(f->inst.name, sizeof(f->inst.name), "diag-<vm>");
	snprintf(f->inst.zone, sizeof(f->inst.zone), "europe-west1-b");
	snprintf(f->inst.network, sizeof(f->inst.network), "default");
	f->s.started_ms = vp_status_realtime_ms() - 3 * 3600 * 1000;
	f->s.metrics = vp_metrics_new();
	ck_assert_ptr_nonnull(f->s.metrics);
	set_run(f, 0, VP_VERDICT_OK, "TCP handshake done", "", 3600 * 1000);
	set_run(f, 1, VP_VERDICT_TIMEOUT, "no answer to SYN within 2000 ms", "A VPC firewall...",
	        12 * MIN_MS + 5000);
	set_run(f, 3, VP_VERDICT_REFUSED, "connection refused", "nothing listens", 40 * 1000);
	set_run(f, 4, VP_VERDICT_PROTOCOL_ERROR, XSS_DETAIL, XSS_HINT, 1000);
	vp_buf_init(&f->b, VP_STATUS_BODY_MAX);
}

static void on_closed(struct vp_scheduler *s, void *arg)
{
	(void)s;
	*(bool *)arg = true;
}

static void fixture_down(struct fixture *f)
{
	bool closed = false;

	vp_buf_done(&f->b);
	vp_metrics_free(f->s.metrics);
	vp_scheduler_stop(f->sched, on_closed, &closed);
	ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	ck_assert(closed);
	vp_scheduler_free(f->sched);
	vp_config_free(f->cfg);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

/* The order of two marks in the page. */
#define ck_assert_lt(a, b) ck_assert_msg((a) < (b), "out of order")

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static const char *after(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);

	ck_assert_msg(p != NULL, "'%s' is missing", needle);
	return p;
}

START_TEST(test_page)
{
	struct fixture f;
	const char *p;

	fixture_up(&f);
	ck_assert_int_eq(vp_status_page(&f.s, &f.b), 0);
	p = f.b.data;
	/* Nothing hostile comes through as markup... */
	ck_assert_ptr_null(strstr(p, "<img"));
	ck_assert_uint_eq(count(p, "<script"), 1);
	ck_assert_ptr_null(strstr(p, "</code><img"));
	/* ...and all of it shows as text. */
	after(p, "&lt;img src=x onerror=alert(1)&gt;");
	after(p, "href=\"/target/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\"");
	after(p, "-ERR &lt;script&gt;alert(&#39;detail&#39;)&lt;/script&gt;");
	after(p, "&lt;/code&gt;&lt;img src=y onerror=alert(2)&gt;");
	after(p, "vpcprobe \xc2\xb7 <span class=\"agent\">diag &lt;vm&gt;</span>");
	after(p, "ok &quot;q&quot; \\ back");
	/* The header: counts, uptime, delivery. */
	after(p, "<span class=\"cnt bad\">3 failing</span>");
	after(p, "<span class=\"cnt\">1 timeout</span>");
	after(p, "<span class=\"cnt\">1 pending</span>");
	after(p, "<span class=\"cnt good\">1 ok</span>");
	after(p, "up <span id=\"uptime\">3 h</span>");
	after(p, "<span id=\"delivery\">no collector</span>");
	after(p, "<div class=\"where\" id=\"where\">instance diag-&lt;vm&gt; \xc2\xb7 zone "
	      "europe-west1-b \xc2\xb7 network default</div>");
	/* No listener checks nor beacons configured: no section for them. */
	ck_assert_ptr_null(strstr(p, "id=\"listeners\""));
	ck_assert_ptr_null(strstr(p, "id=\"beacons\""));
	after(p, "<title>\xe2\x9c\x95 3 failing \xc2\xb7 vpcprobe diag &lt;vm&gt;</title>");
	/* Failing first (config order), then pending, then ok. */
	ck_assert_lt(after(p, "data-name=\"orders-db\""), after(p, "data-name=\"&lt;img"));
	ck_assert_lt(after(p, "data-name=\"&lt;img"), after(p, "data-name=\"cache\""));
	ck_assert_lt(after(p, "data-name=\"cache\""), after(p, "data-name=\"not-yet\""));
	ck_assert_lt(after(p, "data-name=\"not-yet\""), after(p, "data-name=\"ok &quot;"));
	/* Badges read without colour; times and next steps are this target's. */
	after(p, "<span class=\"bt\">TIMEOUT</span>");
	after(p, "<span class=\"bt\">PROTOCOL ERROR</span>");
	after(p, "<span class=\"bt\">PENDING</span>");
	after(p, "<span class=\"bt\">OK</span>");
	after(p, "failing for 12 min");
	after(p, "ok for 1 h");
	after(p, "not probed yet");
	after(p, "--source-ranges=10.8.0.0/28 --destination-ranges=10.20.0.3/32");
	after(p, "redis-cli -h 127.0.0.1 -p 6379 PING");
	after(p, "<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>");
	ck_assert_uint_eq(count(p, "<svg class=\"spark\""), 5);
	fixture_down(&f);
}
END_TEST

START_TEST(test_target_page)
{
	struct fixture f;
	const char *p;

	fixture_up(&f);
	ck_assert_int_eq(vp_status_target_page(&f.s, XSS_NAME, &f.b), 0);
	p = f.b.data;
	ck_assert_ptr_null(strstr(p, "<img"));
	ck_assert_ptr_null(strstr(p, "<script"));
	after(p, "<title>&lt;img src=x onerror=alert(1)&gt; \xc2\xb7 vpcprobe diag &lt;vm&gt;</title>");
	after(p, "<h2>Raw last records</h2>\n<pre>{\n  &quot;time&quot;: ");
	after(p, "&quot;target&quot;: &quot;&lt;img src=x onerror=alert(1)&gt;&quot;");
	after(p, "<h2>History, newest first (1 runs kept");
	vp_buf_done(&f.b);
	vp_buf_init(&f.b, VP_STATUS_BODY_MAX);
	ck_assert_int_eq(vp_status_target_page(&f.s, "<b>nope</b>", &f.b), -ENOENT);
	after(f.b.data, "No target is named <b>&lt;b&gt;nope&lt;/b&gt;</b>");
	vp_buf_done(&f.b);
	vp_buf_init(&f.b, VP_STATUS_BODY_MAX);
	ck_assert_int_eq(vp_status_target_page(&f.s, "cache", &f.b), 0);
	after(f.b.data, "-ERR &lt;script&gt;");
	after(f.b.data, "&quot;detail&quot;: &quot;-ERR &lt;script&gt;alert(&#39;detail&#39;)");
	fixture_down(&f);
}
END_TEST

START_TEST(test_json)
{
	struct fixture f;
	json_error_t jerr;
	json_t *doc, *t;

	fixture_up(&f);
	ck_assert_int_eq(vp_status_json(&f.s, &f.b), 0);
	doc = json_loads(f.b.data, 0, &jerr);
	ck_assert_msg(doc != NULL, "%s: %s", jerr.text, f.b.data);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "agent"), "name")),
	                 "diag <vm>");
	t = json_object_get(json_object_get(doc, "agent"), "instance");
	ck_assert_str_eq(json_string_value(json_object_get(t, "name")), "diag-<vm>");
	ck_assert_str_eq(json_string_value(json_object_get(t, "zone")), "europe-west1-b");
	ck_assert(json_is_null(json_object_get(t, "project")));
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "listeners")), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "beacons")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "counts"), "timeout")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "counts"), "pending")), 1);
	ck_assert(json_is_false(json_object_get(doc, "ready")));
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "targets_omitted")), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "targets")), 5);
	t = json_array_get(json_object_get(doc, "targets"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(t, "name")), "orders-db");
	ck_assert_str_eq(json_string_value(json_object_get(t, "state")), "failing");
	ck_assert_str_eq(json_string_value(json_object_get(t, "verdict")), "timeout");
	ck_assert_str_eq(json_string_value(json_object_get(t, "reason")), "syn_no_answer");
	ck_assert_str_eq(json_string_value(json_object_get(t, "since_text")), "failing for 12 min");
	ck_assert_str_eq(json_string_value(json_object_get(t, "connector_range")), "10.8.0.0/28");
	ck_assert_uint_eq(json_array_size(json_object_get(t, "next_steps")), 2);
	ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(t, "sparkline"), "ms")),
	                  VP_SPARK_BUCKETS);
	t = json_array_get(json_object_get(doc, "targets"), 2);
	ck_assert_str_eq(json_string_value(json_object_get(t, "detail")), XSS_DETAIL);
	t = json_array_get(json_object_get(doc, "targets"), 3);
	ck_assert_str_eq(json_string_value(json_object_get(t, "state")), "pending");
	ck_assert(json_is_null(json_object_get(t, "verdict")));
	json_decref(doc);
	fixture_down(&f);
}
END_TEST

START_TEST(test_metrics)
{
	struct vp_metrics_extra x = { .reports_spooled_bytes = 42 };
	struct fixture f;
	const char *p;

	fixture_up(&f);
	/* A second run of orders-db: counters add up, gauges show the last. */
	set_run(&f, 1, VP_VERDICT_OK, "TCP handshake done", "", 0);
	/* TLS: cache's certificate has 30 days left, orders-db's expired 2 days
	 * ago; the first target asked for no TLS, so its zeroed days show no
	 * series. */
	vp_scheduler_target(f.sched, 4)->last[0].tls.asked = true;
	vp_scheduler_target(f.sched, 4)->last[0].cert_days_left = 30;
	vp_scheduler_target(f.sched, 1)->last[0].tls.asked = true;
	vp_scheduler_target(f.sched, 1)->last[0].cert_days_left = -2;
	ck_assert_int_eq(vp_metrics_render(f.s.metrics, f.sched, &x, &f.b), 0);
	p = f.b.data;
	after(p, "# HELP vpcprobe_probe_success ");
	after(p, "not probes run at scrape time.\n# TYPE vpcprobe_probe_success gauge\n");
	after(p, "vpcprobe_probe_success{target=\"orders-db\",kind=\"tcp\",address=\"10.20.0.3\","
	      "port=\"5432\"} 1\n");
	after(p, "vpcprobe_probe_success{target=\"ok \\\"q\\\" \\\\ back\",kind=\"tcp\","
	      "address=\"127.0.0.1\",port=\"2\"} 1\n");
	after(p, "vpcprobe_probe_success{target=\"cache\",kind=\"redis\",address=\"127.0.0.1\","
	      "port=\"6379\"} 0\n");
	ck_assert_ptr_null(strstr(p, "target=\"not-yet\""));       /* no run: no series */
	after(p, "# TYPE vpcprobe_probes_total counter\n");
	after(p, "vpcprobe_probes_total{target=\"orders-db\",verdict=\"ok\"} 1\n");
	after(p, "vpcprobe_probes_total{target=\"orders-db\",verdict=\"timeout\"} 1\n");
	after(p, "# TYPE vpcprobe_probe_duration_seconds histogram\n");
	after(p, "vpcprobe_probe_duration_seconds_bucket{target=\"orders-db\",le=\"0.001\"} 0\n");
	after(p, "vpcprobe_probe_duration_seconds_bucket{target=\"orders-db\",le=\"0.0025\"} 2\n");
	after(p, "vpcprobe_probe_duration_seconds_bucket{target=\"orders-db\",le=\"+Inf\"} 2\n");
	after(p, "vpcprobe_probe_duration_seconds_sum{target=\"orders-db\"} 0.002500\n");
	after(p, "vpcprobe_probe_duration_seconds_count{target=\"orders-db\"} 2\n");
	after(p, "# TYPE vpcprobe_probe_last_timestamp_seconds gauge\n");
	after(p, "vpcprobe_reports_spooled_bytes 42\n");
	after(p, "# TYPE vpcprobe_reports_dropped_total counter\nvpcprobe_reports_dropped_total 0\n");
	after(p, "vpcprobe_build_info{version=\"");
	after(p, "# TYPE vpcprobe_tls_cert_expiry_seconds gauge\n");
	after(p, "vpcprobe_tls_cert_expiry_seconds{target=\"cache\",address=\"127.0.0.1\","
	      "port=\"6379\"} 2592000\n");
	after(p, "vpcprobe_tls_cert_expiry_seconds{target=\"orders-db\",address=\"10.20.0.3\","
	      "port=\"5432\"} -172800\n");
	ck_assert_uint_eq(count(p, "vpcprobe_tls_cert_expiry_seconds{"), 2);
	/* No delivery state: the loss counters are there, at 0. */
	after(p, "# TYPE vpcprobe_reports_rejected_total counter\n"
	      "vpcprobe_reports_rejected_total{reason=\"set_aside\"} 0\n"
	      "vpcprobe_reports_rejected_total{reason=\"partial\"} 0\n");
	after(p, "# TYPE vpcprobe_spool_frames_skipped_total counter\n"
	      "vpcprobe_spool_frames_skipped_total{why=\"corrupt\"} 0\n"
	      "vpcprobe_spool_frames_skipped_total{why=\"torn\"} 0\n");
	ck_assert_uint_eq(count(p, "# HELP "), 10);
	ck_assert_uint_eq(count(p, "# TYPE "), 10);
	fixture_down(&f);
}
END_TEST

/* What a reporter that lost results reports. */
static void lossy_delivery(void *arg, struct vp_status_delivery *out)
{
	(void)arg;
	out->known = true;
	out->ok = true;
	out->set_aside_total = 3;
	out->partial_total = 2;
	out->corrupt_total = 4;
	out->torn_total = 1;
}

/* Results the collector refused and spool frames skipped: counted on
 * /metrics, in the JSON's delivery object and on the page's delivery line. */
START_TEST(test_losses)
{
	struct vp_metrics_extra x = { 0 };
	struct fixture f;
	json_error_t jerr;
	json_t *doc, *d;
	const char *p;

	fixture_up(&f);
	f.s.collector = true;
	f.s.src.delivery = lossy_delivery;
	ck_assert_int_eq(vp_status_json(&f.s, &f.b), 0);
	doc = json_loads(f.b.data, 0, &jerr);
	ck_assert_msg(doc != NULL, "%s: %s", jerr.text, f.b.data);
	d = json_object_get(doc, "delivery");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(d, "rejected"), "set_aside")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(d, "rejected"), "partial")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(d, "spool_skipped"), "corrupt")), 4);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(d, "spool_skipped"), "torn")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(d, "text")), "collector ok, 0 bytes "
	                 "spooled, 3 set aside, 2 rejected by partialSuccess, 4 corrupt spool "
	                 "frames skipped, 1 torn spool tails cut");
	json_decref(doc);
	vp_buf_done(&f.b);
	vp_buf_init(&f.b, VP_STATUS_BODY_MAX);
	/* As /metrics does: read the delivery state, then render. */
	vp_status_delivery_of(&f.s, &(struct vp_status_delivery){ 0 });
	ck_assert_int_eq(vp_metrics_render(f.s.metrics, f.sched, &x, &f.b), 0);
	p = f.b.data;
	after(p, "# HELP vpcprobe_reports_rejected_total Results the collector refused");
	after(p, "vpcprobe_reports_rejected_total{reason=\"set_aside\"} 3\n"
	      "vpcprobe_reports_rejected_total{reason=\"partial\"} 2\n");
	after(p, "# HELP vpcprobe_spool_frames_skipped_total Spool damage skipped");
	after(p, "vpcprobe_spool_frames_skipped_total{why=\"corrupt\"} 4\n"
	      "vpcprobe_spool_frames_skipped_total{why=\"torn\"} 1\n");
	fixture_down(&f);
}
END_TEST

/* ---- listener checks and beacons ---- */

#define XSS_PROC "<script>x</script>"

/* Port 8080 bound to loopback by a hostile process name, 5432 on every
 * interface with a full queue, 6379 not read yet. */
static void listen_results(struct vp_listen_result r[3])
{
	memset(r, 0, 3 * sizeof(*r));
	r[0].port = 8080;
	r[0].runs = 4;
	r[0].scope = VP_SCOPE_LOOPBACK_ONLY;
	r[0].verdict = VP_VERDICT_LOCALHOST_ONLY;
	r[0].reason = "loopback_bind";
	snprintf(r[0].addresses, sizeof(r[0].addresses), "127.0.0.1, ::1");
	r[0].pid = 4242;
	snprintf(r[0].process, sizeof(r[0].process), XSS_PROC);
	r[0].queue_cur = 0;
	r[0].queue_max = 128;
	r[0].queue_max_known = true;
	r[0].source = "netlink";
	snprintf(r[0].detail, sizeof(r[0].detail), "port 8080 listens on 127.0.0.1, ::1 only "
	         "(pid 4242 " XSS_PROC ")");
	snprintf(r[0].hint, sizeof(r[0].hint), "Bind it to 0.0.0.0 <now>.");
	r[0].wall.tv_sec = NOW / 1000 - 5;
	r[0].changed_ms = NOW - 3 * MIN_MS;
	r[1].port = 5432;
	r[1].runs = 4;
	r[1].scope = VP_SCOPE_ALL_INTERFACES;
	r[1].verdict = VP_VERDICT_OK;
	r[1].reason = "all_interfaces";
	r[1].finding = "listen queue overflowing";
	snprintf(r[1].addresses, sizeof(r[1].addresses), "0.0.0.0");
	r[1].queue_cur = 129;
	r[1].queue_max = 128;
	r[1].queue_max_known = true;
	r[1].source = "proc";
	r[1].changed_ms = NOW - 40 * 1000;
	r[2].port = 6379;
}

/* A beacon expecting 198.18.5.0/28 with two arrivals, one of them from
 * outside; the second view is a beacon that could not start. */
static void beacon_views(struct vp_beacon_arrival a[2], struct vp_status_beacon_view v[2])
{
	memset(a, 0, 2 * sizeof(*a));
	memset(v, 0, 2 * sizeof(*v));
	a[0].seq = 1;
	a[0].wall.tv_sec = NOW / 1000 - 60;
	a[0].family = AF_INET;
	snprintf(a[0].source, sizeof(a[0].source), "198.18.5.10");
	a[0].source_port = 40000;
	a[0].match = VP_BEACON_INSIDE;
	snprintf(a[0].cidr, sizeof(a[0].cidr), "198.18.5.0/28");
	a[1].seq = 2;
	a[1].wall.tv_sec = NOW / 1000 - 30;
	a[1].family = AF_INET6;
	snprintf(a[1].source, sizeof(a[1].source), "fd00:198:18::9");
	a[1].source_port = 40001;
	a[1].match = VP_BEACON_OUTSIDE;
	a[1].over_cap = true;
	snprintf(v[0].listen, sizeof(v[0].listen), "0.0.0.0:18080");
	v[0].running = true;
	snprintf(v[0].expect, sizeof(v[0].expect), "198.18.5.0/28, fd00:198:18:5::/64");
	v[0].stats.arrivals = 2;
	v[0].stats.inside = 1;
	v[0].stats.outside = 1;
	v[0].stats.answered = 1;
	v[0].stats.over_cap = 1;
	v[0].n_shown = 2;
	v[0].shown[0] = &a[1];   /* newest first */
	v[0].shown[1] = &a[0];
	snprintf(v[1].listen, sizeof(v[1].listen), "127.0.0.1:<1>");
}

START_TEST(test_checks_html)
{
	struct vp_listen_result r[3];
	struct vp_beacon_arrival a[2];
	struct vp_status_beacon_view v[2];
	struct vp_buf b;
	const char *p;

	listen_results(r);
	beacon_views(a, v);
	vp_buf_init(&b, VP_STATUS_BODY_MAX);
	vp_status_listen_html(&b, r, 3, NOW);
	vp_status_beacon_html(&b, &v[0]);
	vp_status_beacon_html(&b, &v[1]);
	ck_assert_int_eq(b.err, 0);
	p = b.data;
	ck_assert_ptr_null(strstr(p, "<script"));
	ck_assert_ptr_null(strstr(p, "<now>"));
	ck_assert_ptr_null(strstr(p, "<1>"));
	/* One row per port, in order, with every column. */
	ck_assert_lt(after(p, "data-port=\"8080\""), after(p, "data-port=\"5432\""));
	ck_assert_lt(after(p, "data-port=\"5432\""), after(p, "data-port=\"6379\""));
	after(p, "<tr class=\"failing\" data-port=\"8080\"><td class=\"port\">8080</td>");
	after(p, "<span class=\"bt\">LOCALHOST ONLY</span></span> <span class=\"reason\">"
	      "loopback_bind</span>");
	after(p, "<td class=\"scope\">loopback_only</td><td class=\"addresses\">127.0.0.1, ::1</td>"
	      "<td class=\"owner\">4242 &lt;script&gt;x&lt;/script&gt;</td><td class=\"queue\">0 / "
	      "128</td>");
	after(p, "<td class=\"since\">failing for 3 min</td>");
	after(p, "<div class=\"hint\">Bind it to 0.0.0.0 &lt;now&gt;.</div>");
	/* A full queue fails an all_interfaces port; its row names the finding. */
	after(p, "<tr class=\"failing\" data-port=\"5432\">");
	after(p, "<td class=\"queue\">129 / 128</td><td class=\"finding\">listen queue "
	      "overflowing</td><td class=\"since\">failing for 40 s</td>");
	after(p, "<tr class=\"pending\" data-port=\"6379\">");
	after(p, "<span class=\"bt\">PENDING</span>");
	after(p, "<td class=\"since\">not read yet</td>");
	/* The beacon: listen, expect_from, counts, arrivals newest first. */
	after(p, "<section class=\"beacon\" data-listen=\"0.0.0.0:18080\">");
	after(p, "expect_from 198.18.5.0/28, fd00:198:18:5::/64");
	after(p, "2 arrived: 1 inside expect_from, 1 outside \xc2\xb7 1 answered, 0 bad requests, "
	      "0 timed out, 1 closed over the connection cap");
	ck_assert_lt(after(p, "[fd00:198:18::9]:40001"), after(p, "198.18.5.10:40000"));
	after(p, "<tr class=\"outside\"><td>2</td><td class=\"time\">");
	after(p, "<td class=\"match\">outside</td><td class=\"network\">-</td>"
	      "<td class=\"note\">closed at once: over the connection cap</td>");
	after(p, "<td class=\"match\">inside</td><td class=\"network\">198.18.5.0/28</td>");
	/* The beacon that could not start says so, its address escaped. */
	after(p, "data-listen=\"127.0.0.1:&lt;1&gt;\"");
	after(p, "<p class=\"bcounts bad\">not running: it could not start");
	after(p, "no expect_from: sources are not checked");
	vp_buf_done(&b);
}
END_TEST

START_TEST(test_checks_json)
{
	struct vp_listen_result r[3];
	struct vp_beacon_arrival a[2];
	struct vp_status_beacon_view v[2];
	json_t *l, *x, *bj;

	listen_results(r);
	beacon_views(a, v);
	l = vp_status_listen_json(r, 3, NOW);
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(json_array_size(l), 3);
	x = json_array_get(l, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(x, "port")), 8080);
	ck_assert_str_eq(json_string_value(json_object_get(x, "state")), "failing");
	ck_assert_str_eq(json_string_value(json_object_get(x, "verdict")), "localhost_only");
	ck_assert_str_eq(json_string_value(json_object_get(x, "scope")), "loopback_only");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(x, "addresses"), 1)), "::1");
	ck_assert_str_eq(json_string_value(json_object_get(x, "process")), XSS_PROC);
	ck_assert_int_eq(json_integer_value(json_object_get(x, "pid")), 4242);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(x, "queue"), "max")), 128);
	ck_assert_str_eq(json_string_value(json_object_get(x, "since_text")), "failing for 3 min");
	ck_assert(json_is_null(json_object_get(x, "finding")));
	x = json_array_get(l, 1);
	ck_assert_str_eq(json_string_value(json_object_get(x, "finding")), "listen queue overflowing");
	ck_assert(json_is_null(json_object_get(x, "pid")));
	x = json_array_get(l, 2);
	ck_assert_str_eq(json_string_value(json_object_get(x, "state")), "pending");
	ck_assert(json_is_null(json_object_get(x, "verdict")));
	ck_assert(json_is_null(json_object_get(json_object_get(x, "queue"), "current")));
	ck_assert_uint_eq(json_array_size(json_object_get(x, "addresses")), 0);
	json_decref(l);

	bj = vp_status_beacon_json(&v[0]);
	ck_assert_ptr_nonnull(bj);
	ck_assert_str_eq(json_string_value(json_object_get(bj, "listen")), "0.0.0.0:18080");
	ck_assert(json_is_true(json_object_get(bj, "running")));
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(bj, "expect_from"), 1)),
	                 "fd00:198:18:5::/64");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(bj, "counts"), "outside")), 1);
	x = json_object_get(bj, "recent");
	ck_assert_uint_eq(json_array_size(x), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(x, 0), "source")),
	                 "fd00:198:18::9");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(x, 0), "match")), "outside");
	ck_assert(json_is_null(json_object_get(json_array_get(x, 0), "network")));
	ck_assert(json_is_true(json_object_get(json_array_get(x, 0), "over_cap")));
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(x, 1), "network")),
	                 "198.18.5.0/28");
	json_decref(bj);
	bj = vp_status_beacon_json(&v[1]);
	ck_assert(json_is_false(json_object_get(bj, "running")));
	ck_assert_uint_eq(json_array_size(json_object_get(bj, "expect_from")), 0);
	json_decref(bj);
}
END_TEST

struct where_case {
	const char *name, *zone, *project, *network;
	const char *want;
};

static const struct where_case where_cases[] = {
	{ "", "", "", "", "" },
	{ "vm-1", "", "", "", "instance vm-1" },
	{ "", "us-central1-a", "", "vpc", "zone us-central1-a \xc2\xb7 network vpc" },
	{ "vm-1", "z", "p", "n", "instance vm-1 \xc2\xb7 zone z \xc2\xb7 project p \xc2\xb7 network n" },
};

START_TEST(test_where)
{
	const struct where_case *c = &where_cases[_i];
	struct vp_instance in;
	char buf[4 * (VP_METADATA_VALUE_MAX + 16)];

	memset(&in, 0, sizeof(in));
	snprintf(in.name, sizeof(in.name), "%s", c->name);
	snprintf(in.zone, sizeof(in.zone), "%s", c->zone);
	snprintf(in.project, sizeof(in.project), "%s", c->project);
	snprintf(in.network, sizeof(in.network), "%s", c->network);
	vp_status_where_text(&in, buf, sizeof(buf));
	ck_assert_str_eq(buf, c->want);
	vp_status_where_text(NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
}
END_TEST

/* ---- the server: '/' and the JSON built once per VP_STATUS_CACHE_MS ---- */

#define ANSWER_MAX (4 * 1024 * 1024)

/* One request sent by a thread with a blocking socket while the loop
 * serves it on the test's thread; the thread wakes the loop when it has
 * read the whole answer (the server closes: "Connection: close"). */
struct exchange {
	uint16_t port;
	char request[256];
	char *answer;                     /* owned: headers and body, NUL-ended */
	size_t len;
	uv_async_t done;
	bool finished;
};

static void *client_thread(void *arg)
{
	struct exchange *x = arg;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(x->port),
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n = 1;

	x->answer = calloc(1, ANSWER_MAX + 1);
	if (fd >= 0 && x->answer != NULL && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    write(fd, x->request, strlen(x->request)) == (ssize_t)strlen(x->request)) {
		while (x->len < ANSWER_MAX && (n = read(fd, x->answer + x->len, ANSWER_MAX - x->len)) > 0)
			x->len += (size_t)n;
	}
	if (fd >= 0)
		(void)close(fd); /* read to the end */
	(void)uv_async_send(&x->done); /* cannot fail on an initialised handle */
	return NULL;
}

static void on_exchanged(uv_async_t *a)
{
	((struct exchange *)a->data)->finished = true;
}

/* Sends "METHOD PATH" to the server on 'port' with 'auth' (NULL: none) and
 * serves it; returns the whole answer (the caller frees it). */
static char *exchange(uv_loop_t *loop, uint16_t port, const char *method, const char *path,
                      const char *auth)
{
	struct exchange x = { .port = port };
	pthread_t th;
	int n;

	n = snprintf(x.request, sizeof(x.request), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	             "Connection: close\r\n%s%s%s\r\n", method, path, auth ? "Authorization: " : "",
	             auth ? auth : "", auth ? "\r\n" : "");
	ck_assert(n > 0 && (size_t)n < sizeof(x.request));
	ck_assert_int_eq(uv_async_init(loop, &x.done, on_exchanged), 0);
	x.done.data = &x;
	ck_assert_int_eq(pthread_create(&th, NULL, client_thread, &x), 0);
	while (!x.finished)
		(void)uv_run(loop, UV_RUN_ONCE); /* the async handle keeps it alive */
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	uv_close((uv_handle_t *)&x.done, NULL);
	(void)uv_run(loop, UV_RUN_NOWAIT); /* lets the close finish */
	ck_assert_msg(x.len > 0 && x.len < ANSWER_MAX, "%s %s: %zu bytes of answer", method, path,
	              x.len);
	return x.answer;
}

static const char *body_of(const char *answer)
{
	return after(answer, "\r\n\r\n") + 4;
}

/* A port free a moment ago on 127.0.0.1 (the config takes no port 0),
 * never 2024, which belongs to the machine's owner. */
static uint16_t free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len;
	int fd;

	do {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(sin);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
		(void)close(fd); /* only asked for its number */
	} while (ntohs(sin.sin_port) == 2024);
	return ntohs(sin.sin_port);
}

/* Starts a status server on the fixture's scheduler; with a token file
 * holding "sesame" when 'token' is set. Retries when the port was taken
 * between free_port() and the bind. */
static struct vp_status *serve(struct fixture *f, bool token, uint16_t *port)
{
	char token_path[] = "/tmp/vp-test-status-token-XXXXXX";
	struct vp_status_source src = { .scheduler = fixture_sched, .instance = fixture_instance,
	                                .arg = f };
	struct vp_status *srv = NULL;
	char err[512], listen[64];
	int r = -EADDRINUSE;

	if (token) {
		int fd = mkstemp(token_path);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "sesame\n", 7), 7);
		(void)close(fd); /* written */
		f->cfg->status_token_file = strdup(token_path);
		ck_assert_ptr_nonnull(f->cfg->status_token_file);
	}
	for (int tries = 0; tries < 20 && r == -EADDRINUSE; tries++) {
		*port = free_port();
		snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)*port);
		free(f->cfg->status_listen);
		f->cfg->status_listen = strdup(listen);
		ck_assert_ptr_nonnull(f->cfg->status_listen);
		r = vp_status_start(&f->loop, f->cfg, &src, &srv, err, sizeof(err));
	}
	if (token)
		(void)unlink(token_path); /* read at start */
	ck_assert_msg(r == 0, "%s", err);
	return srv;
}

static void unserve(struct fixture *f, struct vp_status *srv)
{
	vp_status_stop(srv);
	while (srv->closing > 0)
		(void)uv_run(&f->loop, UV_RUN_ONCE);
	vp_status_free(srv);
}

struct cache_case {
	const char *path;
	enum vp_route route;
	const char *pending;              /* in the body while "not-yet" is pending */
};

static const struct cache_case cache_cases[] = {
	{ "/", VP_ROUTE_PAGE, "not probed yet" },
	{ "/api/v1/status", VP_ROUTE_STATUS, "\"state\":\"pending\"" },
};

START_TEST(test_cache)
{
	const struct cache_case *c = &cache_cases[_i];
	const char *auth = "Bearer sesame";
	struct vp_status *srv;
	struct fixture f;
	char *a1, *a2, *a3, *head, *denied;
	char length[64];
	uint16_t port;

	fixture_up(&f);
	srv = serve(&f, true, &port);
	a1 = exchange(&f.loop, port, "GET", c->path, auth);
	after(a1, "HTTP/1.1 200 ");
	after(body_of(a1), c->pending);
	/* The target's first run ends within the window: the answer is the one
	 * built before it, byte for byte, headers included. */
	set_run(&f, 2, VP_VERDICT_OK, "TCP handshake done", "", 0);
	a2 = exchange(&f.loop, port, "GET", c->path, auth);
	ck_assert_msg(strcmp(body_of(a2), body_of(a1)) == 0,
	              "%s: the second answer within the window was built again", c->path);
	after(a2, "Cache-Control: no-store\r\n");
	after(a2, "Content-Security-Policy: default-src 'none'");
	/* HEAD gets that answer's headers and no body. */
	head = exchange(&f.loop, port, "HEAD", c->path, auth);
	after(head, "HTTP/1.1 200 ");
	snprintf(length, sizeof(length), "Content-Length: %zu\r\n", strlen(body_of(a1)));
	after(head, length);
	ck_assert_str_eq(body_of(head), "");
	/* The token is asked for before the kept answer is looked at. */
	denied = exchange(&f.loop, port, "GET", c->path, NULL);
	after(denied, "HTTP/1.1 401 ");
	ck_assert_ptr_null(strstr(denied, c->pending));
	free(denied);
	denied = exchange(&f.loop, port, "GET", c->path, "Bearer sesamf");
	after(denied, "HTTP/1.1 401 ");
	/* Once the window has passed (aged here rather than waited for), the
	 * next request gets the new state. */
	ck_assert_ptr_nonnull(srv->cache[c->route].resp);
	srv->cache[c->route].at_ms -= VP_STATUS_CACHE_MS;
	a3 = exchange(&f.loop, port, "GET", c->path, auth);
	after(a3, "HTTP/1.1 200 ");
	ck_assert_ptr_null(strstr(body_of(a3), c->pending));
	ck_assert_msg(strcmp(body_of(a3), body_of(a1)) != 0,
	              "%s: the answer after the window is the old one", c->path);
	free(a1);
	free(a2);
	free(a3);
	free(head);
	free(denied);
	unserve(&f, srv);
	fixture_down(&f);
}
END_TEST

static Suite *status_suite(void)
{
	Suite *s = suite_create("status");
	TCase *text = tcase_create("text");
	TCase *http = tcase_create("http");
	TCase *render = tcase_create("render");
	TCase *serving = tcase_create("serving");

	tcase_add_loop_test(text, test_html_escape, 0, N_ELEMS(html_cases));
	tcase_add_loop_test(text, test_url_encode, 0, N_ELEMS(url_cases));
	tcase_add_loop_test(text, test_prom_label, 0, N_ELEMS(prom_cases));
	tcase_add_test(text, test_buf_limit);
	tcase_add_loop_test(text, test_since, 0, N_ELEMS(since_cases));
	tcase_add_loop_test(text, test_fmt_ms, 0, N_ELEMS(ms_cases));
	tcase_add_loop_test(text, test_sparkline, 0, N_ELEMS(spark_cases));
	tcase_add_loop_test(http, test_route, 0, N_ELEMS(route_cases));
	tcase_add_loop_test(http, test_auth, 0, N_ELEMS(auth_cases));
	tcase_add_loop_test(http, test_stall, 0, N_ELEMS(stall_cases));
	tcase_add_loop_test(http, test_listen_policy, 0, N_ELEMS(listen_cases));
	tcase_add_loop_test(render, test_next_steps, 0, N_ELEMS(step_cases));
	tcase_add_test(render, test_next_steps_network);
	tcase_add_loop_test(render, test_delivery_text, 0, N_ELEMS(delivery_cases));
	tcase_add_test(render, test_page);
	tcase_add_test(render, test_target_page);
	tcase_add_test(render, test_json);
	tcase_add_test(render, test_metrics);
	tcase_add_test(render, test_losses);
	tcase_add_test(render, test_checks_html);
	tcase_add_test(render, test_checks_json);
	tcase_add_loop_test(render, test_where, 0, N_ELEMS(where_cases));
	suite_add_tcase(s, text);
	suite_add_tcase(s, http);
	suite_add_tcase(s, render);
	tcase_add_loop_test(serving, test_cache, 0, N_ELEMS(cache_cases));
	suite_add_tcase(s, serving);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(status_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
