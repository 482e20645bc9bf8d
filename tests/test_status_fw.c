/* Unit tests of the status page's firewall line (agent/status_fw*.c):
 * loaded from the diagnose fixtures (tests/fixtures/diagnose, shaped like
 * gcloud's --format=json output) and rendered as the page's HTML and as
 * /api/v1/status's field. The 10.x addresses are data: nothing is probed.
 * Each table row is one exports directory, made of fixture files under
 * their export names, and one target. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/status_int.h"

#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))

struct fw_case {
	/* "EXPORT_NAME=FIXTURE_DIR/FILE", at most 5; NULL ends. */
	const char *files[5];
	const char *target;                   /* the config's target, JSON, ' for " */
	enum vp_status_fw_answer answer;
	const char *text;                     /* a substring of the line */
	const char *fix;                      /* a substring of the fix; NULL: no fix */
	const char *html;                     /* a substring of the row's HTML */
};

#define VM_5432 "{'name': 'orders-db', 'url': 'tcp://10.128.0.5:5432', 'connector_range': '10.8.0.0/28'}"
#define HEALTHY "service.json=healthy/service.json", "connector.json=healthy/connector.json", \
	"instance.json=healthy/instance.json"

static const struct fw_case fw_cases[] = {
	/* Allowed: the healthy setup. */
	{ { HEALTHY, "firewall-rules.json=healthy/firewall-rules.json" }, VM_5432,
	  VP_STATUS_FW_ALLOWED, "): rule 'allow-run-conn-pg' (priority 1000, allow tcp:5432, "
	  "source range 10.8.0.0/28, target tags db) admits connector 'run-conn'", NULL,
	  "<div class=\"fw fw-allowed\"><span class=\"fwt\">firewall (exports of 20" },
	/* Denied: firewall_denies' rules, by the implied deny, with the fix. */
	{ { HEALTHY, "firewall-rules.json=firewall_denies/firewall-rules.json" }, VM_5432,
	  VP_STATUS_FW_DENIED, "no ingress rule admits connector 'run-conn' (10.8.0.0/28, tags "
	  "vpc-connector, vpc-connector-us-central1-run-conn) to tcp:5432 on instance 'orders-db' "
	  "(network default): the implied deny-ingress rule (priority 65535)",
	  "gcloud compute firewall-rules create allow-run-conn-tcp-5432 --network default "
	  "--direction INGRESS --action allow --rules tcp:5432 --source-ranges 10.8.0.0/28 "
	  "--target-tags db --priority 1000",
	  "<div class=\"fwfix\"><span class=\"sub\">fix:</span><code>gcloud compute" },
	/* Denied by a named rule (firewall_denies_rule). */
	{ { HEALTHY, "firewall-rules.json=firewall_denies_rule/firewall-rules.json" }, VM_5432,
	  VP_STATUS_FW_DENIED, "denies connector 'run-conn'", "--priority ", "fw fw-denied" },
	/* Without connector.json: only the config's range, no tags, no name. */
	{ { "instance.json=healthy/instance.json",
	    "firewall-rules.json=firewall_denies/firewall-rules.json" }, VM_5432,
	  VP_STATUS_FW_DENIED, "no ingress rule admits the range 10.8.0.0/28 (from the agent's "
	  "config) to tcp:5432", "create allow-connector-tcp-5432 ",
	  "the range 10.8.0.0/28 (from the agent&#39;s config)" },
	/* The range of the config wins over connector.json's. */
	{ { HEALTHY, "firewall-rules.json=healthy/firewall-rules.json" },
	  "{'name': 'db', 'url': 'tcp://10.128.0.5:5432', 'connector_range': '10.9.0.0/28'}",
	  VP_STATUS_FW_DENIED, "(10.9.0.0/28, tags", "--source-ranges 10.9.0.0/28", "fw-denied" },
	/* Unknown: no rules; another address; a name; a broken file. */
	{ { HEALTHY }, VM_5432, VP_STATUS_FW_UNKNOWN, "unknown: no firewall export", NULL,
	  "fw fw-unknown" },
	{ { HEALTHY, "firewall-rules.json=healthy/firewall-rules.json" },
	  "{'name': 'x', 'url': 'tcp://10.128.0.6:5432', 'connector_range': '10.8.0.0/28'}",
	  VP_STATUS_FW_UNKNOWN, "which does not have the address 10.128.0.6", NULL, "fw-unknown" },
	{ { HEALTHY, "firewall-rules.json=healthy/firewall-rules.json" },
	  "{'name': 'x', 'url': 'tcp://db.internal:5432', 'connector_range': '10.8.0.0/28'}",
	  VP_STATUS_FW_UNKNOWN, "unknown: the target is a name", NULL, "fw-unknown" },
	{ { HEALTHY, "firewall-rules.json=broken/firewall-rules-priority-string.json" }, VM_5432,
	  VP_STATUS_FW_UNKNOWN, "firewall: unknown: ", NULL, "firewall-rules.json: [" },
	{ { HEALTHY, "firewall-rules.json=broken/firewall-rules-truncated.json" }, VM_5432,
	  VP_STATUS_FW_UNKNOWN, "firewall-rules.json: line ", NULL, "fw-unknown" },
};

