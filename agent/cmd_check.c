/* vpcprobe check: probe once, print, exit 0 when every probe is ok. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/cli.h"
#include "agent/probe_once.h"
#include "agent/runner.h"
#include "agent/record.h"
#include "agent/term.h"
#include "config/url.h"

static const char check_usage[] =
	"Usage: vpcprobe check [-c FILE] [--json] [--timeout-ms MS]\n"
	"                      [--dns-server ADDR[:PORT]]... [URL...]\n"
	"\n"
	"Probes every target once, all at once, and prints one result per address:\n"
	"its verdict (ok, refused, timeout, unreachable, local_error, ...), the\n"
	"reason, the timings and, for a failure, the likely cause and what to do.\n"
	"\n"
	"With URLs, those are probed instead of the configuration's targets:\n"
	"  tcp://HOST:PORT   postgres://HOST[:5432]   redis://HOST[:6379]\n"
	"  rediss://HOST[:6378]   http://HOST[:PORT]/PATH   https://HOST[:PORT]/PATH\n"
	"HOST is a name, an IPv4 address or a bracketed IPv6 address ([fd00::1]).\n"
	"A name is resolved (A and AAAA) and every address is probed and reported\n"
	"on its own, so one bad backend cannot hide behind a good one.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE    configuration file (default: " VP_CONFIG_DEFAULT_PATH "\n"
	"                       when it exists, else the embedded default: this\n"
	"                       host's 5432, 6379 and 8080)\n"
	"      --json           print JSON Lines: one result record per line, with\n"
	"                       the probed \"url\" added\n"
	"      --timeout-ms MS  deadline of every probe, 1..600000 (default: the\n"
	"                       configuration's, 2000). A name's lookup gets at\n"
	"                       most half of it, so the connect keeps the rest\n"
	"      --dns-server ADDR[:PORT]\n"
	"                       resolve names through this DNS server instead of\n"
	"                       agent.dns_servers or /etc/resolv.conf; repeat for\n"
	"                       up to 8 servers, asked in order. ADDR is an IPv4\n"
	"                       or a bracketed IPv6 address ([fd00::53]:5353);\n"
	"                       PORT defaults to 53. Tells a broken resolver from\n"
	"                       a broken record (servfail, dns_timeout)\n"
	"  -h, --help           show this help\n"
	"\n"
	"The table is coloured only on a terminal, and never when NO_COLOR is set.\n"
	"\n"
	"Exit status: 0 every probe ok, 1 at least one probe not ok, 2 bad usage or\n"
	"bad configuration.\n";

struct run {
	const struct vp_config *cfg;  /* borrowed */
	char *dns[VP_CONFIG_MAX_DNS_SERVERS]; /* borrowed from argv: --dns-server */
	size_t n_dns;
	bool json;
	struct vp_target *url_targets; /* owned array; their strings borrowed from argv */
	size_t n_url_targets;
	struct vp_target_run *runs;   /* owned: one per target */
	size_t n_runs;
};

/* 'rec' as one line in '*buf' (grown as needed, reused from record to
 * record: no string per record). Returns its length, 0 out of memory. */
static size_t dump_record(const json_t *rec, char **buf, size_t *cap)
{
	size_t n = rec ? json_dumpb(rec, *buf, *cap, VP_RECORD_DUMP_FLAGS) : 0;

	if (n > *cap) {
		size_t want = n < 4096 ? 4096 : n + n / 2;
		char *grown = realloc(*buf, want);

		if (!grown)
			return 0;
		*buf = grown;
		*cap = want;
		n = json_dumpb(rec, *buf, *cap, VP_RECORD_DUMP_FLAGS);
	}
	return n;
}

/* Returns -1 when a record could not be written: the output is then not
 * complete, and check must not exit 0. */
static int print_json(const struct run *run)
{
	char *buf = NULL;
	size_t cap = 0;
	int r = 0;

	for (size_t i = 0; i < run->n_runs; i++) {
		const struct vp_target_run *tr = &run->runs[i];
		struct vp_record_ctx ctx = {
			.agent = run->cfg->agent_name, .target = tr->target->name,
			.host = tr->target->url.host, .url = tr->target->url_text,
			.kind = tr->target->url.kind,
		};

		for (size_t j = 0; j < tr->n_results; j++) {
			json_t *rec = vp_record_json(&ctx, &tr->results[j]);
			size_t n = dump_record(rec, &buf, &cap);

			if (n > 0) {
				fwrite(buf, 1, n, stdout);
				putchar('\n');
			} else {
				fprintf(stderr, "vpcprobe check: out of memory writing the record of '%s'\n",
				        tr->target->name);
				r = -1;
			}
			json_decref(rec);
		}
	}
	free(buf);
	return r;
}

static int print_table(const struct run *run)
{
	size_t n = 0, k = 0;
	struct vp_term_row *rows;

	for (size_t i = 0; i < run->n_runs; i++)
		n += run->runs[i].n_results;
	rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows) {
		fputs("vpcprobe check: out of memory for the table\n", stderr);
		return -ENOMEM;
	}
	for (size_t i = 0; i < run->n_runs; i++) {
		for (size_t j = 0; j < run->runs[i].n_results; j++) {
			rows[k].target = run->runs[i].target->name;
			rows[k].res = &run->runs[i].results[j];
			k++;
		}
	}
	vp_term_print(stdout, rows, n);
	free(rows);
	return 0;
}

