/* vpcprobe beacon: listen on the target's port, answer every HTTP request,
 * print every connection that arrives and where it came from (issue 3). */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/cli.h"
#include "agent/listen_checks.h"
#include "agent/record.h"
#include "agent/term.h"
#include "probes/beacon.h"

static const char beacon_usage[] =
	"Usage: vpcprobe beacon --listen ADDR:PORT [--expect-from CIDR]... [--json]\n"
	"                       [--name NAME] [--max-connections N] [--timeout-ms MS]\n"
	"\n"
	"Listens on ADDR:PORT in the foreground, answers any HTTP request with\n"
	"\"200 OK\" and one line naming this agent and the connection's source, and\n"
	"prints every connection that arrives: when, from which address and port,\n"
	"and whether that source lies inside one of the --expect-from networks.\n"
	"\n"
	"Put it on the target VM, on the port Cloud Run is refused on (with the\n"
	"service stopped) or on a spare port the same firewall rules admit, and\n"
	"curl it from Cloud Run:\n"
	"  nothing arrives       a firewall rule or the routing drops the traffic\n"
	"                        before it reaches the VM\n"
	"  arrivals inside       the path from the connector is fine: the service's\n"
	"  --expect-from         bind address (vpcprobe listeners PORT) or the\n"
	"                        service itself is at fault\n"
	"  arrivals outside      the traffic arrives, but not from where you think:\n"
	"                        Cloud Run's egress setting or a NAT on the path\n"
	"\n"
	"Options:\n"
	"  -l, --listen ADDR:PORT    where to listen: 0.0.0.0:18080, one address of\n"
	"                            this host, or [::]:18080 (IPv6, and IPv4 too\n"
	"                            unless net.ipv6.bindv6only is set)\n"
	"  -e, --expect-from CIDR    a network the connections should come from, such\n"
	"                            as the Serverless VPC Access connector's /28\n"
	"                            (10.8.0.0/28); repeat it for more. An IPv4\n"
	"                            network also matches IPv4-mapped IPv6 sources\n"
	"      --json                print JSON Lines: one record per arrival, with\n"
	"                            \"time\", \"agent\", \"kind\":\"beacon\", \"listen\",\n"
	"                            \"source\", \"source_port\", \"expected\" (true,\n"
	"                            false, or null without --expect-from),\n"
	"                            \"expect_from\" (the network that matched),\n"
	"                            \"over_cap\", \"verdict\", \"reason\", \"detail\"\n"
	"                            and \"hint\"\n"
	"  -n, --name NAME           the agent name in answers and records (default:\n"
	"                            this host's name)\n"
	"      --max-connections N   connections held at once, 1..65536 (default\n"
	"                            4096); more are accepted, recorded and closed\n"
	"                            at once\n"
	"      --timeout-ms MS       how long a connection may take to send its\n"
	"                            request, 1..600000 (default 10000); then it is\n"
	"                            closed, so half-open clients hold nothing long\n"
	"  -h, --help                show this help\n"
	"\n"
	"The beacon reads at most 2048 bytes of a request (its request line and\n"
	"headers; a longer one is answered 431, anything that is not HTTP/1 400)\n"
	"and never puts what it read into its answer or its output.\n"
	"\n"
	"Signals: SIGUSR1 prints the counters on stderr; SIGINT and SIGTERM stop\n"
	"the beacon, which prints them and exits 0.\n"
	"\n"
	"Exit status: 0 after a stop, 1 the address could not be bound, 2 bad usage.\n";

struct beacon_cmd {
	bool json;
	char agent[VP_NAME_MAX];
	const char *listen;               /* borrowed from argv */
	struct vp_cidr *expect;           /* owned array */
	size_t n_expect;
	uint32_t max_conns;
	uint32_t timeout_ms;
	struct vp_beacon_server *server;  /* owned until closed */
	uv_signal_t sig_int, sig_term, sig_usr1;
};

static void print_text(const struct beacon_cmd *bc, const struct vp_beacon_arrival *a)
{
	char when[40], src[INET6_ADDRSTRLEN + 8], safe[INET6_ADDRSTRLEN + 8], cidr[64];

	vp_format_time(&a->wall, when, sizeof(when));
	vp_beacon_source_text(a, src, sizeof(src));
	vp_term_safe(safe, sizeof(safe), src);
	vp_term_safe(cidr, sizeof(cidr), a->cidr);
	printf("%s  %-21s  %-9s  %s%s\n", when, safe, vp_beacon_match_name(a->match),
	       a->match == VP_BEACON_INSIDE ? cidr : bc->n_expect ? "-" : "(no --expect-from)",
	       a->over_cap ? "  over the connection cap: closed at once" : "");
}

