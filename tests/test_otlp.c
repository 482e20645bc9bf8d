/* The OTLP metrics of the reporter (agent/otlp_metrics.h, issue 5): the
 * endpoint derived from the logs URL, and the ExportMetricsServiceRequest
 * built from a scheduler whose targets have known results. The encoding
 * rules checked here are the ones tests/collector.py enforces end to end. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent/otlp_metrics.h"
#include "config/config.h"

/* ---- the metrics endpoint ---- */

struct url_case {
	const char *logs;
	int r;
	const char *metrics;
};

static const struct url_case url_cases[] = {
	{ "http://127.0.0.1:4318/v1/logs", 0, "http://127.0.0.1:4318/v1/metrics" },
	{ "https://c.internal/otlp/v1/logs", 0, "https://c.internal/otlp/v1/metrics" },
	{ "https://c/v1/logs?tenant=a", 0, "https://c/v1/metrics?tenant=a" },
	{ "https://c/v1/logs#frag", 0, "https://c/v1/metrics#frag" },
	{ "https://[fd00:198:18::1]:4318/v1/logs", 0, "https://[fd00:198:18::1]:4318/v1/metrics" },
	{ "http://127.0.0.1:4318/v1/logs/", -EINVAL, NULL },   /* not the path's end */
	{ "http://127.0.0.1:4318/ingest", -EINVAL, NULL },
	{ "http://127.0.0.1:4318/", -EINVAL, NULL },
	{ "http://127.0.0.1:4318", -EINVAL, NULL },
	{ "http://c/x?next=/v1/logs", -EINVAL, NULL },         /* in the query, not the path */
	{ "http:///v1/logs", -EINVAL, NULL },                  /* no host */
	{ "/v1/logs", -EINVAL, NULL },                         /* no scheme */
	{ "", -EINVAL, NULL },
};

START_TEST(test_url)
{
	const struct url_case *c = &url_cases[_i];
	char out[128] = "untouched";

	ck_assert_int_eq(vp_otlp_metrics_url(c->logs, out, sizeof(out)), c->r);
	if (c->metrics)
		ck_assert_str_eq(out, c->metrics);
}
END_TEST

START_TEST(test_url_too_long)
{
	char out[32];

	ck_assert_int_eq(vp_otlp_metrics_url("https://collector.example.internal:4318/v1/logs", out,
	                                     sizeof(out)), -ENAMETOOLONG);
}
END_TEST

/* ---- the body ---- */

static const char config_json[] =
	"{\"agent\": {\"name\": \"otlp-test\"},"
	" \"targets\": ["
	"  {\"name\": \"db\", \"url\": \"tcp://198.18.0.2:5432\"},"
	"  {\"name\": \"cache\", \"url\": \"tcp://198.18.0.3:6379\"},"
	"  {\"name\": \"idle\", \"url\": \"tcp://198.18.0.4:80\"}"
	" ]}";

struct fixture {
	uv_loop_t loop;
	struct vp_config *cfg;
	struct vp_scheduler *sched;
	struct vp_otlp_metrics *m;
	struct vp_delivery_stats stats;
	uint64_t partial;                  /* vp_otlp_metrics_in.partial */
};

/* One finished run of target 'i' with one result. */
static void run(struct fixture *f, size_t i, enum vp_verdict verdict, double total_ms)
{
	struct vp_sched_target *st = vp_scheduler_target(f->sched, i);
	struct vp_probe_result *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->v.verdict = verdict;
	snprintf(r->address, sizeof(r->address), "%.45s", st->target->url.host);
	r->port = st->target->url.port;
	r->total_ms = total_ms;
	free(st->last);
	st->last = r;
	st->n_last = 1;
	st->runs++;
	vp_otlp_metrics_observe(f->m, st, 1000000000ull * (10 + i));
}

static void fixture_up_with(struct fixture *f, const char *json)
{
	char err[4096];

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	ck_assert_msg(vp_config_load_string(json, "t.json", &f->cfg, err, sizeof(err)) == 0,
	              "%s", err);
	f->sched = vp_scheduler_new(&f->loop, f->cfg, NULL, NULL);
	ck_assert_ptr_nonnull(f->sched);
	f->m = vp_otlp_metrics_new();
	ck_assert_ptr_nonnull(f->m);
}

static void fixture_up(struct fixture *f)
{
	fixture_up_with(f, config_json);
}