static char *json_of(const char *s)
{
	char *j = strdup(s);

	ck_assert_ptr_nonnull(j);
	for (char *p = j; *p; p++)
		if (*p == '\'')
			*p = '"';
	return j;
}

/* A directory of symbolic links to the case's fixture files. */
static void make_exports(const struct fw_case *c, char *dir, size_t len)
{
	const char *fix = getenv("TESTS_DIR");
	char from[VP_PATH_MAX], to[VP_PATH_MAX];

	ck_assert_msg(fix != NULL, "TESTS_DIR is not set (meson sets it)");
	snprintf(dir, len, "/tmp/vpfwunit.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (int i = 0; i < N_ELEMS(c->files) && c->files[i]; i++) {
		const char *eq = strchr(c->files[i], '=');

		ck_assert_ptr_nonnull(eq);
		snprintf(to, sizeof(to), "%s/%.*s", dir, (int)(eq - c->files[i]), c->files[i]);
		snprintf(from, sizeof(from), "%s/fixtures/diagnose/%s", fix, eq + 1);
		ck_assert_int_eq(access(from, R_OK), 0);
		ck_assert_int_eq(symlink(from, to), 0);
	}
}

static void remove_exports(const struct fw_case *c, const char *dir)
{
	char to[VP_PATH_MAX];

	for (int i = 0; i < N_ELEMS(c->files) && c->files[i]; i++) {
		snprintf(to, sizeof(to), "%s/%.*s", dir,
		         (int)(strchr(c->files[i], '=') - c->files[i]), c->files[i]);
		unlink(to);
	}
	rmdir(dir);
}

START_TEST(test_fw_line)
{
	const struct fw_case *c = &fw_cases[_i];
	char dir[64], doc[1024], err[4096] = "";
	struct vp_config *cfg = NULL;
	struct vp_status_fw *fw = NULL;
	const struct vp_status_fw_line *l;
	struct vp_buf b;
	char *json;
	json_t *j;

	make_exports(c, dir, sizeof(dir));
	snprintf(doc, sizeof(doc), "{'targets': [%s, {'name': 'plain', 'url': "
	         "'tcp://10.128.0.5:5432'}]}", c->target);
	json = json_of(doc);
	ck_assert_msg(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(vp_status_fw_load(dir, cfg->targets, cfg->n_targets, &fw), 0);
	ck_assert_uint_eq(fw->n, 1);
	ck_assert_ptr_null(vp_status_fw_find(fw, "plain"));
	l = vp_status_fw_find(fw, cfg->targets[0].name);
	ck_assert_ptr_nonnull(l);
	ck_assert_msg(l->answer == c->answer, "row %d: %s: %s", _i,
	              vp_status_fw_answer_name(l->answer), l->text);
	ck_assert_msg(strstr(l->text, c->text), "row %d: %s", _i, l->text);
	if (c->fix)
		ck_assert_msg(strstr(l->fix, c->fix), "row %d: fix %s", _i, l->fix);
	else
		ck_assert_str_eq(l->fix, "");

	vp_buf_init(&b, 1 << 20);
	vp_status_fw_html(&b, l);
	ck_assert_int_eq(b.err, 0);
	ck_assert_msg(strstr(b.data, c->html), "row %d: %s", _i, b.data);
	ck_assert_ptr_null(strstr(b.data, "'")); /* every quote of the text as &#39; */
	vp_buf_done(&b);

	j = vp_status_fw_json(fw, l);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "answer")),
	                 vp_status_fw_answer_name(c->answer));
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")), l->text);
	ck_assert_int_eq(json_is_null(json_object_get(j, "fix")), c->fix == NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "exports")), dir);
	json_decref(j);

	vp_status_fw_free(fw);
	vp_config_free(cfg);
	free(json);
	remove_exports(c, dir);
}
END_TEST

