/* vpcprobe check: probe once, print, exit 0 when every probe is ok. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/cli.h"
#include "agent/engine.h"
#include "agent/record.h"
#include "agent/term.h"

static const char check_usage[] =
	"Usage: vpcprobe check [-c FILE] [--json] [--timeout-ms MS] [URL...]\n"
	"\n"
	"Probes every target once, all at once, and prints one result per address:\n"
	"its verdict (ok, refused, timeout, unreachable, local_error, ...), the\n"
	"reason, the timings and, for a failure, the likely cause and what to do.\n"
	"\n"
	"With URLs, those are probed instead of the configuration's targets:\n"
	"  tcp://HOST:PORT   postgres://HOST[:5432]   redis://HOST[:6379]\n"
	"  rediss://HOST[:6378]   http://HOST[:PORT]/PATH   https://HOST[:PORT]/PATH\n"
	"HOST is an IPv4 address or a bracketed IPv6 address ([fd00::1]); this\n"
	"version does not resolve names. postgres, redis and http targets are\n"
	"checked at the TCP level, and their detail says so.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE    configuration file (default: " VP_CONFIG_DEFAULT_PATH "\n"
	"                       when it exists, else the embedded default: this\n"
	"                       host's 5432, 6379 and 8080)\n"
	"      --json           print JSON Lines: one result record per line, with\n"
	"                       the probed \"url\" added\n"
	"      --timeout-ms MS  deadline of every probe, 1..600000 (default: the\n"
	"                       configuration's, 2000)\n"
	"  -h, --help           show this help\n"
	"\n"
	"The table is coloured only on a terminal, and never when NO_COLOR is set.\n"
	"\n"
	"Exit status: 0 every probe ok, 1 at least one probe not ok, 2 bad usage or\n"
	"bad configuration.\n";

/* One thing to probe, from the configuration or the command line. */
struct item {
	const struct vp_target *target; /* borrowed, NULL for a URL from the command line */
	const char *name;        /* borrowed from the config or argv */
	const char *url_text;    /* borrowed */
	struct vp_url url;
	uint32_t timeout_ms;
};

struct job {
	struct vp_probe_req req;
	const struct item *item; /* borrowed */
	struct vp_probe_result res;
};

struct run {
	const struct vp_config *cfg;  /* borrowed */
	bool json;
	struct item *items;           /* owned */
	size_t n_items;
	struct job *jobs;             /* owned */
	size_t n_jobs;
	size_t n_done;
};

static int item_from_url(struct item *it, const char *text, uint32_t timeout_ms)
{
	char err[VP_ERR_MAX];

	if (vp_url_parse(text, &it->url, err, sizeof(err)) < 0) {
		fprintf(stderr, "vpcprobe check: %s\n", err);
		return -EINVAL;
	}
	it->name = text;
	it->url_text = text;
	it->timeout_ms = timeout_ms;
	return 0;
}

/* Until DNS arrives, every host must be an address. */
static int item_address(const struct item *it, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (it->url.host_type == VP_HOST_IPV4) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(it->url.port);
		if (inet_pton(AF_INET, it->url.host, &in->sin_addr) == 1)
			return 0;
	} else if (it->url.host_type == VP_HOST_IPV6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(it->url.port);
		if (inet_pton(AF_INET6, it->url.host, &in6->sin6_addr) == 1)
			return 0;
	}
	fprintf(stderr, "vpcprobe check: target '%s': host '%s' is a name, and this version does not "
	        "resolve names yet; give an IPv4 address or a bracketed IPv6 address\n",
	        it->name, it->url.host);
	return -EINVAL;
}

static void on_result(struct vp_probe_req *req, const struct vp_probe_result *res, void *arg)
{
	struct run *run = arg;
	struct job *job = req->data;

	job->res = *res;
	job->res.obs.address = job->res.address;
	run->n_done++;
}

static int probe_all(struct run *run)
{
	uv_loop_t loop;
	struct vp_engine *engine;
	int r;

	r = uv_loop_init(&loop);
	if (r < 0) {
		fprintf(stderr, "vpcprobe check: uv_loop_init: %s\n", uv_strerror(r));
		return r;
	}
	engine = vp_engine_new(&loop, run->cfg->max_in_flight, on_result, run);
	if (!engine) {
		fputs("vpcprobe check: out of memory for the probe engine\n", stderr);
		uv_loop_close(&loop);
		return -ENOMEM;
	}
	for (size_t i = 0; i < run->n_jobs; i++)
		vp_engine_submit(engine, &run->jobs[i].req);
	uv_run(&loop, UV_RUN_DEFAULT);
	vp_engine_free(engine);
	r = uv_loop_close(&loop);
	if (r < 0)
		fprintf(stderr, "vpcprobe check: uv_loop_close: %s, ignoring\n", uv_strerror(r));
	return 0;
}