static void on_closed(struct vp_scheduler *s, void *arg)
{
	(void)s;
	*(bool *)arg = true;
}

static void fixture_down(struct fixture *f)
{
	bool closed = false;

	vp_otlp_metrics_free(f->m);
	vp_scheduler_stop(f->sched, on_closed, &closed);
	ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	ck_assert(closed);
	vp_scheduler_free(f->sched);
	vp_config_free(f->cfg);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

static json_t *export_now(struct fixture *f)
{
	const struct vp_report_ctx ctx = { .agent = "otlp-test", .format = VP_COLLECTOR_OTLP };
	const struct vp_otlp_metrics_in in = { .ctx = &ctx, .sched = f->sched, .stats = &f->stats,
	                                       .stats_start_ns = 5000000000ull,
	                                       .partial = f->partial, .exports_failed = 2,
	                                       .start_ns = 6000000000ull,
	                                       .now_ns = 99000000000ull };
	json_error_t jerr;
	size_t len = 0;
	char *text = vp_otlp_metrics_body(f->m, &in, &len);
	json_t *root;

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, strlen(text));
	root = json_loads(text, 0, &jerr);
	ck_assert_msg(root != NULL, "not JSON: %s", jerr.text);
	free(text);
	return root;
}

/* The metric of that name in the body's one scope. */
static json_t *metric(json_t *root, const char *name)
{
	json_t *ms = json_object_get(json_array_get(json_object_get(json_array_get(
	             json_object_get(root, "resourceMetrics"), 0), "scopeMetrics"), 0), "metrics");
	json_t *m;
	size_t i;

	json_array_foreach(ms, i, m)
		if (!strcmp(json_string_value(json_object_get(m, "name")), name))
			return m;
	ck_abort_msg("no metric %s", name);
	return NULL;
}

/* The string value of attribute 'key' of a data point. */
static const char *attr(json_t *point, const char *key)
{
	json_t *kv;
	size_t i;

	json_array_foreach(json_object_get(point, "attributes"), i, kv) {
		if (!strcmp(json_string_value(json_object_get(kv, "key")), key)) {
			json_t *v = json_object_get(kv, "value");

			return json_string_value(json_object_get(v, json_object_get(v, "stringValue") ?
			                                         "stringValue" : "intValue"));
		}
	}
	return NULL;
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	ck_assert_msg(s != NULL, "%s is not a string", key);
	return s;
}