/* A user who puts a FIFO in an export's place just after the agent looked
 * at the name: stat() of 'swap_path' answers for the file that is there,
 * then replaces it with a FIFO that no writer ever opens. The agent checks
 * the descriptor it reads, not the name, so it never asks; code that
 * stat()ed the name and then opened it would block in open() for good. */
static const char *swap_path;

int stat(const char *restrict path, struct stat *restrict st)
{
	int r = fstatat(AT_FDCWD, path, st, 0);

	if (r == 0 && swap_path != NULL && strcmp(path, swap_path) == 0) {
		swap_path = NULL;
		ck_assert_int_eq(unlink(path), 0);
		ck_assert_int_eq(mkfifo(path, 0600), 0);
	}
	return r;
}

/* fw_cases[0] (allowed) loaded from 'dir'; the line of 'orders-db'. */
static const struct vp_status_fw_line *load_case0(const char *dir, struct vp_config **cfg,
                                                   struct vp_status_fw **fw)
{
	char doc[1024], err[4096] = "";
	char *json;

	snprintf(doc, sizeof(doc), "{'targets': [%s]}", fw_cases[0].target);
	json = json_of(doc);
	ck_assert_msg(vp_config_load_string(json, "t.json", cfg, err, sizeof(err)) == 0, "%s", err);
	free(json);
	ck_assert_int_eq(vp_status_fw_load(dir, (*cfg)->targets, (*cfg)->n_targets, fw), 0);
	ck_assert_uint_eq((*fw)->n, 1);
	return &(*fw)->lines[0];
}

static void free_case0(struct vp_config *cfg, struct vp_status_fw *fw)
{
	vp_status_fw_free(fw);
	vp_config_free(cfg);
}

/* A FIFO in place of an export: refused at once, the message naming the
 * file; with the file back, the exports load. alarm(): a test that blocks
 * on the FIFO fails instead of hanging. */
START_TEST(test_fw_fifo)
{
	const struct fw_case *c = &fw_cases[0];
	char dir[64], rules[VP_PATH_MAX], want[VP_PATH_MAX + 64], target[VP_PATH_MAX];
	const struct vp_status_fw_line *l;
	struct vp_config *cfg = NULL;
	struct vp_status_fw *fw = NULL;
	ssize_t n;

	alarm(10);
	make_exports(c, dir, sizeof(dir));
	snprintf(rules, sizeof(rules), "%s/firewall-rules.json", dir);
	n = readlink(rules, target, sizeof(target) - 1);
	ck_assert_int_gt(n, 0);
	target[n] = '\0';
	ck_assert_int_eq(unlink(rules), 0);
	ck_assert_int_eq(mkfifo(rules, 0600), 0);

	l = load_case0(dir, &cfg, &fw);
	snprintf(want, sizeof(want), "'%s': a FIFO, not a regular file", rules);
	ck_assert_msg(strstr(fw->error, want), "%s", fw->error);
	ck_assert_int_eq(l->answer, VP_STATUS_FW_UNKNOWN);
	ck_assert_msg(strstr(l->text, want), "%s", l->text);
	free_case0(cfg, fw);

	ck_assert_int_eq(unlink(rules), 0);
	ck_assert_int_eq(symlink(target, rules), 0);
	l = load_case0(dir, &cfg, &fw);
	ck_assert_str_eq(fw->error, "");
	ck_assert_msg(l->answer == VP_STATUS_FW_ALLOWED, "%s", l->text);
	free_case0(cfg, fw);
	remove_exports(c, dir);
	alarm(0);
}
END_TEST

