/* vpcprobe diagnose: the seed's flowchart for one target, step by step
 * (issue 7). Reads gcloud's exports, probes the target unless told not to,
 * runs agent/diagnose.c's steps and prints them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cli.h"
#include "agent/diagnose.h"
#include "agent/probe_once.h"
#include "agent/term.h"
#include "probes/verdict.h"

/* The help, in parts: ISO C bounds one string literal to 4095 bytes. */
static const char *const diagnose_usage[] = {
	"Usage: vpcprobe diagnose [--exports DIR] [--service FILE] [--connector FILE]\n"
	"                         [--firewall-rules FILE] [--effective-firewalls FILE]\n"
	"                         [--network FILE] [--instance FILE]\n"
	"                         [--sql-instance FILE] [--peerings FILE] [--logs FILE]\n"
	"                         [--results FILE] [--no-probe] [--json] TARGET_URL\n"
	"\n"
	"Walks the flowchart of \"connection refused from Cloud Run\" for one target,\n"
	"step by step, from what gcloud exports (--format=json) and from a probe of\n"
	"the target, and names the cause and the gcloud command that fixes it. It\n"
	"needs no credentials: the exports can be made anywhere and copied here.\n"
	"\n"
	"TARGET_URL is a target as `vpcprobe check` takes it: tcp://HOST:PORT,\n"
	"postgres://HOST[:5432], redis://HOST[:6379], http(s)://HOST[:PORT]/PATH.\n"
	"\n"
	"Steps (each pass, fail or unknown; a missing input makes its steps\n"
	"unknown, never a guess):\n"
	"  1 connector_ready            the connector's state is READY\n"
	"                               (fails as connector_not_ready)\n"
	"  2 connector_attached         the service names the connector, or uses\n"
	"                               Direct VPC egress (connector_not_attached)\n"
	"  3 same_region                service and connector share a region\n"
	"                               (region_mismatch)\n"
	"  4 egress_setting             private-ranges-only egress reaches the\n"
	"                               target's address (egress_excludes_target)\n"
	"  5 firewall_admits_connector  the VPC firewall rules, evaluated for the\n"
	"                               connector's /28 and network tags to the\n"
	"                               target instance and port, admit it; names\n"
	"                               the deciding rule (firewall_denies); with\n"
	"                               hierarchical and network firewall policies\n"
	"                               in their documented order\n"
	"  6 target_listening           the probe's verdict and listener table\n"
	"                               (localhost_bind, not_listening)\n"
	"  7 cloudsql_private_path      Cloud SQL has a private IP on a network\n"
	"                               peered by private services access\n"
	"                               (no_private_path)\n"
	"  8 logs_show_path             flow logs show the packets arriving; no\n"
	"                               firewall log DENIED them (firewall_denies)\n"
	"  9 connector_capacity         timeouts although the firewall admits: a\n"
	"                               hint of a saturated connector\n"
	"                               (connector_saturated)\n"
	"The cause is the first failing step's.\n"
	"\n",
	"Inputs (README.md, section \"diagnose\", gives the gcloud command for each):\n"
	"      --exports DIR          take every input below that is not given from\n"
	"                             DIR, by its file name: service.json,\n"
	"                             connector.json, firewall-rules.json,\n"
	"                             effective-firewalls.json, network.json,\n"
	"                             instance.json, sql-instance.json,\n"
	"                             peerings.json, logs.json, results.jsonl\n"
	"      --service FILE         gcloud run services describe\n"
	"      --connector FILE       gcloud compute networks vpc-access connectors\n"
	"                             describe\n"
	"      --firewall-rules FILE  gcloud compute firewall-rules list\n"
	"      --effective-firewalls FILE\n"
	"                             gcloud compute networks get-effective-firewalls\n"
	"                             NETWORK: the hierarchical and network firewall\n"
	"                             policies (and the VPC rules, when\n"
	"                             --firewall-rules is not given)\n"
	"      --network FILE         gcloud compute networks describe NETWORK: the\n"
	"                             policies' enforcement order\n"
	"      --instance FILE        gcloud compute instances describe (the VM that\n"
	"                             has the target's address)\n"
	"      --sql-instance FILE    gcloud sql instances describe\n"
	"      --peerings FILE        gcloud services vpc-peerings list\n"
	"      --logs FILE            gcloud logging read, VPC Flow Logs and\n"
	"                             Firewall Rules Logging entries\n"
	"      --results FILE         `vpcprobe check --json` output; its records of\n"
	"                             TARGET_URL stand for a probe\n"
	"\n"
	"Options:\n"
	"      --no-probe   do not probe; without --results the target_listening\n"
	"                   and connector_capacity steps stay unknown\n"
	"      --json       print {\"target\", \"steps\": [{\"step\", \"status\",\n"
	"                   \"evidence\", \"fix\"}], \"cause\"} instead of the steps\n"
	"  -h, --help       show this help\n"
	"\n"
	"Without --results or --no-probe the target is probed once, live, with the\n"
	"configuration's DNS servers and timeout (" VP_CONFIG_DEFAULT_PATH " when\n"
	"it exists, else the defaults), from this host: run it on a VM in the\n"
	"connector's network, or on the target for the listener table.\n"
	"\n"
	"Exit status: 0 no step fails, 1 a step fails (the cause is printed),\n"
	"2 bad usage or an input that cannot be read (the message names the file\n"
	"and the JSON path).\n"
	"\n"
	"Example:\n"
	"  vpcprobe diagnose --exports ./exports postgres://10.20.0.3:5432\n",
};