static void print_json(const struct beacon_cmd *bc, const struct vp_beacon_arrival *a)
{
	char expect[VP_DETAIL_MAX];
	json_t *rec;
	char *text = NULL;

	vp_beacon_server_expect_text(bc->server, expect, sizeof(expect));
	/* The same record that `run` reports to the collector. */
	rec = vp_beacon_arrival_record(bc->agent, bc->listen, expect, a);
	if (rec)
		text = json_dumps(rec, VP_RECORD_DUMP_FLAGS);
	if (text)
		printf("%s\n", text);
	else
		fprintf(stderr, "vpcprobe beacon: out of memory writing arrival %llu, ignoring\n",
		        (unsigned long long)a->seq);
	free(text);
	json_decref(rec);
}

static void on_arrival(struct vp_beacon_server *b, const struct vp_beacon_arrival *a, void *arg)
{
	struct beacon_cmd *bc = arg;

	(void)b;
	if (bc->json)
		print_json(bc, a);
	else
		print_text(bc, a);
	/* A line per arrival, as it happens, also into a pipe or a file. */
	fflush(stdout);
}

static void print_stats(const struct vp_beacon_stats *st)
{
	fprintf(stderr, "vpcprobe beacon: %llu arrivals (%llu inside, %llu outside expect_from); "
	        "%llu answered, %llu bad requests, %llu timed out, %llu over the connection cap, "
	        "%llu accept errors; %zu connections open, at most %zu at once\n",
	        (unsigned long long)st->arrivals, (unsigned long long)st->inside,
	        (unsigned long long)st->outside, (unsigned long long)st->answered,
	        (unsigned long long)st->bad_requests, (unsigned long long)st->timed_out,
	        (unsigned long long)st->over_cap, (unsigned long long)st->accept_errors,
	        st->active, st->active_max);
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct beacon_cmd *bc = h->data;
	struct vp_beacon_stats st;

	if (!bc->server)
		return;
	vp_beacon_server_stats(bc->server, &st);
	print_stats(&st);
	if (signum == SIGUSR1)
		return;
	vp_beacon_server_close(bc->server, NULL, NULL);
	bc->server = NULL;
	close_handle((uv_handle_t *)&bc->sig_int);
	close_handle((uv_handle_t *)&bc->sig_term);
	close_handle((uv_handle_t *)&bc->sig_usr1);
}