/* The URLs of the command line as targets named by their URL. */
static int targets_from_urls(struct run *run, char **urls, size_t n, uint32_t timeout_ms)
{
	char err[VP_ERR_MAX];

	run->url_targets = calloc(n, sizeof(*run->url_targets));
	if (!run->url_targets)
		return -ENOMEM;
	run->n_url_targets = n;
	for (size_t i = 0; i < n; i++) {
		if (vp_target_from_url(&run->url_targets[i], urls[i], timeout_ms, run->cfg->interval_s,
		                       err, sizeof(err)) < 0) {
			fprintf(stderr, "vpcprobe check: %s\n", err);
			return -EINVAL;
		}
	}
	return 0;
}

/* One run per target: the URLs given, or the configuration's targets. */
static int make_runs(struct run *run, char **urls, size_t n_urls, uint32_t timeout_ms)
{
	const struct vp_config *cfg = run->cfg;
	const struct vp_target *targets = cfg->targets;
	size_t n = cfg->n_targets;

	if (n_urls) {
		if (targets_from_urls(run, urls, n_urls, timeout_ms ? timeout_ms : cfg->timeout_ms) < 0)
			return -EINVAL;
		targets = run->url_targets;
		n = n_urls;
	}
	run->runs = calloc(n ? n : 1, sizeof(*run->runs));
	if (!run->runs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		run->runs[i].target = &targets[i];
		run->runs[i].timeout_ms = timeout_ms ? timeout_ms : targets[i].timeout_ms;
	}
	run->n_runs = n;
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

/* One --dns-server: checked here, so that a typo exits 2 naming the option
 * instead of ending every name's probe as a dns_error. */
static int add_dns_server(struct run *run, char *s)
{
	char err[VP_ERR_MAX];
	struct vp_addrport ap;

	if (run->n_dns == VP_CONFIG_MAX_DNS_SERVERS) {
		fprintf(stderr, "vpcprobe check: --dns-server '%s': at most %d servers may be given\n", s,
		        VP_CONFIG_MAX_DNS_SERVERS);
		return -E2BIG;
	}
	if (strlen(s) >= VP_DNS_SERVER_MAX) {
		fprintf(stderr, "vpcprobe check: --dns-server '%.*s...': longer than %d bytes\n", 40, s,
		        VP_DNS_SERVER_MAX - 1);
		return -EINVAL;
	}
	if (vp_addrport_parse(s, 53, &ap, err, sizeof(err)) < 0) {
		fprintf(stderr, "vpcprobe check: --dns-server %s\n", err);
		return -EINVAL;
	}
	run->dns[run->n_dns++] = s;
	return 0;
}

/* --dns-server replaces agent.dns_servers for this run: the configuration's
 * list is freed and the command line's copied in, owned by 'cfg'. */
static int override_dns_servers(const struct run *run, struct vp_config *cfg)
{
	char **servers;

	if (run->n_dns == 0)
		return 0;
	servers = calloc(run->n_dns, sizeof(*servers));
	if (!servers)
		goto nomem;
	for (size_t i = 0; i < run->n_dns; i++) {
		servers[i] = strdup(run->dns[i]);
		if (!servers[i]) {
			for (size_t j = 0; j < i; j++)
				free(servers[j]);
			free(servers);
			goto nomem;
		}
	}
	for (size_t i = 0; i < cfg->n_dns_servers; i++)
		free(cfg->dns_servers[i]);
	free(cfg->dns_servers);
	cfg->dns_servers = servers;
	cfg->n_dns_servers = run->n_dns;
	return 0;
nomem:
	fputs("vpcprobe check: out of memory for --dns-server\n", stderr);
	return -ENOMEM;
}

int vp_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "dns-server", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	struct vp_config *cfg = NULL;
	struct run run = { 0 };
	uint32_t timeout_ms = 0;
	bool incomplete = false;
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
		case 'd':
			if (add_dns_server(&run, optarg) < 0)
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
	if (override_dns_servers(&run, cfg) < 0)
		goto out;
	run.cfg = cfg;
	if (make_runs(&run, argv + optind, (size_t)(argc - optind), timeout_ms) < 0)
		goto out;
	if (run.n_runs == 0) {
		fprintf(stderr, "vpcprobe check: config '%s' has no targets; nothing to probe\n", cfg->source);
		status = VP_EXIT_OK;
		goto out;
	}
	if (vp_probe_once(run.cfg, run.runs, run.n_runs, "vpcprobe check") < 0)
		goto out;
	if (run.json)
		incomplete = print_json(&run) < 0;
	else if (print_table(&run) < 0)
		goto out;
	/* A record that could not be written is not an ok run either. */
	status = incomplete ? VP_EXIT_NOT_OK : VP_EXIT_OK;
	for (size_t i = 0; i < run.n_runs; i++) {
		if (run.runs[i].n_results == 0)
			status = VP_EXIT_NOT_OK;
		for (size_t j = 0; j < run.runs[i].n_results; j++)
			if (run.runs[i].results[j].v.verdict != VP_VERDICT_OK)
				status = VP_EXIT_NOT_OK;
	}
out:
	for (size_t i = 0; i < run.n_runs; i++)
		vp_target_run_clear(&run.runs[i]);
	free(run.runs);
	for (size_t i = 0; i < run.n_url_targets; i++)
		vp_url_free(&run.url_targets[i].url);
	free(run.url_targets);
	vp_config_free(cfg);
	return status;
}