START_TEST(test_body)
{
	struct fixture f;
	json_t *root, *points, *p, *sum, *hist;

	fixture_up(&f);
	run(&f, 0, VP_VERDICT_OK, 0.2);        /* 0.0002 s: the first bucket */
	run(&f, 0, VP_VERDICT_OK, 3);          /* 0.003 s: (0.0025, 0.005] */
	run(&f, 0, VP_VERDICT_TIMEOUT, 2000);  /* 2 s: (1, 2.5] */
	run(&f, 1, VP_VERDICT_REFUSED, 60000); /* 60 s: +Inf */
	f.stats.spooled_bytes = 4096;
	f.stats.dropped = 7;
	root = export_now(&f);

	/* gauge: one point per target that ran, 'idle' has none */
	points = json_object_get(json_object_get(metric(root, "vpcprobe_probe_success"), "gauge"),
	                         "dataPoints");
	ck_assert_uint_eq(json_array_size(points), 2);
	p = json_array_get(points, 0);
	ck_assert_str_eq(attr(p, "target"), "db");
	ck_assert_str_eq(attr(p, "kind"), "tcp");
	ck_assert_str_eq(attr(p, "address"), "198.18.0.2");
	ck_assert_str_eq(attr(p, "port"), "5432");
	ck_assert_str_eq(str(p, "asInt"), "0");   /* the last run timed out */
	ck_assert_str_eq(str(p, "timeUnixNano"), "99000000000");
	ck_assert_ptr_null(json_object_get(p, "startTimeUnixNano"));
	ck_assert_str_eq(str(json_array_get(points, 1), "asInt"), "0");

	/* sum: cumulative, monotonic, from the series' first run */
	sum = json_object_get(metric(root, "vpcprobe_probes_total"), "sum");
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "aggregationTemporality")), 2);
	ck_assert(json_is_true(json_object_get(sum, "isMonotonic")));
	points = json_object_get(sum, "dataPoints");
	ck_assert_uint_eq(json_array_size(points), 3);
	p = json_array_get(points, 0);
	ck_assert_str_eq(attr(p, "target"), "db");
	ck_assert_str_eq(attr(p, "verdict"), "ok");
	ck_assert_str_eq(str(p, "asInt"), "2");
	ck_assert_str_eq(str(p, "startTimeUnixNano"), "10000000000");
	p = json_array_get(points, 1);
	ck_assert_str_eq(attr(p, "verdict"), "timeout");
	ck_assert_str_eq(str(p, "asInt"), "1");
	p = json_array_get(points, 2);
	ck_assert_str_eq(attr(p, "target"), "cache");
	ck_assert_str_eq(str(p, "startTimeUnixNano"), "11000000000");

	/* histogram: counts as strings, one more than the bounds */
	hist = json_object_get(metric(root, "vpcprobe_probe_duration_seconds"), "histogram");
	ck_assert_int_eq(json_integer_value(json_object_get(hist, "aggregationTemporality")), 2);
	p = json_array_get(json_object_get(hist, "dataPoints"), 0);
	ck_assert_str_eq(attr(p, "target"), "db");
	ck_assert_str_eq(str(p, "count"), "3");
	ck_assert(json_real_value(json_object_get(p, "sum")) > 2.0031 &&
	          json_real_value(json_object_get(p, "sum")) < 2.0033);
	ck_assert_uint_eq(json_array_size(json_object_get(p, "explicitBounds")), 14);
	ck_assert_uint_eq(json_array_size(json_object_get(p, "bucketCounts")), 15);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "bucketCounts"), 0)), "1");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "bucketCounts"), 3)), "1");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "bucketCounts"), 11)), "1");
	p = json_array_get(json_object_get(hist, "dataPoints"), 1);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "bucketCounts"), 14)), "1");
	ck_assert_uint_eq(json_array_size(json_object_get(hist, "dataPoints")), 2);

	/* the delivery counts */
	p = json_array_get(json_object_get(json_object_get(metric(root,
	    "vpcprobe_reports_spooled_bytes"), "gauge"), "dataPoints"), 0);
	ck_assert_str_eq(str(p, "asInt"), "4096");
	p = json_array_get(json_object_get(json_object_get(metric(root,
	    "vpcprobe_reports_dropped_total"), "sum"), "dataPoints"), 0);
	ck_assert_str_eq(str(p, "asInt"), "7");
	ck_assert_str_eq(str(p, "startTimeUnixNano"), "5000000000");
	p = json_array_get(json_object_get(json_object_get(metric(root,
	    "vpcprobe_metrics_exports_failed_total"), "sum"), "dataPoints"), 0);
	ck_assert_str_eq(str(p, "asInt"), "2");
	ck_assert_str_eq(str(p, "startTimeUnixNano"), "6000000000");
	json_decref(root);
	fixture_down(&f);
}
END_TEST

/* ---- the loss counters (issue 5): as /metrics has them ---- */

static const struct loss_case {
	uint64_t rejected, partial, corrupt, torn;     /* what the agent counted */
	const char *set_aside, *partial_out, *corrupt_out, *torn_out; /* the points' asInt */
} loss_cases[] = {
	/* Nothing lost: every point still there, at 0. */
	{ 0, 0, 0, 0, "0", "0", "0", "0" },
	/* stats.rejected holds both refusals; set_aside is the rest. */
	{ 5, 2, 3, 1, "3", "2", "3", "1" },
	{ 4, 0, 0, 0, "4", "0", "0", "0" },
	{ 1, 1, 0, 7, "0", "1", "0", "7" },
	/* Counts that disagree never wrap below zero. */
	{ 1, 3, 0, 0, "0", "3", "0", "0" },
	{ UINT64_MAX, 1, UINT64_MAX, UINT64_MAX - 1,
	  "18446744073709551614", "1", "18446744073709551615", "18446744073709551614" },
};

/* The point of a two-point sum whose attribute 'key' is 'value'; checks
 * the sum is cumulative and monotonic, and the point's times. */