/* The FIFO comes right after a stat() of the name (see stat() above):
 * either the file was read before, or the FIFO is refused; never a wait. */
START_TEST(test_fw_fifo_after_stat)
{
	const struct fw_case *c = &fw_cases[0];
	char dir[64], rules[VP_PATH_MAX];
	const struct vp_status_fw_line *l;
	struct vp_config *cfg = NULL;
	struct vp_status_fw *fw = NULL;

	alarm(10);
	make_exports(c, dir, sizeof(dir));
	snprintf(rules, sizeof(rules), "%s/firewall-rules.json", dir);
	swap_path = rules;
	l = load_case0(dir, &cfg, &fw);
	ck_assert_msg(l->answer == VP_STATUS_FW_ALLOWED || strstr(fw->error, "a FIFO"), "%s",
	              l->text);
	swap_path = NULL;
	free_case0(cfg, fw);
	remove_exports(c, dir);
	alarm(0);
}
END_TEST

/* The exports are untrusted: hostile text shows escaped, and no line (a
 * target without connector_range) is an empty hidden block and null. */
START_TEST(test_fw_render_hostile)
{
	struct vp_status_fw fw = { .dir = "/x" };
	struct vp_status_fw_line l = { .target = "t", .answer = VP_STATUS_FW_DENIED,
	                               .text = "rule '<script>alert(1)</script>' & \"x\"",
	                               .fix = "gcloud <img src=x onerror=alert(2)>" };
	struct vp_buf b;
	json_t *j;

	vp_buf_init(&b, 4096);
	vp_status_fw_html(&b, &l);
	ck_assert_int_eq(b.err, 0);
	ck_assert_ptr_null(strstr(b.data, "<script"));
	ck_assert_ptr_null(strstr(b.data, "<img"));
	ck_assert_ptr_nonnull(strstr(b.data, "rule &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; "
	                                     "&amp; &quot;x&quot;"));
	ck_assert_ptr_nonnull(strstr(b.data, "<code>gcloud &lt;img src=x onerror=alert(2)&gt;</code>"));
	vp_buf_done(&b);

	vp_buf_init(&b, 4096);
	vp_status_fw_html(&b, NULL);
	ck_assert_ptr_nonnull(strstr(b.data, "<div class=\"fw fw-none\" hidden>"));
	vp_buf_done(&b);
	j = vp_status_fw_json(&fw, NULL);
	ck_assert(json_is_null(j));
	json_decref(j);
	ck_assert_ptr_null(vp_status_fw_find(NULL, "t"));
	ck_assert_ptr_null(vp_status_fw_free(NULL));
}
END_TEST

/* No target names connector_range: nothing is read, even from a directory
 * that does not exist. */
START_TEST(test_fw_no_range)
{
	char err[4096] = "";
	struct vp_config *cfg = NULL;
	struct vp_status_fw *fw = NULL;
	char *json = json_of("{'targets': [{'name': 'a', 'url': 'tcp://10.1.2.3:80'}]}");

	ck_assert_msg(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(vp_status_fw_load("/nonexistent/vpcprobe", cfg->targets, cfg->n_targets,
	                                   &fw), 0);
	ck_assert_uint_eq(fw->n, 0);
	ck_assert_str_eq(fw->error, "");
	vp_status_fw_free(fw);
	vp_config_free(cfg);
	free(json);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("status_fw");
	TCase *tc = tcase_create("firewall line");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_fw_line, 0, N_ELEMS(fw_cases));
	tcase_add_test(tc, test_fw_render_hostile);
	tcase_add_test(tc, test_fw_no_range);
	tcase_add_test(tc, test_fw_fifo);
	tcase_add_test(tc, test_fw_fifo_after_stat);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
