/* Unit tests for agent/reporter_body.c's json body: the spooled records are
 * spliced in as they are, byte for byte, around a head that jansson writes
 * (the agent's name escaped), and a payload that is not an object's text is
 * left out. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent/reporter.h"

static struct vp_spool_batch batch_of(const char *const *texts, size_t n)
{
	struct vp_spool_batch b = { .n = n };

	b.recs = calloc(n ? n : 1, sizeof(*b.recs));
	ck_assert_ptr_nonnull(b.recs);
	for (size_t i = 0; i < n; i++)
		b.recs[i] = (struct vp_spool_record){ .seq = 40 + i, .data = texts[i],
		                                      .len = (uint32_t)strlen(texts[i]) };
	b.id = n ? 40 + n - 1 : 0;
	return b;
}

struct body_case {
	const char *agent;
	/* C strings: the NUL case is its own test below. */
	const char *recs[4];
	size_t n;
	bool instance;
	const char *want;
};

static const struct body_case body_cases[] = {
	{ "a", { "{\"x\":1}", "{\"y\":0.1234567891}" }, 2, false,
	  "{\"agent\":\"a\",\"batch\":41,\"results\":[{\"x\":1},{\"y\":0.1234567891}]}" },
	/* Not an object's text: left out, the others kept in order. */
	{ "a", { "{\"x\":1}", "[1]", "", "{\"z\":2}" }, 4, false,
	  "{\"agent\":\"a\",\"batch\":43,\"results\":[{\"x\":1},{\"z\":2}]}" },
	{ "a", { "nope" }, 1, false, "{\"agent\":\"a\",\"batch\":40,\"results\":[]}" },
	/* Braces are not enough: each must parse as one object (what the fuzz
	 * harness found: a NUL inside, JSON that is not, two objects, bad UTF-8). */
	{ "a", { "{\"x\":}", "{} {}", "{\"s\":\"\xff\"}", "{\"k\":1}" }, 4, false,
	  "{\"agent\":\"a\",\"batch\":43,\"results\":[{\"k\":1}]}" },
	{ "a", { NULL }, 0, false, "{\"agent\":\"a\",\"batch\":0,\"results\":[]}" },
	/* The agent's name is escaped by jansson. */
	{ "q\"\\\n\x01", { "{}" }, 1, false,
	  "{\"agent\":\"q\\\"\\\\\\n\\u0001\",\"batch\":40,\"results\":[{}]}" },
	{ "a", { "{}" }, 1, true,
	  "{\"agent\":\"a\",\"batch\":40,\"results\":[{}],\"instance\":{\"name\":\"vm-1\","
	  "\"zone\":\"europe-west1-b\",\"project\":\"p\",\"network\":\"default\"}}" },
};

START_TEST(test_json_body)
{
	const struct body_case *c = &body_cases[_i];
	struct vp_instance in = { "vm-1", "europe-west1-b", "p", "default" };
	struct vp_report_ctx ctx = { .agent = c->agent, .format = VP_COLLECTOR_JSON,
	                             .instance = c->instance ? &in : NULL };
	struct vp_spool_batch b = batch_of(c->recs, c->n);
	size_t len = 0;
	char *body = vp_report_body(&ctx, &b, &len);
	json_error_t jerr;
	json_t *parsed;

	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body, c->want);
	ck_assert_uint_eq(len, strlen(c->want));
	parsed = json_loads(body, 0, &jerr);
	ck_assert_msg(parsed != NULL, "not JSON: %s", jerr.text);
	json_decref(parsed);
	free(body);
	free(b.recs);
}
END_TEST

/* A payload with a NUL byte inside (its length says so) is left out. */
START_TEST(test_json_body_nul)
{
	static const char nul[] = "{\"a\":\"x\0y\"}";
	struct vp_report_ctx ctx = { .agent = "a", .format = VP_COLLECTOR_JSON };
	struct vp_spool_record rec = { .seq = 7, .data = nul, .len = sizeof(nul) - 1 };
	struct vp_spool_batch b = { .id = 7, .recs = &rec, .n = 1 };
	size_t len = 0;
	char *body = vp_report_body(&ctx, &b, &len);

	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body, "{\"agent\":\"a\",\"batch\":7,\"results\":[]}");
	ck_assert_uint_eq(len, strlen(body));
	free(body);
}
END_TEST

/* An instance that is not known (all empty) is not written. */
START_TEST(test_json_body_unknown_instance)
{
	static const char *const recs[] = { "{}" };
	struct vp_instance in = { "", "", "", "" };
	struct vp_report_ctx ctx = { .agent = "a", .format = VP_COLLECTOR_JSON, .instance = &in };
	struct vp_spool_batch b = batch_of(recs, 1);
	size_t len = 0;
	char *body = vp_report_body(&ctx, &b, &len);

	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body, "{\"agent\":\"a\",\"batch\":40,\"results\":[{}]}");
	free(body);
	free(b.recs);
}
END_TEST

static Suite *report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("json body");

	tcase_add_loop_test(tc, test_json_body, 0,
	                    (int)(sizeof(body_cases) / sizeof(body_cases[0])));
	tcase_add_test(tc, test_json_body_unknown_instance);
	tcase_add_test(tc, test_json_body_nul);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(report_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