static json_t *loss_point(json_t *root, const char *name, const char *key, const char *value)
{
	json_t *sum = json_object_get(metric(root, name), "sum");
	json_t *points = json_object_get(sum, "dataPoints");
	json_t *p, *found = NULL;
	size_t i;

	ck_assert_int_eq(json_integer_value(json_object_get(sum, "aggregationTemporality")), 2);
	ck_assert(json_is_true(json_object_get(sum, "isMonotonic")));
	ck_assert_uint_eq(json_array_size(points), 2);
	json_array_foreach(points, i, p) {
		ck_assert_uint_eq(json_array_size(json_object_get(p, "attributes")), 1);
		if (attr(p, key) && !strcmp(attr(p, key), value))
			found = p;
	}
	ck_assert_msg(found != NULL, "%s has no point %s=%s", name, key, value);
	ck_assert_str_eq(str(found, "startTimeUnixNano"), "5000000000");
	ck_assert_str_eq(str(found, "timeUnixNano"), "99000000000");
	return found;
}

START_TEST(test_losses)
{
	const struct loss_case *c = &loss_cases[_i];
	struct fixture f;
	json_t *root;

	fixture_up(&f);
	f.stats.rejected = c->rejected;
	f.partial = c->partial;
	f.stats.corrupt = c->corrupt;
	f.stats.torn = c->torn;
	root = export_now(&f);
	ck_assert_str_eq(str(loss_point(root, "vpcprobe_reports_rejected_total", "reason",
	                                "set_aside"), "asInt"), c->set_aside);
	ck_assert_str_eq(str(loss_point(root, "vpcprobe_reports_rejected_total", "reason",
	                                "partial"), "asInt"), c->partial_out);
	ck_assert_str_eq(str(loss_point(root, "vpcprobe_spool_frames_skipped_total", "why",
	                                "corrupt"), "asInt"), c->corrupt_out);
	ck_assert_str_eq(str(loss_point(root, "vpcprobe_spool_frames_skipped_total", "why",
	                                "torn"), "asInt"), c->torn_out);
	json_decref(root);
	fixture_down(&f);
}
END_TEST

/* A target that a reload removed loses its series at the next export; a
 * name that comes back counts from zero again. */
START_TEST(test_prune)
{
	struct fixture f;
	struct vp_scheduler *other;
	struct vp_config *cfg2;
	char err[4096];
	json_t *root, *points;
	bool closed = false;

	fixture_up(&f);
	run(&f, 0, VP_VERDICT_OK, 1);
	run(&f, 1, VP_VERDICT_OK, 1);
	ck_assert_int_eq(vp_config_load_string("{\"targets\": [{\"name\": \"cache\", \"url\": "
	                                       "\"tcp://198.18.0.3:6379\"}]}", "t2.json", &cfg2, err,
	                                       sizeof(err)), 0);
	other = vp_scheduler_new(&f.loop, cfg2, NULL, NULL);
	ck_assert_ptr_nonnull(other);
	/* Export against the new schedule: only 'cache' is left. */
	{
		struct vp_scheduler *keep = f.sched;

		f.sched = other;
		root = export_now(&f);
		f.sched = keep;
	}
	points = json_object_get(json_object_get(metric(root, "vpcprobe_probes_total"), "sum"),
	                         "dataPoints");
	ck_assert_uint_eq(json_array_size(points), 1);
	ck_assert_str_eq(attr(json_array_get(points, 0), "target"), "cache");
	json_decref(root);
	/* 'db' comes back under the first schedule: a new series. */
	run(&f, 0, VP_VERDICT_OK, 1);
	root = export_now(&f);
	points = json_object_get(json_object_get(metric(root, "vpcprobe_probes_total"), "sum"),
	                         "dataPoints");
	ck_assert_str_eq(attr(json_array_get(points, 0), "target"), "db");
	ck_assert_str_eq(str(json_array_get(points, 0), "asInt"), "1");
	json_decref(root);
	vp_scheduler_stop(other, on_closed, &closed);
	ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	vp_scheduler_free(other);
	vp_config_free(cfg2);
	fixture_down(&f);
}
END_TEST

/* The body is written as text: a name with a quote, a backslash, a slash
 * and non-ASCII letters comes out as valid JSON, unchanged. (The config
 * refuses control characters in names.) */