struct diag {
	const char *path[VP_GC_IN_MAX];      /* borrowed from argv or 'found' */
	char found[VP_GC_IN_MAX][VP_PATH_MAX];
	bool json;
	bool no_probe;
	struct vp_url url;
	char *target;                        /* borrowed from argv */
	/* The inputs read; each owned, NULL when not given. */
	struct vp_gc_service *service;
	struct vp_gc_connector *connector;
	struct vp_fw_ruleset rules;
	struct vp_fw_ruleset eff_rules;      /* effective-firewalls.json's VPC rules */
	struct vp_fw_policies policies;
	enum vp_fw_order fw_order;
	struct vp_gc_instance *instance;
	struct vp_gc_sql *sql;
	struct vp_gc_peerings peerings;
	struct vp_gc_logs logs;
	struct vp_gc_results results;
	bool have_rules, have_effective, have_peerings, have_logs, have_results;
};

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "vpcprobe diagnose: %s%s%s%s\nTry 'vpcprobe diagnose --help'.\n", msg,
	        arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
	return -EINVAL;
}

static int parse_args(struct diag *d, int argc, char **argv, const char **exports)
{
	static const struct option opts[] = {
		{ "exports", required_argument, NULL, 'E' },
		{ "service", required_argument, NULL, VP_GC_IN_SERVICE },
		{ "connector", required_argument, NULL, VP_GC_IN_CONNECTOR },
		{ "firewall-rules", required_argument, NULL, VP_GC_IN_RULES },
		{ "effective-firewalls", required_argument, NULL, VP_GC_IN_EFFECTIVE },
		{ "network", required_argument, NULL, VP_GC_IN_NETWORK },
		{ "instance", required_argument, NULL, VP_GC_IN_INSTANCE },
		{ "sql-instance", required_argument, NULL, VP_GC_IN_SQL },
		{ "peerings", required_argument, NULL, VP_GC_IN_PEERINGS },
		{ "logs", required_argument, NULL, VP_GC_IN_LOGS },
		{ "results", required_argument, NULL, VP_GC_IN_RESULTS },
		{ "no-probe", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c >= 0 && c < VP_GC_IN_MAX)
			d->path[c] = optarg;
		else if (c == 'E')
			*exports = optarg;
		else if (c == 'n')
			d->no_probe = true;
		else if (c == 'j')
			d->json = true;
		else if (c == 'h')
			return 1;
		else
			return usage_error("bad option", NULL);
	}
	if (argc - optind != 1)
		return usage_error(argc - optind ? "expected one TARGET_URL, got more" :
		                   "expected a TARGET_URL", NULL);
	d->target = argv[optind];
	return 0;
}

/* --exports DIR: the inputs not given otherwise, from the files of DIR. */
static int find_exports(struct diag *d, const char *dir)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		fprintf(stderr, "vpcprobe diagnose: --exports '%s': %s\n", dir, strerror(errno));
		return -EINVAL;
	}
	if (!S_ISDIR(st.st_mode))
		return usage_error("--exports needs a directory, not", dir);
	for (int i = 0; i < VP_GC_IN_MAX; i++) {
		if (d->path[i])
			continue;
		if ((size_t)snprintf(d->found[i], sizeof(d->found[i]), "%s/%s", dir,
		                     vp_gc_input_file(i)) >= sizeof(d->found[i]))
			return usage_error("--exports: path too long:", dir);
		if (access(d->found[i], F_OK) == 0)
			d->path[i] = d->found[i];
	}
	return 0;
}