static int parse_number(const char *opt, const char *s, unsigned long max, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] < '0' || s[0] > '9' || v < 1 || v > max) {
		fprintf(stderr, "vpcprobe beacon: %s '%s': expected a number in 1..%lu\n", opt, s, max);
		return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

static int add_cidr(struct beacon_cmd *bc, const char *text)
{
	char err[VP_ERR_MAX];

	if (bc->n_expect >= VP_CONFIG_MAX_CIDRS) {
		fprintf(stderr, "vpcprobe beacon: more than %d --expect-from\n", VP_CONFIG_MAX_CIDRS);
		return -EINVAL;
	}
	if (vp_cidr_parse(text, &bc->expect[bc->n_expect], err, sizeof(err)) < 0) {
		fprintf(stderr, "vpcprobe beacon: --expect-from: %s\n", err);
		return -EINVAL;
	}
	bc->n_expect++;
	return 0;
}

/* 1 after --help, 0 to run, -EINVAL on bad usage (reported). */
static int parse_args(struct beacon_cmd *bc, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "expect-from", required_argument, NULL, 'e' },
		{ "json", no_argument, NULL, 'j' },
		{ "name", required_argument, NULL, 'n' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vp_addrport ap;
	char err[VP_ERR_MAX];
	int c, r = 0;

	while (r == 0 && (c = getopt_long(argc, argv, "l:e:n:h", opts, NULL)) != -1) {
		if (c == 'l')
			bc->listen = optarg;
		else if (c == 'e')
			r = add_cidr(bc, optarg);
		else if (c == 'j')
			bc->json = true;
		else if (c == 'n')
			snprintf(bc->agent, sizeof(bc->agent), "%s", optarg);
		else if (c == 'm')
			r = parse_number("--max-connections", optarg, VP_BEACON_CONN_MAX, &bc->max_conns);
		else if (c == 't')
			r = parse_number("--timeout-ms", optarg, VP_TIMEOUT_MS_MAX, &bc->timeout_ms);
		else if (c == 'h')
			return 1;
		else
			r = -EINVAL;
	}
	if (r == 0 && optind < argc) {
		fprintf(stderr, "vpcprobe beacon: unexpected argument '%s'\n", argv[optind]);
		r = -EINVAL;
	}
	if (r == 0 && !bc->listen) {
		fputs("vpcprobe beacon: --listen ADDR:PORT is required\n", stderr);
		r = -EINVAL;
	}
	if (r == 0 && vp_addrport_parse(bc->listen, 0, &ap, err, sizeof(err)) < 0) {
		fprintf(stderr, "vpcprobe beacon: --listen: %s\n", err);
		r = -EINVAL;
	}
	if (r < 0)
		fputs("Try 'vpcprobe beacon --help'.\n", stderr);
	return r;
}

static void start_signals(uv_loop_t *loop, struct beacon_cmd *bc)
{
	uv_signal_t *hs[] = { &bc->sig_int, &bc->sig_term, &bc->sig_usr1 };
	int sigs[] = { SIGINT, SIGTERM, SIGUSR1 };

	for (size_t i = 0; i < 3; i++) {
		uv_signal_init(loop, hs[i]);
		hs[i]->data = bc;
		/* Only EINVAL for a bad signal number: cannot happen. */
		(void)uv_signal_start(hs[i], on_signal, sigs[i]);
	}
}

/* Listens until a signal; 0 after a stop, -errno when the bind failed. */
static int serve(struct beacon_cmd *bc)
{
	const struct vp_beacon_opts o = {
		.listen = bc->listen, .expect_from = bc->expect, .n_expect_from = bc->n_expect,
		.agent = bc->agent, .max_conns = bc->max_conns, .timeout_ms = bc->timeout_ms,
		.on_arrival = on_arrival, .arg = bc,
	};
	char err[VP_ERR_MAX], expect[VP_DETAIL_MAX], name[VP_NAME_MAX];
	uv_loop_t loop;
	int r;

	r = uv_loop_init(&loop);
	if (r < 0) {
		fprintf(stderr, "vpcprobe beacon: uv_loop_init: %s\n", uv_strerror(r));
		return r;
	}
	r = vp_beacon_server_start(&loop, &o, &bc->server, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vpcprobe %s\n", err);
	} else {
		start_signals(&loop, bc);
		vp_beacon_server_expect_text(bc->server, expect, sizeof(expect));
		vp_term_safe(name, sizeof(name), bc->agent);
		fprintf(stderr, "vpcprobe beacon: listening on %s as '%s'%s%s%s\n", bc->listen, name,
		        bc->n_expect ? ", expecting connections from " : "", expect,
		        bc->json ? "; one JSON line per arrival on stdout" : "");
	}
	uv_run(&loop, UV_RUN_DEFAULT);   /* also frees a server that failed */
	if (uv_loop_close(&loop) < 0)
		fputs("vpcprobe beacon: handles left open at exit, ignoring\n", stderr);
	return r;
}

int vp_cmd_beacon(int argc, char **argv)
{
	struct beacon_cmd bc = { 0 };
	int r;

	if (gethostname(bc.agent, sizeof(bc.agent) - 1) < 0)
		snprintf(bc.agent, sizeof(bc.agent), "vpcprobe");
	bc.expect = calloc(VP_CONFIG_MAX_CIDRS, sizeof(*bc.expect));
	if (!bc.expect) {
		fputs("vpcprobe beacon: out of memory\n", stderr);
		return VP_EXIT_NOT_OK;
	}
	r = parse_args(&bc, argc, argv);
	if (r != 0) {
		if (r > 0)
			fputs(beacon_usage, stdout);
		free(bc.expect);
		return r > 0 ? VP_EXIT_OK : VP_EXIT_USAGE;
	}
	r = serve(&bc);
	free(bc.expect);
	return r < 0 ? VP_EXIT_NOT_OK : VP_EXIT_OK;
}