START_TEST(test_escape)
{
	static const char name[] = "q\"b\\s/ \xc3\xa9t\xc3\xa9";
	struct fixture f;
	json_t *root, *points;

	fixture_up_with(&f, "{\"targets\": [{\"name\": \"q\\\"b\\\\s/ \xc3\xa9t\xc3\xa9\", "
	                "\"url\": \"tcp://198.18.0.2:80\"}]}");
	ck_assert_str_eq(f.cfg->targets[0].name, name);
	run(&f, 0, VP_VERDICT_REFUSED, 1);
	root = export_now(&f);
	points = json_object_get(json_object_get(metric(root, "vpcprobe_probes_total"), "sum"),
	                         "dataPoints");
	ck_assert_str_eq(attr(json_array_get(points, 0), "target"), name);
	points = json_object_get(json_object_get(metric(root, "vpcprobe_probe_success"), "gauge"),
	                         "dataPoints");
	ck_assert_str_eq(attr(json_array_get(points, 0), "target"), name);
	json_decref(root);
	fixture_down(&f);
}
END_TEST

/* Regression: with the wall clock's 19-digit times, ten results or more
 * and a sum of ten significant digits, one histogram point's numbers no
 * longer fit the 128-byte buffer the body's formatter used, and the whole
 * export failed as "no memory for the body" (an agent with the collector
 * down logged it at the stop after ~11 s, never after 3 s). Every number
 * at its widest: the body is still built, and carries them whole. */
START_TEST(test_wide_numbers)
{
	const struct vp_report_ctx ctx = { .agent = "otlp-test", .format = VP_COLLECTOR_OTLP };
	const uint64_t now = 18446744073709551615ull;
	struct vp_otlp_metrics_in in = { .ctx = &ctx, .stats_start_ns = now - 1,
	                                 .exports_failed = now - 2, .start_ns = now - 3,
	                                 .now_ns = now };
	struct fixture f;
	struct vp_sched_target *st;
	json_t *root, *p;
	json_error_t jerr;
	size_t len = 0;
	char *text;

	fixture_up(&f);
	in.sched = f.sched;
	in.stats = &f.stats;
	f.stats.spooled_bytes = now - 4;
	f.stats.dropped = now - 5;
	run(&f, 0, VP_VERDICT_OK, 1.2345678912345);
	st = vp_scheduler_target(f.sched, 0);
	/* Its series starts at the widest time too. */
	vp_otlp_metrics_free(f.m);
	f.m = vp_otlp_metrics_new();
	ck_assert_ptr_nonnull(f.m);
	for (int i = 0; i < 12; i++)
		vp_otlp_metrics_observe(f.m, st, now - 6);
	text = vp_otlp_metrics_body(f.m, &in, &len);
	ck_assert_msg(text != NULL, "no body");
	ck_assert_uint_eq(len, strlen(text));
	root = json_loads(text, 0, &jerr);
	ck_assert_msg(root != NULL, "not JSON: %s", jerr.text);
	free(text);
	p = json_array_get(json_object_get(json_object_get(metric(root,
	    "vpcprobe_probe_duration_seconds"), "histogram"), "dataPoints"), 0);
	ck_assert_str_eq(str(p, "startTimeUnixNano"), "18446744073709551609");
	ck_assert_str_eq(str(p, "timeUnixNano"), "18446744073709551615");
	ck_assert_str_eq(str(p, "count"), "12");
	ck_assert(json_real_value(json_object_get(p, "sum")) > 0.0148148 &&
	          json_real_value(json_object_get(p, "sum")) < 0.0148149);
	p = json_array_get(json_object_get(json_object_get(metric(root,
	    "vpcprobe_metrics_exports_failed_total"), "sum"), "dataPoints"), 0);
	ck_assert_str_eq(str(p, "asInt"), "18446744073709551613");
	ck_assert_str_eq(str(p, "startTimeUnixNano"), "18446744073709551612");
	json_decref(root);
	fixture_down(&f);
}
END_TEST

static Suite *otlp_suite(void)
{
	Suite *s = suite_create("otlp");
	TCase *tc = tcase_create("metrics");

	tcase_add_loop_test(tc, test_url, 0, sizeof(url_cases) / sizeof(url_cases[0]));
	tcase_add_test(tc, test_url_too_long);
	tcase_add_test(tc, test_body);
	tcase_add_loop_test(tc, test_losses, 0, sizeof(loss_cases) / sizeof(loss_cases[0]));
	tcase_add_test(tc, test_prune);
	tcase_add_test(tc, test_escape);
	tcase_add_test(tc, test_wide_numbers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(otlp_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