/* Room for each input that is given; false when out of memory. */
static bool alloc_inputs(struct diag *d)
{
	const char *const *p = d->path;

	if (p[VP_GC_IN_SERVICE])
		d->service = calloc(1, sizeof(*d->service));
	if (p[VP_GC_IN_CONNECTOR])
		d->connector = calloc(1, sizeof(*d->connector));
	if (p[VP_GC_IN_INSTANCE])
		d->instance = calloc(1, sizeof(*d->instance));
	if (p[VP_GC_IN_SQL])
		d->sql = calloc(1, sizeof(*d->sql));
	return !((p[VP_GC_IN_SERVICE] && !d->service) || (p[VP_GC_IN_CONNECTOR] && !d->connector) ||
	         (p[VP_GC_IN_INSTANCE] && !d->instance) || (p[VP_GC_IN_SQL] && !d->sql));
}

/* Reads every input given; the first that fails stops it. */
static int read_inputs(struct diag *d, char *err, size_t len)
{
	const char *const *p = d->path;
	int r = 0;

	if (!alloc_inputs(d)) {
		snprintf(err, len, "out of memory for the inputs");
		return -ENOMEM;
	}
	if (p[VP_GC_IN_SERVICE])
		r = vp_gc_read_service(p[VP_GC_IN_SERVICE], NULL, d->service, err, len);
	if (r >= 0 && p[VP_GC_IN_CONNECTOR])
		r = vp_gc_read_connector(p[VP_GC_IN_CONNECTOR], NULL, d->connector, err, len);
	if (r >= 0 && p[VP_GC_IN_RULES])
		r = vp_gc_read_firewall_rules(p[VP_GC_IN_RULES], NULL, &d->rules, err, len);
	if (r >= 0 && p[VP_GC_IN_EFFECTIVE])
		r = vp_gc_read_effective_firewalls(p[VP_GC_IN_EFFECTIVE], NULL, &d->eff_rules,
		                                   &d->policies, err, len);
	if (r >= 0 && p[VP_GC_IN_NETWORK])
		r = vp_gc_read_network(p[VP_GC_IN_NETWORK], NULL, &d->fw_order, err, len);
	if (r >= 0 && p[VP_GC_IN_INSTANCE])
		r = vp_gc_read_instance(p[VP_GC_IN_INSTANCE], NULL, d->instance, err, len);
	if (r >= 0 && p[VP_GC_IN_SQL])
		r = vp_gc_read_sql(p[VP_GC_IN_SQL], NULL, d->sql, err, len);
	if (r >= 0 && p[VP_GC_IN_PEERINGS])
		r = vp_gc_read_peerings(p[VP_GC_IN_PEERINGS], &d->peerings, err, len);
	if (r >= 0 && p[VP_GC_IN_LOGS])
		r = vp_gc_read_logs(p[VP_GC_IN_LOGS], &d->logs, err, len);
	if (r >= 0 && p[VP_GC_IN_RESULTS])
		r = vp_gc_read_results(p[VP_GC_IN_RESULTS], d->target, d->url.host, d->url.port,
		                       &d->results, err, len);
	d->have_rules = r >= 0 && p[VP_GC_IN_RULES];
	d->have_effective = r >= 0 && p[VP_GC_IN_EFFECTIVE];
	d->have_peerings = r >= 0 && p[VP_GC_IN_PEERINGS];
	d->have_logs = r >= 0 && p[VP_GC_IN_LOGS];
	d->have_results = r >= 0 && p[VP_GC_IN_RESULTS];
	return r;
}

/* The live probe: one run of the target, its results as records. */
static int probe_live(struct diag *d)
{
	char err[VP_ERR_MAX];
	struct vp_config *cfg = NULL;
	struct vp_target t = { 0 };
	struct vp_target_run run = { 0 };
	int r = vp_cli_load_config(NULL, &cfg);

	if (r < 0)
		return r;
	r = vp_target_from_url(&t, d->target, cfg->timeout_ms, cfg->interval_s, err, sizeof(err));
	if (r >= 0) {
		run.target = &t;
		run.timeout_ms = t.timeout_ms;
		r = vp_probe_once(cfg, &run, 1, "vpcprobe diagnose");
	}
	d->results.v = calloc(run.n_results ? run.n_results : 1, sizeof(*d->results.v));
	if (r >= 0 && !d->results.v)
		r = -ENOMEM;
	for (size_t i = 0; r >= 0 && i < run.n_results; i++) {
		const struct vp_probe_result *res = &run.results[i];
		struct vp_gc_result *o = &d->results.v[d->results.n++];

		snprintf(o->address, sizeof(o->address), "%s", res->address);
		o->port = res->port;
		snprintf(o->verdict, sizeof(o->verdict), "%s", vp_verdict_name(res->v.verdict));
		snprintf(o->reason, sizeof(o->reason), "%s", vp_verdict_reason(&res->v));
		snprintf(o->detail, sizeof(o->detail), "%s", res->v.detail);
	}
	d->have_results = r >= 0;
	vp_target_run_clear(&run);
	vp_url_free(&t.url);
	vp_config_free(cfg);
	return r;
}