static void print_json(const struct run *run)
{
	for (size_t i = 0; i < run->n_jobs; i++) {
		const struct job *job = &run->jobs[i];
		struct vp_record_ctx ctx = {
			.agent = run->cfg->agent_name, .target = job->item->name,
			.host = job->item->url.host, .url = job->item->url_text,
			.kind = job->item->url.kind,
		};
		json_t *rec = vp_record_json(&ctx, &job->res);
		char *line = rec ? json_dumps(rec, VP_RECORD_DUMP_FLAGS) : NULL;

		if (line)
			printf("%s\n", line);
		else
			fprintf(stderr, "vpcprobe check: out of memory writing the record of '%s'\n",
			        job->item->name);
		free(line);
		json_decref(rec);
	}
}

static int print_table(const struct run *run)
{
	struct vp_term_row *rows = calloc(run->n_jobs ? run->n_jobs : 1, sizeof(*rows));

	if (!rows) {
		fputs("vpcprobe check: out of memory for the table\n", stderr);
		return -ENOMEM;
	}
	for (size_t i = 0; i < run->n_jobs; i++) {
		rows[i].target = run->jobs[i].item->name;
		rows[i].res = &run->jobs[i].res;
	}
	vp_term_print(stdout, rows, run->n_jobs);
	free(rows);
	return 0;
}

/* The items to probe: the URLs given, or the configuration's targets. */
static int collect_items(struct run *run, char **urls, size_t n_urls, uint32_t timeout_ms)
{
	const struct vp_config *cfg = run->cfg;
	size_t n = n_urls ? n_urls : cfg->n_targets;

	run->items = calloc(n ? n : 1, sizeof(*run->items));
	if (!run->items)
		return -ENOMEM;
	for (size_t i = 0; i < n_urls; i++) {
		if (item_from_url(&run->items[i], urls[i], timeout_ms ? timeout_ms : cfg->timeout_ms) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; !n_urls && i < cfg->n_targets; i++) {
		const struct vp_target *t = &cfg->targets[i];
		run->items[i] = (struct item){
			.target = t, .name = t->name, .url_text = t->url_text, .url = t->url,
			.timeout_ms = timeout_ms ? timeout_ms : t->timeout_ms,
		};
	}
	run->n_items = n;
	return 0;
}

/* One job per address of every item; with names unresolved, one per item. */
static int make_jobs(struct run *run)
{
	run->jobs = calloc(run->n_items ? run->n_items : 1, sizeof(*run->jobs));
	if (!run->jobs)
		return -ENOMEM;
	for (size_t i = 0; i < run->n_items; i++) {
		struct job *job = &run->jobs[run->n_jobs];

		if (item_address(&run->items[i], &job->req.addr) < 0)
			return -EINVAL;
		job->item = &run->items[i];
		job->req.timeout_ms = run->items[i].timeout_ms;
		job->req.kind = run->items[i].url.kind;
		job->req.target = run->items[i].target;
		job->req.data = job;
		run->n_jobs++;
	}
	return 0;
}

static int parse_timeout(const char *s, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < VP_TIMEOUT_MS_MIN || v > VP_TIMEOUT_MS_MAX) {
		fprintf(stderr, "vpcprobe check: --timeout-ms '%s': expected milliseconds in %d..%d\n", s,
		        VP_TIMEOUT_MS_MIN, VP_TIMEOUT_MS_MAX);
		return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

int vp_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	struct vp_config *cfg = NULL;
	struct run run = { 0 };
	uint32_t timeout_ms = 0;
	int status = VP_EXIT_USAGE;
	int c;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			run.json = true;
			break;
		case 't':
			if (parse_timeout(optarg, &timeout_ms) < 0)
				return VP_EXIT_USAGE;
			break;
		case 'h':
			fputs(check_usage, stdout);
			return VP_EXIT_OK;
		default:
			fputs("Try 'vpcprobe check --help'.\n", stderr);
			return VP_EXIT_USAGE;
		}
	}
	if (vp_cli_load_config(path, &cfg) < 0)
		return VP_EXIT_USAGE;
	run.cfg = cfg;
	if (collect_items(&run, argv + optind, (size_t)(argc - optind), timeout_ms) < 0)
		goto out;
	if (make_jobs(&run) < 0)
		goto out;
	if (run.n_jobs == 0) {
		fprintf(stderr, "vpcprobe check: config '%s' has no targets; nothing to probe\n", cfg->source);
		status = VP_EXIT_OK;
		goto out;
	}
	if (probe_all(&run) < 0)
		goto out;
	if (run.json)
		print_json(&run);
	else if (print_table(&run) < 0)
		goto out;
	status = VP_EXIT_OK;
	for (size_t i = 0; i < run.n_jobs; i++)
		if (run.jobs[i].res.v.verdict != VP_VERDICT_OK)
			status = VP_EXIT_NOT_OK;
out:
	free(run.jobs);
	free(run.items);
	vp_config_free(cfg);
	return status;
}