static void print_steps(const struct vp_diag_input *in, const struct vp_diag_report *rep)
{
	static const char *const colours[] = {
		[VP_DIAG_UNKNOWN] = "\033[33m", [VP_DIAG_PASS] = "\033[32m", [VP_DIAG_FAIL] = "\033[31m",
	};
	bool colour = vp_term_colour(stdout);
	char text[VP_DIAG_TEXT_MAX];

	vp_term_safe(text, sizeof(text), in->target);
	printf("vpcprobe diagnose %s (probe: %s)\n\n", text,
	       in->results ? in->results_from : "none");
	for (int i = 0; i < VP_DIAG_STEP_MAX; i++) {
		const struct vp_diag_step_out *o = &rep->steps[i];
		const char *st = o->status == VP_DIAG_FAIL ? "FAIL" : vp_diag_status_name(o->status);

		printf("%2d. %-26s %s%s%s\n", i + 1, vp_diag_step_name(i), colour ? colours[o->status] : "",
		       st, colour ? "\033[0m" : "");
		vp_term_safe(text, sizeof(text), o->evidence);
		printf("    %s\n", text);
		if (o->fix[0]) {
			vp_term_safe(text, sizeof(text), o->fix);
			printf("    fix: %s\n", text);
		}
	}
	if (rep->cause)
		printf("\ncause: %s\n", rep->cause);
	else
		printf("\ncause: none found: no step fails\n");
}

static int report(struct diag *d)
{
	struct vp_diag_input in = {
		.target = d->target, .url = &d->url, .service = d->service, .connector = d->connector,
		.rules = d->have_rules ? &d->rules : d->have_effective ? &d->eff_rules : NULL,
		.policies = d->have_effective ? &d->policies : NULL, .fw_order = d->fw_order,
		.instance = d->instance, .sql = d->sql,
		.peerings = d->have_peerings ? &d->peerings : NULL, .logs = d->have_logs ? &d->logs : NULL,
		.results = d->have_results ? &d->results : NULL,
		.results_from = d->path[VP_GC_IN_RESULTS] ? d->path[VP_GC_IN_RESULTS] : "a live probe",
	};
	struct vp_diag_report *rep = calloc(1, sizeof(*rep));
	json_t *j = NULL;
	char *text = NULL;
	int status = VP_EXIT_USAGE;

	if (!rep || vp_diagnose(&in, rep) < 0) {
		fputs("vpcprobe diagnose: out of memory for the report\n", stderr);
		goto out;
	}
	if (d->json) {
		j = vp_diag_json(&in, rep);
		text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
		if (!text) {
			fputs("vpcprobe diagnose: out of memory for the JSON report\n", stderr);
			goto out;
		}
		printf("%s\n", text);
	} else {
		print_steps(&in, rep);
	}
	status = rep->cause ? VP_EXIT_NOT_OK : VP_EXIT_OK;
out:
	free(text);
	json_decref(j);
	free(rep);
	return status;
}

static void diag_done(struct diag *d)
{
	free(d->service);
	free(d->connector);
	vp_url_free(&d->url);
	vp_fw_ruleset_done(&d->rules);
	vp_fw_ruleset_done(&d->eff_rules);
	vp_fw_policies_done(&d->policies);
	free(d->instance);
	free(d->sql);
	vp_gc_peerings_done(&d->peerings);
	vp_gc_logs_done(&d->logs);
	vp_gc_results_done(&d->results);
}

int vp_cmd_diagnose(int argc, char **argv)
{
	struct diag *d = calloc(1, sizeof(*d));
	const char *exports = NULL;
	char err[VP_ERR_MAX];
	int status = VP_EXIT_USAGE;
	int r;

	if (!d) {
		fputs("vpcprobe diagnose: out of memory\n", stderr);
		return VP_EXIT_USAGE;
	}
	r = parse_args(d, argc, argv, &exports);
	if (r > 0) {
		for (size_t i = 0; i < sizeof(diagnose_usage) / sizeof(diagnose_usage[0]); i++)
			fputs(diagnose_usage[i], stdout);
		status = VP_EXIT_OK;
		goto out;
	}
	if (r < 0 || (exports && find_exports(d, exports) < 0))
		goto out;
	if (vp_url_parse(d->target, &d->url, err, sizeof(err)) < 0) {
		fprintf(stderr, "vpcprobe diagnose: %s\n", err);
		goto out;
	}
	if (read_inputs(d, err, sizeof(err)) < 0) {
		fprintf(stderr, "vpcprobe diagnose: %s\n", err);
		goto out;
	}
	if (!d->have_results && !d->no_probe && probe_live(d) < 0)
		goto out;
	status = report(d);
out:
	diag_done(d);
	free(d);
	return status;
}
